"""FHIR reads in SQL: units with their establishment, then their capacity snapshots.

Only ``units`` and ``structures`` are read: foster carers are people, never exported.
Rows carry the structure's exact point and its commune's (``commune_lat``/``commune_lon``)
and ``authority``: ``api.precision.fhir_row`` decides what the caller sees.
"""

from typing import Any
from uuid import UUID

import asyncpg

from api.capacity.repository import SNAPSHOT_COLUMNS

_UNIT_COLUMNS = """
       u.id, u.name, u.age_min_months, u.age_max_months, u.sexes, u.timings, u.publics,
       u.formulas, u.disability_specialised, u.disability_supported,
       u.installed, u.is_default,
       s.id AS structure_id, s.finess, s.finess_ej, s.name AS structure_name, s.category,
       s.department, s.commune, c.name AS commune_name, s.address, s.postal_code,
       s.location_precision, s.imported_at, s.created_at AS structure_created_at,
       s.authority,
       ST_Y(s.location::geometry) AS lat, ST_X(s.location::geometry) AS lon,
       ST_Y(c.location::geometry) AS commune_lat, ST_X(c.location::geometry) AS commune_lon
"""

_FILTERS = """
 WHERE ($1::text[] IS NULL OR s.department = ANY($1::text[]))
   AND ($2::text[] IS NULL OR s.postal_code LIKE ANY($2::text[]))
   AND ($3::uuid[] IS NULL OR s.id = ANY($3::uuid[]))
   AND ($4::uuid[] IS NULL OR u.id = ANY($4::uuid[]))
"""


def _prefixes(values: list[str] | None) -> list[str] | None:
    """FHIR string search matches the start of the value: ``690`` finds ``69003``."""
    if values is None:
        return None
    return [v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for v in values]


async def units(
    conn: asyncpg.Connection,
    *,
    departments: list[str] | None = None,
    postal_codes: list[str] | None = None,
    structure_ids: list[UUID] | None = None,
    unit_ids: list[UUID] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of units with their establishment and snapshots, and the total matching."""
    args = (departments, _prefixes(postal_codes), structure_ids, unit_ids)
    rows = []
    if limit > 0:
        rows = await conn.fetch(
            f"""
            SELECT {_UNIT_COLUMNS}, count(*) OVER () AS total
              FROM units u
              JOIN structures s ON s.id = u.structure_id
              JOIN communes c ON c.insee = s.commune
            {_FILTERS}
             ORDER BY s.department, s.finess, u.name, u.id
             LIMIT $5 OFFSET $6
            """,
            *args,
            limit,
            offset,
        )
    if rows:
        total = rows[0]["total"]
    else:
        total = await conn.fetchval(
            f"SELECT count(*) FROM units u JOIN structures s ON s.id = u.structure_id {_FILTERS}",
            *args,
        )
    snapshots = await conn.fetch(
        f"SELECT {SNAPSHOT_COLUMNS} FROM capacity_snapshots WHERE unit_id = ANY($1::uuid[])",
        [r["id"] for r in rows],
    )
    by_unit: dict[UUID, list[dict[str, Any]]] = {}
    for snap in snapshots:
        by_unit.setdefault(snap["unit_id"], []).append(dict(snap))
    return [{**dict(r), "snapshots": by_unit.get(r["id"], [])} for r in rows], total


async def structure(conn: asyncpg.Connection, structure_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """
        SELECT s.id AS structure_id, s.finess, s.finess_ej, s.name AS structure_name,
               s.category, s.department, s.commune, c.name AS commune_name, s.address,
               s.postal_code, s.location_precision, s.imported_at,
               s.created_at AS structure_created_at, s.authority,
               ST_Y(s.location::geometry) AS lat, ST_X(s.location::geometry) AS lon,
               ST_Y(c.location::geometry) AS commune_lat,
               ST_X(c.location::geometry) AS commune_lon
          FROM structures s
          JOIN communes c ON c.insee = s.commune
         WHERE s.id = $1
        """,
        structure_id,
    )
    return dict(row) if row else None
