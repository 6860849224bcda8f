"""Database access: one asyncpg pool per worker, database provisioning and migrations.

The API speaks SQL through asyncpg (readable queries, no ORM on hot paths); SQLAlchemy is
only used by Alembic to run the migrations that mirror ``api.models``.

Every function takes its DSN (and pool sizes) from its caller: the app passes those of its
settings, the CLI those of the environment, tests their own database's. None reads the
process-wide settings, so that nothing quietly connects to a database nobody named.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

APP_ROLE = "places_app"
"""The service's database role (migration 0009): every table's rows, but only INSERT and
SELECT on the audit. Migrations, seed and purge run as the schema's owner."""


def with_user(dsn: str, user: str) -> str:
    """``dsn`` connecting as ``user`` (without the password it may have had)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def app_dsn(dsn: str) -> str:
    """The same database, as the service's role (tests, benchmarks)."""
    return with_user(dsn, APP_ROLE)


def sqlalchemy_url(dsn: str) -> str:
    return "postgresql+asyncpg://" + dsn.split("://", 1)[1]


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def _json_dumps(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """``json``/``jsonb`` as Python values through orjson, on every connection we open."""
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=_json_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, *, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        command_timeout=30,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    try:
        yield conn
    finally:
        await conn.close()


async def ensure_database(dsn: str) -> bool:
    """Create the database and the PostGIS extension when missing; True if created."""
    name = database_name(dsn)
    admin = await asyncpg.connect(_with_database(dsn, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    finally:
        await conn.close()
    return not exists


async def drop_database(dsn: str) -> None:
    admin = await asyncpg.connect(_with_database(dsn, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_name(dsn)}" WITH (FORCE)')
    finally:
        await admin.close()


def alembic_config(dsn: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn))
    return config


def migrate(dsn: str, revision: str = "head") -> None:
    """Apply Alembic migrations (synchronous entry point: Alembic runs its own loop)."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


class ReadRouting:
    """Where lag-tolerant reads go: the hot standby while it is close enough, else the primary.

    Why a measure of its own: ``pg_last_xact_replay_timestamp`` alone says how old the last
    replayed transaction is, which is large on an idle primary (nothing to replay) and says
    nothing of a standby cut off from its primary. Here every sample reads the primary's WAL
    position (remembered with the time it was read), then the standby's replay position: the
    newest remembered primary position the standby has replayed tells when the standby last
    held everything the primary had (``caught_up_at``). The lag is the time since then — an
    upper bound of how stale a read on the standby can be — computed when a read is routed,
    so it grows while the standby is down, cut off or slow, between samples too.
    """

    def __init__(
        self, primary: asyncpg.Pool, standby: asyncpg.Pool | None, max_lag_seconds: float
    ) -> None:
        self.primary = primary
        self.standby = standby
        self.max_lag = max_lag_seconds
        self.caught_up_at: float | None = None
        """``time.monotonic()`` when the primary was at a position the standby has replayed."""
        self.lag_bytes: int | None = None
        self.error: str | None = None
        self._positions: deque[tuple[float, int]] = deque(maxlen=600)
        """(when, primary WAL position): the last samples, ~5 min at 0.5 s."""

    @property
    def lag_seconds(self) -> float | None:
        if self.caught_up_at is None:
            return None
        return max(0.0, time.monotonic() - self.caught_up_at)

    @property
    def usable(self) -> bool:
        lag = self.lag_seconds
        return (
            self.standby is not None
            and self.error is None
            and lag is not None
            and lag <= self.max_lag
        )

    def pool(self) -> asyncpg.Pool:
        """The pool for one lag-tolerant read."""
        return self.standby if self.usable and self.standby is not None else self.primary

    def state(self) -> dict[str, object]:
        """What ``/readyz`` reports of the standby."""
        if self.standby is None:
            return {"state": "not configured", "reads": "primary"}
        lag = self.lag_seconds
        return {
            "state": "down" if self.error is not None else "ok" if self.usable else "lagging",
            "error": self.error,
            "lag_seconds": None if lag is None else round(lag, 3),
            "lag_bytes": self.lag_bytes,
            "max_lag_seconds": self.max_lag,
            "reads": "standby" if self.usable else "primary",
        }

    async def sample(self) -> None:
        """One measure (errors recorded, never raised)."""
        if self.standby is None:
            return
        try:
            async with asyncio.timeout(2):
                now = time.monotonic()
                position = await self.primary.fetchval(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
                )
                self._positions.append((now, position))
                row = await self.standby.fetchrow(
                    "SELECT pg_is_in_recovery() AS standby,"
                    " pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint AS replayed"
                )
        except Exception as exc:  # the standby (or the primary) does not answer
            self.error = type(exc).__name__
            return
        if row is None or not row["standby"] or row["replayed"] is None:
            self.error = "not in recovery"  # promoted: no longer a copy of this primary
            return
        self.error = None
        replayed = int(row["replayed"])
        self.lag_bytes = max(0, self._positions[-1][1] - replayed)
        for when, pos in reversed(self._positions):
            if pos <= replayed:
                if self.caught_up_at is None or when > self.caught_up_at:
                    self.caught_up_at = when
                break

    async def watch(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Sample every ``interval`` seconds until ``stop``."""
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
