"""The school, the siblings already placed and the children's disability services: from what
a request or a search body names to the public points the matching library scores (#16).

A point here is always public: a commune's centroid, a unit's structure (its commune's for a
lieu de vie, ``api.precision.point_sql``), a carer's ``public_location`` (their commune's, never
the home). What a request stores for a sibling is its kind, its id and its commune — for a
carer, nothing finer than the commune ever leaves this module or enters the database.
"""

from collections.abc import Sequence
from typing import Any

import asyncpg

from api.errors import Invalid, field_error
from api.precision import point_sql
from api.requests.schemas import ChildIn, PlacedSiblingIn, SchoolIn
from matching import DisabilityService, PlacedSibling, Point

_UNIT_SQL = f"""
SELECT u.id::text AS id, s.id::text AS structure_id, s.commune,
       ST_Y(({point_sql("s", "cm")})::geometry) AS lat,
       ST_X(({point_sql("s", "cm")})::geometry) AS lon
  FROM units u
  JOIN structures s ON s.id = u.structure_id
  JOIN communes cm ON cm.insee = s.commune
 WHERE u.id = $1
"""
_CARER_SQL = """
SELECT c.id::text AS id, c.commune,
       ST_Y(c.public_location::geometry) AS lat, ST_X(c.public_location::geometry) AS lon
  FROM foster_carers c
 WHERE c.id = $1 AND c.public_location IS NOT NULL
"""
_COMMUNE_SQL = """
SELECT insee AS commune, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon
  FROM communes WHERE insee = $1
"""


async def school_point(conn: asyncpg.Connection, school: SchoolIn, field: str) -> Point:
    """The school commune's point; an unknown commune is a 422 naming ``field``."""
    row = await conn.fetchrow(_COMMUNE_SQL, school.commune)
    if row is None:
        raise field_error(field, f"commune INSEE {school.commune} inconnue")
    return Point(row["lat"], row["lon"])


async def disability_services(
    conn: asyncpg.Connection, children: Sequence[ChildIn], field: str = "children"
) -> list[DisabilityService | None]:
    """Each child's disability service at its commune's point (None without one); an unknown
    commune is a 422 naming ``children[i].disability_service.commune``."""
    out: list[DisabilityService | None] = []
    for i, child in enumerate(children):
        service = child.disability_service
        if service is None:
            out.append(None)
            continue
        row = await conn.fetchrow(_COMMUNE_SQL, service.commune)
        if row is None:
            where = f"{field}[{i}].disability_service.commune"
            raise field_error(where, f"commune INSEE {service.commune} inconnue")
        out.append(DisabilityService(service.kind, service.commune, row["lat"], row["lon"]))
    return out


async def placed_sibling(
    conn: asyncpg.Connection, item: PlacedSiblingIn, field: str
) -> PlacedSibling:
    """One sibling's place with its public point; an unknown unit, carer or commune is a 422
    naming ``field`` (``siblings_placed[i]``)."""
    if item.unit is not None:
        row = await conn.fetchrow(_UNIT_SQL, item.unit)
        if row is None:
            raise field_error(field, f"unité {item.unit} inconnue")
        return PlacedSibling(
            "unit", row["commune"], row["lat"], row["lon"], row["id"], row["structure_id"]
        )
    if item.carer is not None:
        row = await conn.fetchrow(_CARER_SQL, item.carer)
        if row is None:
            raise field_error(field, f"assistant familial {item.carer} inconnu")
        return PlacedSibling("carer", row["commune"], row["lat"], row["lon"], row["id"])
    assert item.commune is not None
    row = await conn.fetchrow(_COMMUNE_SQL, item.commune)
    if row is None:
        raise field_error(field, f"commune INSEE {item.commune} inconnue")
    return PlacedSibling("commune", row["commune"], row["lat"], row["lon"])


async def siblings_placed(
    conn: asyncpg.Connection, items: list[PlacedSiblingIn], field: str = "siblings_placed"
) -> list[PlacedSibling]:
    """Every sibling's place, in order; the first unknown one is a 422 naming its index."""
    return [await placed_sibling(conn, item, f"{field}[{i}]") for i, item in enumerate(items)]


def stored(place: PlacedSibling) -> dict[str, Any]:
    """What a request records of a sibling's place: kind, id, commune — never a point."""
    return {"kind": place.kind, "id": place.id, "commune": place.commune}


def as_input(record: dict[str, Any]) -> PlacedSiblingIn:
    """A stored sibling's place back as input (search re-resolves its point: a unit's or a
    carer's commune may have changed since)."""
    kind = record["kind"]
    if kind == "commune":
        return PlacedSiblingIn(commune=record["commune"])
    return PlacedSiblingIn.model_validate({kind: record["id"]})


async def recorded_siblings(
    conn: asyncpg.Connection, records: list[dict[str, Any]]
) -> list[PlacedSibling]:
    """A request's recorded siblings with their points today: a unit or carer that no longer
    exists (or lost its public point) still counts at its recorded commune."""
    out = []
    for record in records:
        try:
            out.append(await placed_sibling(conn, as_input(record), "siblings_placed"))
        except Invalid:  # gone since: its recorded commune still says where
            row = await conn.fetchrow(_COMMUNE_SQL, record["commune"])
            if row is not None:
                out.append(PlacedSibling("commune", row["commune"], row["lat"], row["lon"]))
    return out
