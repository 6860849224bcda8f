"""What every benchmark needs: a free port, percentiles, and the service in a subprocess."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_ready(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise SystemExit("server did not become ready")


@contextlib.contextmanager
def serve(workers: int = 1, **env: str) -> Iterator[str]:
    """``places run --workers N`` on a free port (``PLACES_DATABASE_URL`` and the rest from
    the environment, plus ``env``); yields its base URL once ready, stops it after."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "run", "--workers", str(workers)],
        env={**os.environ, "PLACES_PORT": str(port), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base))
        yield base
    finally:
        server.terminate()
        server.wait(10)
