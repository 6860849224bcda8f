"""Real processes for the tests that need real sockets: the service under uvicorn, and
throw-away ``redis-server`` instances.

One implementation for the feed, browser and concurrency tests. Both kinds are plain
subprocesses with blocking ``start``/``stop``; async tests call them through
``asyncio.to_thread`` (``astart``/``astop``) so that several servers start together.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A ``redis-server`` without persistence, restartable on the same port (empty again)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="places-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        try:
            for _ in range(200):
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.025)
        finally:
            client.close()
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


class ServiceProcess:
    """``uvicorn api.main:app_factory --factory`` on a free port: the service as deployed.

    ``env`` adds to (or, with ``None`` values, removes from) the test process's environment;
    the signing keys are the session's, so ``issue_token`` works against it.
    """

    def __init__(
        self,
        dsn: str,
        redis_url: str | None,
        *,
        workers: int = 1,
        log_level: str = "info",
        log_path: Path | None = None,
        **env: str | None,
    ) -> None:
        self.port = free_port()
        merged: dict[str, str | None] = {
            **os.environ,
            "PLACES_DATABASE_URL": dsn,
            "PLACES_REDIS_URL": redis_url or "",
            **env,
        }
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.args = [
            *(sys.executable, "-m", "uvicorn", "api.main:app_factory", "--factory"),
            *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", log_level),
            *("--workers", str(workers)),
        ]
        self.log_path = log_path or Path(
            tempfile.mkstemp(prefix="places-server-", suffix=".log")[1]
        )
        self.log_path.write_bytes(b"")  # this run's log only; spawns append to it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """uvicorn's supervisor (with ``workers`` > 1 the workers are its children)."""
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start(self, timeout: float = 90, ready: str = "/readyz") -> None:
        self.spawn()
        self.wait_ready(timeout, ready)

    def wait_ready(
        self, timeout: float = 90, ready: str = "/readyz", respawn: bool = False
    ) -> None:
        """Wait until ``ready`` answers 200. ``respawn``: a server spawned before its
        database existed exits at its lifespan; spawn it once more."""
        deadline = time.monotonic() + timeout  # imports alone take seconds on a busy machine
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                if not respawn:
                    break
                self.spawn()
                respawn = False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}{ready}", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"server {self.port} did not stop in 20 s:\n{self.output()}")
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    async def astart(self, **kwargs: object) -> None:
        await asyncio.to_thread(self.start, **kwargs)  # type: ignore[arg-type]

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
