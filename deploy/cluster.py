"""A Places cluster on one machine, with the real parts a deployment runs on several hosts:
a PostgreSQL primary and its hot standby (streaming, replication slot, WAL archive), a Redis
master, its replica and three Sentinels, two or more ``places run`` instances, and HAProxy in
front (``deploy.haproxy_config``, the production configuration, with these backends).

Why processes on one machine: the faults the service must survive (an instance killed, the
Redis master gone, the primary restarted, the standby stopped) are faults of processes; the
chaos tests (``loadtests/chaos.py``) inflict them on this cluster and measure what clients
see. Nothing here is home-made: PostgreSQL's own ``initdb``/``pg_basebackup -R``, Redis's own
replication and Sentinel, HAProxy's own health checks.

    scripts/cluster up        # idempotent: starts what is not running
    scripts/cluster status    # the load balancer's URL, each part's pid, port, role, lag
    scripts/cluster down      # stops what it started, and only that

State lives in ``var/cluster/`` (gitignored): data directories, logs, pid files, and
``cluster.json`` (the ports, so that ``status`` and ``down`` find the parts). The machine's
own PostgreSQL (5432) and Redis (6379) are left alone. PostgreSQL runs as an unprivileged
user: ``postgres`` when this runs as root, else the caller.

Standard library only (it runs with the service's virtualenv for ``places migrate``/``seed``/
``run``, but imports nothing of the service but ``deploy.haproxy_config``).
"""

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.haproxy_config import ProxyConfig, render

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PLACES_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
MASTER_NAME = "places"
DATABASE = "places"
SLOT = "places_standby"
HOST = "127.0.0.1"
ROLL_SETTLE_SECONDS = 3.0


@dataclass
class Ports:
    """Where each part listens; the defaults are those of ``scripts/cluster``."""

    lb: int = 8100
    apis: list[int] = field(default_factory=lambda: [8101, 8102])
    pg_primary: int = 55432
    pg_standby: int = 55433
    redis_master: int = 6390
    redis_replica: int = 6391
    sentinels: list[int] = field(default_factory=lambda: [26390, 26391, 26392])

    @classmethod
    def free(cls, instances: int = 2) -> "Ports":
        """Ports nobody listens on now (a test's cluster beside a running one)."""
        socks = []
        try:
            for _ in range(8 + instances):
                s = socket.socket()
                s.bind((HOST, 0))
                socks.append(s)
            ports = [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()
        return cls(
            lb=ports[0],
            pg_primary=ports[1],
            pg_standby=ports[2],
            redis_master=ports[3],
            redis_replica=ports[4],
            sentinels=ports[5:8],
            apis=ports[8 : 8 + instances],
        )


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child not yet reaped) is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((HOST, port)) == 0


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def _http_status(url: str, timeout: float = 1.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (our own URL)
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


class Cluster:
    """The cluster under ``root`` (default ``var/cluster``), listening on ``ports``.

    ``up`` is idempotent: each part is started only when it is not running (a data
    directory already made is reused). ``down`` stops the parts recorded under ``root``,
    by their pid files and ``pg_ctl``, checking each pid's command line first."""

    def __init__(
        self,
        root: Path | None = None,
        ports: Ports | None = None,
        *,
        seed_scale: float = 1.0,
        python: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = (root or ROOT / "var" / "cluster").resolve()
        saved = self.root / "cluster.json"
        if ports is None and saved.exists():
            ports = Ports(**json.loads(saved.read_text())["ports"])
        self.ports = ports or Ports()
        self.seed_scale = seed_scale
        self.python = python or sys.executable
        self.extra_env = env or {}
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.pgdata = {
            "primary": self.root / "pg" / "primary",
            "standby": self.root / "pg" / "standby",
        }
        self.archive = self.root / "wal-archive"
        self.sockets = self.root / "pg" / "sockets"
        self.logs = self.root / "logs"
        self.run_dir = self.root / "run"

    # -- addresses ---------------------------------------------------------------------

    @property
    def lb_url(self) -> str:
        return f"http://{HOST}:{self.ports.lb}"

    def dsn(self, role: str = "primary", user: str = "places_app") -> str:
        port = self.ports.pg_primary if role == "primary" else self.ports.pg_standby
        return f"postgresql://{user}@{HOST}:{port}/{DATABASE}"

    @property
    def sentinels(self) -> str:
        return ",".join(f"{HOST}:{p}" for p in self.ports.sentinels)

    def service_env(self) -> dict[str, str]:
        """What every ``places run`` of the cluster is configured with (and what a client
        of the cluster, ``places token`` included, needs: the same keys)."""
        return {
            "PLACES_DATABASE_URL": self.dsn("primary"),
            "PLACES_OWNER_DATABASE_URL": self.dsn("primary", "postgres"),
            "PLACES_DATABASE_READ_URL": self.dsn("standby"),
            "PLACES_REDIS_URL": f"redis://{HOST}:{self.ports.redis_master}/0",
            "PLACES_REDIS_SENTINELS": self.sentinels,
            "PLACES_REDIS_MASTER_NAME": MASTER_NAME,
            # A failover takes a few seconds: instances stay in the rotation meanwhile.
            "PLACES_REDIS_GRACE_SECONDS": "30",
            "PLACES_KEYS_DIR": str(self.root / "keys"),
            "PLACES_TRUSTED_PROXIES": HOST,
            "PLACES_LOCAL_ROLES": "true",
        }

    # -- helpers -----------------------------------------------------------------------

    def _as_pg_user(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--", *args]
        return args

    def _give(self, path: Path, mode: int = 0o755) -> None:
        """``path`` (made if missing) owned by the PostgreSQL user."""
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _pg_ctl(
        self, name: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata[name]), *args]),
            capture_output=True,
            text=True,
            check=check,
        )

    def psql(self, role: str, sql: str, database: str = "postgres") -> str:
        """One value (or rows, tab-separated) from the primary or the standby; '' when down."""
        port = self.ports.pg_primary if role == "primary" else self.ports.pg_standby
        out = subprocess.run(
            [
                str(PG_BIN / "psql"),
                *("-h", HOST, "-p", str(port), "-U", "postgres", "-d", database),
                *("-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql),
            ],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    def redis(self, port: int, *args: str) -> str:
        out = subprocess.run(
            [REDIS_CLI, "-h", HOST, "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The live pid of a part, or None (a stale pid file, a recycled pid: None)."""
        if name in self.pgdata:
            path = self.pgdata[name] / "postmaster.pid"
            expect = "postgres"
        else:
            path = self._pidfile(name)
            expect = {"lb": "haproxy", "api": "api.cli"}.get(name.split("-")[0], "redis-server")
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) and expect in _cmdline(pid) else None

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> int:
        """A part in a session of its own (``down`` signals its whole group), output to
        ``logs/<name>.log``, pid to ``run/<name>.pid``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pidfile(name).write_text(f"{proc.pid}\n")
        return proc.pid

    # -- PostgreSQL --------------------------------------------------------------------

    def _conf(self, name: str, port: int) -> str:
        archive = f"test ! -f {self.archive}/%f && cp %p {self.archive}/%f"
        return f"""
# Places cluster ({name}), written by deploy/cluster.py
listen_addresses = '{HOST}'
port = {port}
unix_socket_directories = '{self.sockets}'
max_connections = 200
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
archive_mode = on
archive_command = '{archive}'
archive_timeout = 60
logging_collector = off
"""

    def _start_pg(self, name: str) -> None:
        if self.pid(name):
            return
        self._give(self.root / "logs")
        log = self.logs / f"pg-{name}.log"
        self._pg_ctl(name, "start", "-w", "-t", "60", "-l", str(log))

    def up_primary(self) -> None:
        data = self.pgdata["primary"]
        if not (data / "PG_VERSION").exists():
            for d in (self.root / "pg", self.sockets, self.archive):
                self._give(d)
            self._give(data, 0o700)
            subprocess.run(
                self._as_pg_user(
                    [
                        str(PG_BIN / "initdb"),
                        *("-D", str(data), "-U", "postgres", "--auth=trust"),
                        *("-E", "UTF8", "--locale=C.UTF-8"),
                    ]
                ),
                check=True,
                capture_output=True,
            )
            with (data / "postgresql.conf").open("a") as f:
                f.write(self._conf("primary", self.ports.pg_primary))
            # Trust on the loopback only (a cluster for this machine's tests and drills).
            (data / "pg_hba.conf").write_text(
                "local all all trust\n"
                f"host all all {HOST}/32 trust\n"
                f"host replication all {HOST}/32 trust\n"
            )
        self._start_pg("primary")

    def up_standby(self) -> None:
        data = self.pgdata["standby"]
        if not (data / "PG_VERSION").exists():
            self._give(data, 0o700)
            if not self.psql(
                "primary", f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
            ):
                self.psql("primary", f"SELECT pg_create_physical_replication_slot('{SLOT}')")
            subprocess.run(
                self._as_pg_user(
                    [
                        str(PG_BIN / "pg_basebackup"),
                        *("-h", HOST, "-p", str(self.ports.pg_primary), "-U", "postgres"),
                        *("-D", str(data), "-R", "-X", "stream", "-S", SLOT, "-c", "fast"),
                    ]
                ),
                check=True,
                capture_output=True,
            )
            # The copy's configuration is the primary's: it listens on its own port.
            with (data / "postgresql.conf").open("a") as f:
                f.write(f"port = {self.ports.pg_standby}\n")
        self._start_pg("standby")

    def migrate_and_seed(self) -> None:
        """``places migrate`` and ``places seed --if-empty`` on the primary, as ``scripts/run``
        does on the machine's own PostgreSQL."""
        env = {**os.environ, **self.service_env(), **self.extra_env}
        for args in (
            ["migrate"],
            ["seed", "--if-empty", "--scale", str(self.seed_scale)],
        ):
            with (self.logs / "setup.log").open("ab") as log:
                subprocess.run(
                    [self.python, "-m", "api.cli", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                )

    # -- Redis -------------------------------------------------------------------------

    def _current_master(self) -> int | None:
        """The master's port as a running Sentinel knows it (after a failover: the former
        replica), else None."""
        for port in self.ports.sentinels:
            out = self.redis(port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME).split()
            if len(out) == 2 and out[1].isdigit():
                return int(out[1])
        return None

    def up_redis(self, port: int) -> None:
        name = f"redis-{port}"
        if self.pid(name):
            return
        data = self.root / "redis" / str(port)
        data.mkdir(parents=True, exist_ok=True)
        # A node (re)started while Sentinels run joins the master they know: never a second
        # master beside the one a failover elected.
        master = self._current_master()
        if master is None:
            master = self.ports.redis_master
        args = [
            *(REDIS_SERVER, "--port", str(port), "--bind", HOST, "--dir", str(data)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
        ]
        if port != master:
            args += ["--replicaof", HOST, str(master)]
        self._spawn(name, args)
        _wait(lambda: self.redis(port, "PING") == "PONG", 10, f"redis {port}")
        if port != master:  # synced before anyone counts on it
            _wait(
                lambda: "master_link_status:up" in self.redis(port, "INFO", "replication"),
                30,
                f"redis {port} in sync with its master",
            )

    def up_sentinel(self, port: int) -> None:
        name = f"sentinel-{port}"
        if self.pid(name):
            return
        conf = self.root / "redis" / f"sentinel-{port}.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        if not conf.exists():  # Sentinel rewrites its file: it remembers failovers
            master = self._current_master() or self.ports.redis_master
            conf.write_text(
                f"port {port}\nbind {HOST}\nprotected-mode no\ndir {conf.parent}\n"
                f"sentinel monitor {MASTER_NAME} {HOST} {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
        self._spawn(name, [REDIS_SERVER, str(conf), "--sentinel"])
        _wait(lambda: self.redis(port, "PING") == "PONG", 10, f"sentinel {port}")

    # -- the service and its front -----------------------------------------------------

    def up_api(self, port: int, extra: dict[str, str] | None = None) -> None:
        name = f"api-{port}"
        if self.pid(name):
            return
        env = {**os.environ, **self.service_env(), **self.extra_env, **(extra or {})}
        self._spawn(
            name,
            [
                self.python,
                "-m",
                "api.cli",
                "run",
                "--workers",
                "1",
                "--host",
                HOST,
                "--port",
                str(port),
            ],
            env,
        )

    def wait_api(self, port: int, timeout: float = 90) -> None:
        url = f"http://{HOST}:{port}/readyz"

        def ready() -> bool:
            if not self.pid(f"api-{port}"):
                raise RuntimeError(f"api {port} exited:\n{self.log_tail(f'api-{port}')}")
            return _http_status(url) == 200

        _wait(ready, timeout, f"api {port} /readyz")

    def haproxy_config(self) -> str:
        return render(
            ProxyConfig(
                bind=f"{HOST}:{self.ports.lb}",
                backends=[f"{HOST}:{p}" for p in self.ports.apis],
                # Production's timeouts; checks every second so that a dead instance is out
                # of the rotation within ~3 s (fall 3).
                check_interval="1s",
                maxconn=4000,
            )
        )

    def up_lb(self) -> None:
        if self.pid("lb"):
            return
        cfg = self.root / "haproxy.cfg"
        cfg.write_text(self.haproxy_config())
        subprocess.run([HAPROXY, "-c", "-q", "-f", str(cfg)], check=True)
        self._spawn("lb", [HAPROXY, "-db", "-f", str(cfg)])
        _wait(lambda: _http_status(f"{self.lb_url}/readyz") == 200, 30, "haproxy /readyz")

    def log_tail(self, name: str, n: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    # -- the whole -----------------------------------------------------------------------

    def up(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "cluster.json").write_text(json.dumps({"ports": asdict(self.ports)}))
        self.up_primary()
        self.migrate_and_seed()
        self.up_standby()
        self.up_redis(self.ports.redis_master)
        self.up_redis(self.ports.redis_replica)
        for port in self.ports.sentinels:
            self.up_sentinel(port)
        for port in self.ports.apis:
            self.up_api(port)
        for port in self.ports.apis:
            self.wait_api(port)
        self.up_lb()

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop one part: ``pg_ctl stop -m fast`` for PostgreSQL, else ``sig`` to its process
        group (then SIGKILL after ``timeout``)."""
        if name in self.pgdata:
            if self.pid(name):
                self._pg_ctl(name, "stop", "-m", "fast", "-w", check=False)
            return
        pid = self.pid(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    # -- backups and the restore drill ---------------------------------------------------

    def backup(self) -> Path:
        """A base backup of the primary (``pg_basebackup``, plain, WAL fetched into it) into
        ``backups/base-<UTC stamp>``; with the WAL archive, any later point can be restored."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.root / "backups" / f"base-{stamp}"
        self._give(target.parent)
        subprocess.run(
            self._as_pg_user(
                [
                    str(PG_BIN / "pg_basebackup"),
                    *("-h", HOST, "-p", str(self.ports.pg_primary), "-U", "postgres"),
                    *("-D", str(target), "-X", "fetch", "-c", "fast"),
                ]
            ),
            check=True,
            capture_output=True,
        )
        return target

    def drill(self, base: Path | None = None) -> dict[str, Any]:
        """The restore drill: a point in time T is taken on the primary with the figures it
        holds then; a declaration-like change is made after T; the newest base backup (or
        ``base``) is restored into a scratch cluster on a free port, which replays the WAL
        archive up to T and is promoted; its figures must be T's, without the later change.
        The scratch cluster is removed after. Returns what it compared."""
        base = base or self.latest_backup() or self.backup()
        figures_sql = (
            "SELECT (SELECT count(*) FROM capacity_declarations) || '/' ||"
            " (SELECT count(*) FROM outbox_events) || '/' ||"
            " (SELECT coalesce(max(id), 0) FROM outbox_events)"
        )
        # The change after T goes to a table of the maintenance database (the whole cluster
        # is restored): nothing of the service's own data is written for the drill.
        marks = "restore_drill_marks"
        self.psql("primary", f"CREATE TABLE IF NOT EXISTS {marks} (at timestamptz)")
        self.psql("primary", f"INSERT INTO {marks} VALUES (now())")
        marks_sql = f"SELECT count(*) FROM {marks}"
        before = self.psql("primary", figures_sql, DATABASE)
        before_marks = self.psql("primary", marks_sql)
        time.sleep(0.2)
        target_time = self.psql("primary", "SELECT now()::text", DATABASE)
        time.sleep(1.1)  # later commits are strictly after T
        self.psql("primary", f"INSERT INTO {marks} VALUES (now())")
        after_marks = self.psql("primary", marks_sql)
        # T's segment into the archive, and wait for the archiver to have copied it: a
        # restore that runs out of WAL before T refuses to promote.
        segment = self.psql("primary", "SELECT pg_walfile_name(pg_switch_wal())")
        _wait(lambda: (self.archive / segment).exists(), 30, f"WAL segment {segment} archived")
        archived = segment
        scratch = self.root / "drill"
        shutil.rmtree(scratch, ignore_errors=True)
        self._give(scratch, 0o700)
        subprocess.run(self._as_pg_user(["cp", "-a", f"{base}/.", str(scratch)]), check=True)
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        with (scratch / "postgresql.conf").open("a") as f:
            f.write(
                f"\n# restore drill\nport = {port}\narchive_mode = off\n"
                f"restore_command = 'cp {self.archive}/%f %p'\n"
                f"recovery_target_time = '{target_time}'\n"
                "recovery_target_action = 'promote'\nhot_standby = on\n"
            )
        (scratch / "standby.signal").unlink(missing_ok=True)
        (scratch / "recovery.signal").write_text("")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            for path in (scratch / "recovery.signal", scratch / "postgresql.conf"):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        log = self.logs / "pg-drill.log"
        started = time.monotonic()
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(scratch)]
        try:
            subprocess.run(
                self._as_pg_user([*pg_ctl, "start", "-w", "-t", "120", "-l", str(log)]),
                check=True,
                capture_output=True,
            )
            scratch_sql = [
                str(PG_BIN / "psql"),
                *("-h", HOST, "-p", str(port), "-U", "postgres", "-d", DATABASE, "-XAtq", "-c"),
            ]

            def restored(sql: str) -> str:
                out = subprocess.run([*scratch_sql, sql], capture_output=True, text=True)
                return out.stdout.strip()

            _wait(lambda: restored("SELECT pg_is_in_recovery()") == "f", 60, "the promotion")
            figures = restored(figures_sql)
            restored_marks = subprocess.run(
                [*scratch_sql[:-3], "postgres", "-XAtq", "-c", marks_sql],
                capture_output=True,
                text=True,
            ).stdout.strip()
            recovered_in = time.monotonic() - started
        finally:
            subprocess.run(
                self._as_pg_user([*pg_ctl, "stop", "-m", "immediate", "-w"]),
                capture_output=True,
            )
            shutil.rmtree(scratch, ignore_errors=True)
        return {
            "base_backup": str(base),
            "target_time": target_time,
            "archived_up_to": archived,
            "places_figures_at_target": before,
            "places_figures_restored": figures,
            "marks_at_target": before_marks,
            "marks_after_target": after_marks,
            "marks_restored": restored_marks,
            "ok": figures == before and restored_marks == before_marks != after_marks,
            "recovered_seconds": round(recovered_in, 2),
        }

    def latest_backup(self) -> Path | None:
        backups = sorted((self.root / "backups").glob("base-*"))
        return backups[-1] if backups else None

    def roll(self) -> list[dict[str, Any]]:
        """A rolling deploy: each instance in turn is stopped gracefully (SIGTERM: uvicorn
        finishes its requests), started again with the code now on disk, and waited for
        (``/readyz``) before the next — the other instance serves meanwhile. Migrations run
        first (``places migrate``), written expand-then-contract so that the instances still
        on the previous code work with the new schema (docs/architecture.md)."""
        self.migrate_and_seed()
        out = []
        for port in self.ports.apis:
            started = time.monotonic()
            self.stop(f"api-{port}")
            self.up_api(port)
            self.wait_api(port)
            # HAProxy takes an instance back after two good checks (rise 2, every second):
            # stopping the next one before would leave it no backend at all.
            time.sleep(ROLL_SETTLE_SECONDS)
            took = round(time.monotonic() - started, 2)
            out.append({"instance": f"api-{port}", "replaced_s": took})
        return out

    def restart_pg(self, name: str) -> None:
        """``pg_ctl stop -m fast`` then start (its output to its log file: a postmaster
        started with our pipe as its output would hold the pipe, and us, forever)."""
        self.stop(name)
        self._start_pg(name)

    def down(self) -> None:
        self.stop("lb")
        for port in self.ports.apis:
            self.stop(f"api-{port}")
        for port in self.ports.sentinels:
            self.stop(f"sentinel-{port}")
        for port in (self.ports.redis_replica, self.ports.redis_master):
            self.stop(f"redis-{port}")
        self.stop("standby")
        self.stop("primary")
        # Redis runs without persistence: the next ``up`` starts it afresh, so Sentinel's
        # memory of a failover goes with it (the outbox re-publishes what the feeds need).
        shutil.rmtree(self.root / "redis", ignore_errors=True)

    def status(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        lag_standby = self.psql(
            "standby",
            "SELECT pg_is_in_recovery(), COALESCE(CASE WHEN pg_last_wal_receive_lsn() ="
            " pg_last_wal_replay_lsn() THEN 0 ELSE EXTRACT(EPOCH FROM now() -"
            " pg_last_xact_replay_timestamp()) END, 0)",
        )
        for name, port in (("primary", self.ports.pg_primary), ("standby", self.ports.pg_standby)):
            pid = self.pid(name)
            state: dict[str, Any] = {"part": f"postgres-{name}", "pid": pid, "port": port}
            if pid:
                recovery = self.psql(name, "SELECT pg_is_in_recovery()")
                state["role"] = {"t": "standby", "f": "primary"}.get(recovery, "unreachable")
                if state["role"] == "standby" and lag_standby:
                    state["lag_seconds"] = round(float(lag_standby.split("|")[1]), 3)
                if state["role"] == "primary":
                    state["replicas"] = self.psql(
                        "primary",
                        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    )
            else:
                state["role"] = "stopped"
            parts.append(state)
        for port in (self.ports.redis_master, self.ports.redis_replica):
            pid = self.pid(f"redis-{port}")
            state = {"part": f"redis-{port}", "pid": pid, "port": port, "role": "stopped"}
            if pid:
                info = dict(
                    line.split(":", 1)
                    for line in self.redis(port, "INFO", "replication").splitlines()
                    if ":" in line
                )
                state["role"] = {"slave": "replica"}.get(
                    info.get("role", ""), info.get("role", "?")
                )
                if state["role"] == "replica":
                    state["link"] = info.get("master_link_status")
                    state["master_port"] = int(info.get("master_port", 0) or 0)
                    state["lag_seconds"] = int(info.get("master_last_io_seconds_ago", -1))
            parts.append(state)
        for port in self.ports.sentinels:
            pid = self.pid(f"sentinel-{port}")
            state = {"part": f"sentinel-{port}", "pid": pid, "port": port}
            state["role"] = "sentinel" if pid else "stopped"
            if pid:
                addr = self.redis(port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME).split()
                state["master_port"] = int(addr[1]) if len(addr) == 2 else None
            parts.append(state)
        for port in self.ports.apis:
            pid = self.pid(f"api-{port}")
            ready = _http_status(f"http://{HOST}:{port}/readyz") if pid else 0
            parts.append(
                {
                    "part": f"api-{port}",
                    "pid": pid,
                    "port": port,
                    "role": ("ready" if ready == 200 else f"not ready ({ready})")
                    if pid
                    else "stopped",
                }
            )
        pid = self.pid("lb")
        ready = _http_status(f"{self.lb_url}/readyz") if pid else 0
        parts.append(
            {
                "part": "haproxy",
                "pid": pid,
                "port": self.ports.lb,
                "role": ("ready" if ready == 200 else f"not ready ({ready})") if pid else "stopped",
            }
        )
        return {"url": self.lb_url, "root": str(self.root), "parts": parts}


def _print_status(status: dict[str, Any]) -> None:
    print(f"load balancer: {status['url']}   (state in {status['root']})")
    for p in status["parts"]:
        extra = "  ".join(
            f"{k}={v}" for k, v in p.items() if k not in ("part", "pid", "port", "role")
        )
        pid = p["pid"] or "-"
        print(f"  {p['part']:<18} pid={pid!s:<8} port={p['port']:<6} {p['role']:<10} {extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A Places cluster on this machine.")
    parser.add_argument("command", choices=["up", "down", "status", "backup", "drill", "roll"])
    parser.add_argument("--root", type=Path, help="State directory (default var/cluster).")
    parser.add_argument(
        "--seed-scale", type=float, default=1.0, help="Dataset size seeded at first up."
    )
    parser.add_argument("--json", action="store_true", help="status as JSON")
    args = parser.parse_args(argv)
    cluster = Cluster(args.root, seed_scale=args.seed_scale)
    if args.command == "up":
        cluster.up()
    elif args.command == "down":
        cluster.down()
        return 0
    elif args.command == "roll":
        print(json.dumps(cluster.roll()))
        return 0
    elif args.command == "backup":
        print(cluster.backup())
        return 0
    elif args.command == "drill":
        result = cluster.drill()
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1
    status = cluster.status()
    if args.json:
        print(json.dumps(status))
    else:
        _print_status(status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
