"""Fixtures only.

The session: a real PostgreSQL/PostGIS database created for the run and dropped after, the
real Redis (database 15), and the app served in-process with its lifespan running. The
environment is fixed by ``tests.support.env`` before anything reads the settings; helpers
live in ``tests/support/``, real processes in ``loadtests.harness``.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

# isort: off
from tests.support.env import TEST_DSN  # first: the environment, before any app module
from api.db import create_pool, drop_database
from api.main import create_app
from tests.support.database import create_fixture_database

# isort: on


@pytest.fixture(scope="session")
async def database() -> AsyncIterator[str]:
    await create_fixture_database(TEST_DSN)
    yield TEST_DSN
    await drop_database(TEST_DSN)


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def app(database: str) -> AsyncIterator[Any]:
    application = create_app()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
        yield c
