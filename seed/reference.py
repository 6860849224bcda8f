"""Load the geographic referential (departments, communes) into PostgreSQL.

The referential is committed as CSV under ``geo/data`` and read through ``geo.referential``;
nothing is downloaded. Loading is an upsert so that it can run at every deployment: a new
build of the referential (renamed commune, better coordinates) updates the rows in place,
and rows referenced by structures or carers are never deleted.

Rows are bulk-loaded with COPY into temporary tables carrying plain ``lat``/``lon`` columns
(asyncpg has no binary codec for PostGIS ``geography``), then merged with one
``INSERT … SELECT … ON CONFLICT DO UPDATE`` per table, which builds the points in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from geo.referential import (
    Commune,
    Department,
    load_authorities,
    load_communes,
    load_departments,
)

_DEPARTMENTS_STAGE = """
CREATE TEMP TABLE seed_departments_stage (
    code text, name text, region_code text, region_name text,
    lat double precision, lon double precision
) ON COMMIT DROP
"""

_COMMUNES_STAGE = """
CREATE TEMP TABLE seed_communes_stage (
    insee text, name text, department text, population integer,
    lat double precision, lon double precision, precision text, authority text
) ON COMMIT DROP
"""

_MERGE_DEPARTMENTS = """
INSERT INTO departments (code, name, region_code, region_name, location)
SELECT code, name, region_code, region_name,
       ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography
FROM seed_departments_stage
ON CONFLICT (code) DO UPDATE SET
    name = EXCLUDED.name,
    region_code = EXCLUDED.region_code,
    region_name = EXCLUDED.region_name,
    location = EXCLUDED.location
"""

_MERGE_COMMUNES = """
INSERT INTO communes (insee, name, department, population, location, precision, authority)
SELECT insee, name, department, population,
       ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, precision, authority
FROM seed_communes_stage
ON CONFLICT (insee) DO UPDATE SET
    name = EXCLUDED.name,
    department = EXCLUDED.department,
    authority = EXCLUDED.authority,
    population = EXCLUDED.population,
    location = EXCLUDED.location,
    precision = EXCLUDED.precision
"""


_MERGE_AUTHORITY = """
INSERT INTO authorities (code, name, kind, departments)
VALUES ($1, $2, $3, $4)
ON CONFLICT (code) DO UPDATE SET
    name = EXCLUDED.name, kind = EXCLUDED.kind, departments = EXCLUDED.departments
"""


def _department_records(
    departments: Iterable[Department],
) -> list[tuple[str, str, str, str, float, float]]:
    return [(d.code, d.name, d.region_code, d.region_name, d.lat, d.lon) for d in departments]


def _commune_records(
    communes: Iterable[Commune], departments: set[str]
) -> tuple[list[tuple[str, str, str, int, float, float, str, str]], int]:
    """Commune tuples for COPY, skipping those whose department is not in the referential."""
    records: list[tuple[str, str, str, int, float, float, str, str]] = []
    skipped = 0
    for c in communes:
        if c.department not in departments:
            skipped += 1
            continue
        records.append(
            (c.insee, c.name, c.department, c.population, c.lat, c.lon, c.precision, c.authority)
        )
    return records, skipped


async def load_reference(conn: asyncpg.Connection) -> dict[str, int]:
    """Upsert the 101 departments, the competent authorities and the communes; idempotent.

    Returns the number of rows merged per table and the number of communes skipped because
    their department is not one of the referential's departments.
    """
    departments = _department_records(load_departments().values())
    codes = {d[0] for d in departments}
    communes, skipped = _commune_records(load_communes().values(), codes)
    async with conn.transaction():
        # Dropped first: inside an outer transaction ON COMMIT DROP has not fired yet.
        await conn.execute("DROP TABLE IF EXISTS pg_temp.seed_departments_stage")
        await conn.execute("DROP TABLE IF EXISTS pg_temp.seed_communes_stage")
        await conn.execute(_DEPARTMENTS_STAGE)
        await conn.execute(_COMMUNES_STAGE)
        await conn.copy_records_to_table("seed_departments_stage", records=departments)
        await conn.copy_records_to_table("seed_communes_stage", records=communes)
        await conn.execute(_MERGE_DEPARTMENTS)
        await conn.executemany(
            _MERGE_AUTHORITY,
            [(a.code, a.name, a.kind, list(a.departments)) for a in load_authorities().values()],
        )
        await conn.execute(_MERGE_COMMUNES)
        await conn.execute("ANALYZE departments")
        await conn.execute("ANALYZE communes")
    return {"departments": len(departments), "communes": len(communes), "communes_skipped": skipped}
