"""Registry reads in SQL."""

from typing import Any
from uuid import UUID

import asyncpg

from api.capacity.repository import CARER_PUBLIC_COLUMNS, SNAPSHOT_COLUMNS


async def departments(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT code, name, region_code FROM departments ORDER BY code")


async def authorities(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """The competent authorities, in department order (…, 66, 6AE, 69D, 69M, 70, …)."""
    return await conn.fetch(
        "SELECT code, name, kind, departments FROM authorities ORDER BY departments[1], code"
    )


async def department_exists(conn: asyncpg.Connection, code: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM departments WHERE code = $1", code))


async def structures(
    conn: asyncpg.Connection,
    department: str | None,
    category: str | None,
    limit: int,
    offset: int,
    structure_id: UUID | None = None,
    authority: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of structures with their units and capacity snapshots (three queries, all
    index-driven: structures by department/category or authority, units by structure,
    snapshots by unit). Each item has the exact ``location`` and its commune's point:
    ``api.precision.structure_out`` makes what a caller may see of it."""
    # Only the filters asked for are written out: "$n IS NULL OR …" would let a generic plan
    # scan every structure to find one by id.
    where, args = [], []
    filters = (
        ("department", department),
        ("category", category),
        ("id", structure_id),
        ("authority", authority),
    )
    for column, value in filters:
        if value is not None:
            args.append(value)
            where.append(f"s.{column} = ${len(args)}")
    condition = " AND ".join(where) or "true"
    rows = await conn.fetch(
        f"""
        SELECT s.id, s.finess, s.name, s.category, s.department, s.commune, s.authority,
               s.location_precision,
               ST_Y(s.location::geometry) AS lat, ST_X(s.location::geometry) AS lon,
               ST_Y(cm.location::geometry) AS commune_lat,
               ST_X(cm.location::geometry) AS commune_lon,
               count(*) OVER () AS total
          FROM structures s
          LEFT JOIN communes cm ON cm.insee = s.commune
         WHERE {condition}
         ORDER BY s.department, s.name, s.id
         LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}
        """,
        *args,
        limit,
        offset,
    )
    if not rows:
        total = await conn.fetchval(f"SELECT count(*) FROM structures s WHERE {condition}", *args)
        return [], total
    ids = [r["id"] for r in rows]
    units = await conn.fetch(
        """
        SELECT id, structure_id, name, age_min_months, age_max_months, sexes, timings, publics,
               formulas, disability_specialised, disability_supported, installed
          FROM units
         WHERE structure_id = ANY($1::uuid[])
         ORDER BY name, id
        """,
        ids,
    )
    snapshots = await conn.fetch(
        f"SELECT {SNAPSHOT_COLUMNS} FROM capacity_snapshots WHERE unit_id = ANY($1::uuid[])",
        [u["id"] for u in units],
    )
    by_unit: dict[UUID, dict[str, Any]] = {}
    for snap in snapshots:
        by_unit.setdefault(snap["unit_id"], {})[snap["temporality"]] = dict(snap)
    units_by_structure: dict[UUID, list[dict[str, Any]]] = {}
    for unit in units:
        snaps = by_unit.get(unit["id"], {})
        units_by_structure.setdefault(unit["structure_id"], []).append(
            {
                **dict(unit),
                "capacity": snaps.get("current"),
                "forecasts": [snaps[t] for t in ("h1", "h24", "h48", "d7") if t in snaps],
            }
        )
    items = [
        {
            **{k: r[k] for k in ("id", "finess", "name", "category", "department", "commune")},
            "location": {"lat": r["lat"], "lon": r["lon"], "precision": r["location_precision"]},
            # For api.precision.structure_out, which decides what a caller sees (and drops
            # these two).
            "authority": r["authority"],
            "commune_location": None
            if r["commune_lat"] is None
            else {"lat": r["commune_lat"], "lon": r["commune_lon"]},
            "units": units_by_structure.get(r["id"], []),
        }
        for r in rows
    ]
    return items, rows[0]["total"]


_THE_AUTHORITYS = "(authority = $1 OR employer_authority = $1)"


async def foster_carers(
    conn: asyncpg.Connection, authority: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """One page of the authority's carers: those whose agrément it issued (their home's
    authority) and those it employs (``employer_authority``: a carer may live across its
    border) — #15. A placement service's carers are listed by their issuer."""
    rows = await conn.fetch(
        f"""
        SELECT {CARER_PUBLIC_COLUMNS}, count(*) OVER () AS total
          FROM foster_carers
         WHERE {_THE_AUTHORITYS}
         ORDER BY commune, id
         LIMIT $2 OFFSET $3
        """,
        authority,
        limit,
        offset,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval(
            f"SELECT count(*) FROM foster_carers WHERE {_THE_AUTHORITYS}", authority
        )
    )
    return list(rows), total


async def structure_by_id(conn: asyncpg.Connection, structure_id: UUID) -> dict[str, Any] | None:
    items, _ = await structures(conn, None, None, 1, 0, structure_id=structure_id)
    return items[0] if items else None
