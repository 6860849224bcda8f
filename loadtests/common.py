"""What every benchmark needs: a free port, percentiles, and the service in a subprocess."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


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


class Service:
    """``places run --workers N`` on a free port, in a process session of its own (stopped by
    SIGTERM, the whole session killed if it lingers). ``env`` adds to the environment
    (``PLACES_DATABASE_URL`` and the rest come from it); output goes to ``log`` or nowhere."""

    def __init__(self, workers: int = 1, log: Path | None = None, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("w") if log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "api.cli", "run", "--workers", str(workers)),
                *("--host", "127.0.0.1", "--port", str(self.port)),
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        see = f"; see {self.log}" if self.log else ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the service exited ({self.proc.returncode}){see}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise SystemExit(f"the service did not become ready{see}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: the server's
                self.proc.wait(10)
        if not isinstance(self._out, int):
            self._out.close()


@contextlib.contextmanager
def serve(workers: int = 1, **env: str) -> Iterator[str]:
    """A ``Service`` for the block's life; yields its base URL once ready."""
    service = Service(workers, **env)
    try:
        service.wait_ready()
        yield service.base
    finally:
        service.stop()
