"""Real processes for whatever needs real sockets — the tests, the benchmarks and the load
test: the service started exactly as ``places run`` starts it, throw-away ``redis-server``
instances, HAProxy in front (``deploy.haproxy_config``), and the free port each listens on.

One implementation, so that what the tests exercise is what gets measured and deployed. Both
kinds are plain subprocesses with blocking ``start``/``stop``; async callers use ``astart``/
``astop`` (``asyncio.to_thread``) so that several start together. Nothing here imports the
application: the service reads its settings from the environment it is given.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

from api.db import app_dsn

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


BENCH_LIMITS: dict[str, str] = {
    "PLACES_MAX_REQUESTS_PER_SUBJECT": "0",
    "PLACES_MAX_FEEDS_PER_SUBJECT": "0",
    "PLACES_RATE_LIMIT_SEARCH_PER_MINUTE": "0",
    "PLACES_RATE_LIMIT_WRITES_PER_MINUTE": "0",
}
"""What benchmarks and the load test serve with: no per-subject cap and no rate limit (they
share a few tokens among many connections and measure throughput, not the limiter;
``loadtests.bench_security`` measures the limiter itself). A caller's ``env`` overrides."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick), for a server to bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A ``redis-server`` without persistence, restartable on the same port (empty again):
    a Redis of one's own, so that no other run's streams or relay interfere."""

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


class Listening:
    """A process listening on ``port`` of the loopback: its HTTP and WebSocket base URLs."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class ServiceProcess(Listening):
    """``places run --workers N --host 127.0.0.1 --port P`` on a free port: the service as
    deployed (the CLI's Redis check, logging, uvicorn options), not an approximation of it.

    ``dsn`` and ``redis_url`` become ``PLACES_DATABASE_URL`` (always as the role
    ``places_app``, whatever user it names) and ``PLACES_REDIS_URL``; ``None``
    keeps what the environment says, and ``redis_url=""`` means no Redis (one worker, the
    in-process bus). ``env`` adds to (or, with ``None`` values, removes from) this process's
    environment, which the service inherits — including ``PLACES_KEYS_DIR``, so tokens issued
    here are accepted there. Output goes to ``log_path`` (default: a temporary file), which is
    emptied first and appended to by every spawn. The process gets a session of its own so
    that a server that will not stop is killed with all its workers.
    """

    def __init__(
        self,
        dsn: str | None = None,
        redis_url: str | None = None,
        *,
        workers: int = 1,
        log_path: Path | None = None,
        **env: str | None,
    ) -> None:
        self.port = free_port()
        # Benchmarks and load tests run outside pytest too: their local tokens act by role
        # unless the caller says otherwise (PLACES_LOCAL_ROLES=None for an identity provider).
        merged: dict[str, str | None] = {"PLACES_LOCAL_ROLES": "true", **os.environ, **env}
        if dsn is not None:
            merged["PLACES_DATABASE_URL"] = dsn
        if merged.get("PLACES_DATABASE_URL"):
            merged["PLACES_DATABASE_URL"] = app_dsn(merged["PLACES_DATABASE_URL"] or "")
        if redis_url is not None:
            merged["PLACES_REDIS_URL"] = redis_url
        self.env = {k: v for k, v in merged.items() if v is not None}
        self.args = [
            *(sys.executable, "-m", "api.cli", "run", "--workers", str(workers)),
            *("--host", "127.0.0.1", "--port", str(self.port)),
        ]
        self.log_path = log_path or Path(
            tempfile.mkstemp(prefix="places-server-", suffix=".log")[1]
        )
        self.log_path.write_bytes(b"")  # this run's log only; spawns append to it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The ``places run`` process: uvicorn's supervisor (with ``workers`` > 1 the workers
        are its children), or the one worker itself."""
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        """Start the process without waiting: the caller may prepare its database meanwhile
        (importing the app is most of the start-up)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, timeout: float = 90, ready: str = "/readyz") -> None:
        self.spawn()
        self.wait_ready(timeout, ready)

    def wait_ready(
        self, timeout: float = 90, ready: str = "/readyz", respawn: bool = False
    ) -> None:
        """Wait until ``ready`` answers 200, else stop the process and raise with its log.
        ``respawn``: a server spawned before its database existed exits at its lifespan;
        spawn it once more."""
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
        raise RuntimeError(f"server did not start (log: {self.log_path}):\n{self.output()}")

    def output(self) -> str:
        """The end of the log: enough to see why a server failed."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM, then after 20 s SIGKILL to the whole session (workers included)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"server {self.port} did not stop in 20 s:\n{self.output()}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    async def astart(self, timeout: float = 90, ready: str = "/readyz") -> None:
        await asyncio.to_thread(self.start, timeout, ready)

    async def await_ready(self, timeout: float = 90, ready: str = "/readyz") -> None:
        await asyncio.to_thread(self.wait_ready, timeout, ready)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class ProxyProcess(Listening):
    """HAProxy in the foreground with ``config`` (the text of ``deploy.haproxy_config.render``),
    listening on ``port``: the proxy production runs behind, in front of ``ServiceProcess``es.
    ``start`` waits until a request through it reaches a backend (``/readyz`` answers 200)."""

    def __init__(self, config: str, port: int) -> None:
        self.port = port
        handle, path = tempfile.mkstemp(prefix="places-haproxy-", suffix=".cfg")
        os.close(handle)
        self.config_path = Path(path)
        self.config_path.write_text(config)
        self.log_path = self.config_path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        check = subprocess.run(
            [HAPROXY, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses its configuration:\n{check.stderr}")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"haproxy did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    async def astart(self, timeout: float = 30) -> None:
        await asyncio.to_thread(self.start, timeout)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


@contextlib.contextmanager
def serve(workers: int = 1, timeout: float = 120, **env: str | None) -> Iterator[str]:
    """``places run`` on the environment's database and Redis for the block's life; yields
    its base URL once ready. For benchmarks that only need a server to talk to: without
    per-subject caps or rate limits unless ``env`` sets them (``BENCH_LIMITS``)."""
    merged: dict[str, str | None] = {**BENCH_LIMITS, **env}
    service = ServiceProcess(workers=workers, **merged)  # type: ignore[arg-type]
    try:
        service.start(timeout)
        yield service.http
    finally:
        service.stop()
