"""What the benchmarks and the load test share besides the process harness
(``loadtests.harness``): percentiles, and a private, seeded database to write into."""

import asyncio
import os
import subprocess
import sys

import asyncpg

from api.db import _with_database, drop_database, ensure_database, migrate
from api.settings import get_settings
from loadtests.harness import ROOT

LOAD_TEMPLATE = "places_load_template"
"""The seeded database the load test and ``bench_feeds`` copy from (created when missing)."""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _exists(admin: asyncpg.Connection, name: str) -> bool:
    return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))


async def prepare_database(
    base_dsn: str, database: str, template: str, scale: float, reuse: bool
) -> str:
    """The run's database: a fresh copy of the template, migrated (the template is created
    and seeded with ``places seed --scale`` once, when missing — nobody else connects to it,
    so the copy never waits for other sessions). ``reuse`` keeps an existing ``database``.
    A run on a fresh machine thus needs nothing prepared beforehand, and writes nowhere
    shared."""
    dsn = _with_database(base_dsn, database)
    template_dsn = _with_database(base_dsn, template)
    admin = await asyncpg.connect(_with_database(base_dsn, "postgres"))
    try:
        if reuse and await _exists(admin, database):
            print(f"database {database}: reused as it is", flush=True)
            await asyncio.to_thread(migrate, dsn)
            return dsn
        if not await _exists(admin, template):
            print(f"template {template}: creating and seeding (scale {scale:g})…", flush=True)
            try:
                await ensure_database(template_dsn)
                await asyncio.to_thread(migrate, template_dsn)
                await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "api.cli", "seed", "--scale", str(scale)],
                    cwd=ROOT,
                    env={**os.environ, "PLACES_DATABASE_URL": template_dsn},
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except BaseException:  # never leave a half-made template to be copied next time
                await drop_database(template_dsn)
                raise
        await drop_database(dsn)
        for attempt in range(10):  # a copy needs the template free of sessions
            try:
                await admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
                break
            except asyncpg.ObjectInUseError:
                if attempt == 9:
                    raise
                await asyncio.sleep(1)
    finally:
        await admin.close()
    await asyncio.to_thread(migrate, dsn)
    print(f"database {database}: fresh copy of {template}", flush=True)
    return dsn


def ensure_settings_database() -> str:
    """``PLACES_DATABASE_URL`` made ready as ``scripts/run`` makes it — created with PostGIS
    and migrated by ``places migrate``, seeded by ``places seed --if-empty`` — so that a
    benchmark reading the service's database runs on a fresh machine with its documented
    command; an already seeded database is only brought to the latest migration. Returns
    the service's DSN."""
    for step in (["migrate"], ["seed", "--if-empty"]):
        subprocess.run([sys.executable, "-m", "api.cli", *step], cwd=ROOT, check=True)
    return get_settings().database_url


def server_database(name: str) -> str:
    """The owner's DSN of a scratch database ``name`` on the server of the settings (or of
    ``PLACES_BENCH_ADMIN_DSN``, a server URL without database, when set)."""
    base = os.environ.get("PLACES_BENCH_ADMIN_DSN")
    if base:
        return f"{base.rstrip('/')}/{name}"
    return _with_database(get_settings().owner_dsn, name)
