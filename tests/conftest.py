"""Fixtures, and the markers every test carries.

The session: a real PostgreSQL/PostGIS database created for the run and dropped after, the
real Redis (database 15), and the app served in-process with its lifespan running. The
environment is fixed by ``tests.support.env`` before anything reads the settings; helpers
live in ``tests/support/``, real processes in ``loadtests.harness``.

Markers (registered in pyproject.toml): ``pure`` (no database, no server — runs anywhere),
``database`` (PostgreSQL and/or Redis), ``server`` (the service as a process, ``places run``),
``browser`` (headless Chromium). A test that uses the shared ``database`` fixture (directly
or through ``pool``, ``app``, ``client``) is marked ``database`` here; any other test says
what it needs with ``pytestmark`` or a decorator, and collection fails for a test that says
nothing or contradicts itself, so ``-m pure`` can be trusted.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

# isort: off
from tests.support.env import TEST_DSN, TEST_OWNER_DSN  # first: the environment
from api.db import create_pool, drop_database
from api.main import create_app
from api.settings import get_settings
from tests.support.database import create_fixture_database

# isort: on

KINDS = ("pure", "database", "server", "browser")


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    errors = []
    for item in items:
        if "database" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)
        kinds = {m.name for m in item.iter_markers() if m.name in KINDS}
        if not kinds:
            errors.append(f"{item.nodeid}: no marker among {', '.join(KINDS)}")
        elif "pure" in kinds and len(kinds) > 1:
            errors.append(f"{item.nodeid}: pure, yet {', '.join(sorted(kinds - {'pure'}))}")
        elif "browser" in kinds and "server" not in kinds:
            errors.append(f"{item.nodeid}: browser without the server it browses")
        elif "server" in kinds and "database" not in kinds:
            errors.append(f"{item.nodeid}: server without the database it serves")
    if errors:
        raise pytest.UsageError("test markers:\n  " + "\n  ".join(errors))


@pytest.fixture(scope="session")
async def database() -> AsyncIterator[str]:
    await create_fixture_database(TEST_OWNER_DSN)
    yield TEST_DSN  # the service's role
    await drop_database(TEST_OWNER_DSN)


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def owner_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """The run's database as its owner, for what the service's role may not do: DDL (a
    failing trigger), rewriting the audit (tamper tests)."""
    pool = await create_pool(TEST_OWNER_DSN, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def app(database: str) -> AsyncIterator[Any]:
    application = create_app(get_settings())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
        yield c
