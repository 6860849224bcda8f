"""Database access: one asyncpg pool per worker, database provisioning and migrations.

The API speaks SQL through asyncpg (readable queries, no ORM on hot paths); SQLAlchemy is
only used by Alembic to run the migrations that mirror ``api.models``.

Every function takes its DSN (and pool sizes) from its caller: the app passes those of its
settings, the CLI those of the environment, tests their own database's. None reads the
process-wide settings, so that nothing quietly connects to a database nobody named.
"""

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
