"""Test harness: a real PostgreSQL/PostGIS database created for the run and dropped after,
the real Redis (database 15), and the app served in-process with its lifespan running."""

import asyncio
import itertools
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

TEST_DB = f"places_test_{os.getpid()}"
ADMIN_DSN = os.environ.get("PLACES_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DSN = ADMIN_DSN.rsplit("/", 1)[0] + "/" + TEST_DB
os.environ["PLACES_DATABASE_URL"] = TEST_DSN
os.environ.setdefault("PLACES_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ["PLACES_KEYS_DIR"] = tempfile.mkdtemp(prefix="places-keys-")

from api.auth import issue_token  # noqa: E402
from api.db import create_pool, drop_database, ensure_database, migrate  # noqa: E402
from api.main import create_app  # noqa: E402
from api.settings import get_settings  # noqa: E402
from geo.finess import make_finess  # noqa: E402

# Small, real places: enough for the registry and the geo tests, nothing national.
DEPARTMENTS = [
    ("69", "Rhône", "84", "Auvergne-Rhône-Alpes", 45.76, 4.84),
    ("01", "Ain", "84", "Auvergne-Rhône-Alpes", 46.20, 5.22),
    ("38", "Isère", "84", "Auvergne-Rhône-Alpes", 45.19, 5.72),
    ("75", "Paris", "11", "Île-de-France", 48.86, 2.35),
    ("974", "La Réunion", "04", "La Réunion", -20.88, 55.45),
]
COMMUNES = [
    ("69123", "Lyon", "69", 522_000, 45.7640, 4.8357),
    ("69266", "Villeurbanne", "69", 156_000, 45.7719, 4.8902),
    ("01053", "Bourg-en-Bresse", "01", 42_000, 46.2052, 5.2255),
    ("38185", "Grenoble", "38", 158_000, 45.1885, 5.7245),
    ("75056", "Paris", "75", 2_100_000, 48.8566, 2.3522),
    ("97411", "Saint-Denis", "974", 153_000, -20.8823, 55.4504),
]

_serial = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def create_fixture_database(dsn: str) -> None:
    """A fresh database at ``dsn``: PostGIS, migrations, and the small set of real places
    above. The suite's own database, and those of tests that run servers of their own."""
    await drop_database(dsn)
    await ensure_database(dsn)
    await asyncio.to_thread(migrate, dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO departments (code, name, region_code, region_name, location)"
            " VALUES ($1, $2, $3, $4, ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography)",
            DEPARTMENTS,
        )
        await conn.executemany(
            "INSERT INTO communes (insee, name, department, population, precision, location)"
            " VALUES ($1, $2, $3, $4, 'geonames',"
            " ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography)",
            COMMUNES,
        )
    finally:
        await conn.close()


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
    application = create_app(get_settings())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
        yield c


def bearer(role: str, **scope: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(role, **scope)}"}


def idem() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def make_structure(
    pool: asyncpg.Pool,
    department: str = "69",
    commune: str = "69123",
    category: str = "177",
    units: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A structure with its units (default: one unit of 10 places, 6–12 years, no snapshot)."""
    finess = make_finess(department, 900_000 + next(_serial))
    units = units or [{"name": "Unité A", "installed": 10}]
    async with pool.acquire() as conn, conn.transaction():
        structure_id = await conn.fetchval(
            """
            INSERT INTO structures (finess, name, category, department, commune, location)
            SELECT $1, $2, $3, $4, insee, location FROM communes WHERE insee = $5
            RETURNING id
            """,
            finess,
            f"Structure de test {finess}",
            category,
            department,
            commune,
        )
        unit_ids = []
        for u in units:
            unit_ids.append(
                await conn.fetchval(
                    """
                    INSERT INTO units (structure_id, name, age_min, age_max, sexes, care_modes,
                                       disability_profiles, installed)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
                    """,
                    structure_id,
                    u.get("name", "Unité"),
                    u.get("age_min", 6),
                    u.get("age_max", 12),
                    u.get("sexes", ["F", "M"]),
                    u.get("care_modes", ["durable"]),
                    u.get("disability_profiles", []),
                    u.get("installed", 10),
                )
            )
    return {"id": structure_id, "finess": finess, "unit_ids": unit_ids}


async def make_carer(
    pool: asyncpg.Pool, department: str = "69", commune: str = "69266", capacity: int = 2
) -> uuid.UUID:
    n = next(_serial)
    async with pool.acquire() as conn:
        return await conn.fetchval(
            """
            INSERT INTO foster_carers (agrement_number, agrement_department, employer, department,
                                       commune, location, agrement_capacity, age_min, age_max,
                                       care_modes, available_places, declared_by)
            SELECT $1, $2::text, 'CD ' || $2::text, $2::text, insee,
                   ST_Project(location, 1200, radians(45))::geography, $4, 0, 18,
                   ARRAY['durable'], 0, 'test'
              FROM communes WHERE insee = $3
            RETURNING id
            """,
            f"AF-TEST-{n:06d}",
            department,
            commune,
            capacity,
        )
