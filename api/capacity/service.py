"""Declaring a unit's capacity: one transaction writes the history row, the snapshot, the
idempotency record, the audit entry and the outbox event — all or nothing."""

from typing import Any
from uuid import UUID

import asyncpg
import orjson
from fastapi.responses import Response

from api import idempotency
from api.auth import Principal
from api.capacity.schemas import CapacityIn, CapacitySnapshot
from api.errors import Conflict, Forbidden, Invalid, NotFound, field_error

COUNT_FIELDS = ("installed", "occupied", "reserved", "closed", "available", "additional")

SNAPSHOT_COLUMNS = (
    "unit_id, temporality, version, declared_at, declared_by, installed, occupied, reserved,"
    " closed, available, additional, available_gender"
)


def parse_if_match(value: str | None) -> int | None:
    """Accept ``3``, ``"3"`` and ``W/"3"``: the snapshot version is the entity tag."""
    if value is None:
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit():
        raise field_error("If-Match", 'attendu : le numéro de version, par ex. "3"')
    return int(raw)


_PREVIOUS = ", ".join(f"c.{c.strip()} AS prev_{c.strip()}" for c in SNAPSHOT_COLUMNS.split(","))
LOCK_SQL = f"""
SELECT u.id, u.installed, s.id AS structure_id, s.finess, s.department, now() AS now,
       snap.*
  FROM units u
  JOIN structures s ON s.id = u.structure_id
  LEFT JOIN LATERAL (
        SELECT {_PREVIOUS}
          FROM capacity_snapshots c
         WHERE c.unit_id = u.id AND c.temporality = $2
           FOR UPDATE
       ) snap ON true
 WHERE u.id = $1
"""
"""The unit, its establishment, and its snapshot for the temporality, row-locked: concurrent
declarations and workflow moves on the same snapshot serialize here."""

# The hot path writes its six rows in one statement (a round trip is worth more than the
# CTE's length): history, snapshot, the unit's installed count, the outbox event (the same
# row ``api.outbox.emit`` writes, with its NOTIFY fired at commit), the audit entry (as
# ``api.audit.record``) and the response kept for Idempotency-Key replays.
WRITE_SQL = """
WITH history AS (
    INSERT INTO capacity_declarations
           (unit_id, temporality, version, declared_at, declared_by, source,
            installed, occupied, reserved, closed, available, additional, available_gender)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
), snapshot AS (
    INSERT INTO capacity_snapshots AS s
           (unit_id, temporality, version, declared_at, declared_by, source,
            installed, occupied, reserved, closed, available, additional, available_gender,
            location)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, st.location
      FROM units u JOIN structures st ON st.id = u.structure_id
     WHERE u.id = $1
    ON CONFLICT (unit_id, temporality) DO UPDATE
       SET version = EXCLUDED.version, declared_at = EXCLUDED.declared_at,
           declared_by = EXCLUDED.declared_by, source = EXCLUDED.source,
           installed = EXCLUDED.installed, occupied = EXCLUDED.occupied,
           reserved = EXCLUDED.reserved, closed = EXCLUDED.closed,
           available = EXCLUDED.available, additional = EXCLUDED.additional,
           available_gender = EXCLUDED.available_gender
), unit AS (
    UPDATE units SET installed = $7
     WHERE id = $1 AND $2 = 'current' AND installed <> $7
), event AS (
    INSERT INTO outbox_events (type, department, occurred_at, data, national_data)
    VALUES ('capacity.updated', $14, $4, $15, $15)
), audit AS (
    INSERT INTO audit_entries (occurred_at, actor, role, action, object_type, object_id,
                               department, detail)
    VALUES ($4, $5, $16, 'capacity.declare', 'unit', $17, $14, $18)
), idempotency AS (
    UPDATE idempotency_keys SET status_code = 200, response = $19
     WHERE principal = $20 AND key = $21
)
SELECT pg_notify('places_outbox', $14)
"""


def check_may_declare(principal: Principal, unit: asyncpg.Record) -> None:
    if principal.role == "admin":
        return
    if principal.role == "structure" and principal.finess == unit["finess"]:
        return
    raise Forbidden("Seul l'établissement de cette unité peut déclarer sa capacité.")


def merge(previous: dict[str, Any], body: CapacityIn) -> dict[str, Any]:
    merged = dict(previous)
    for name in COUNT_FIELDS:
        value = getattr(body, name)
        if value is not None:
            merged[name] = value
    if body.available_gender is not None:
        merged["available_gender"] = body.available_gender
    return merged


def check_invariants(counts: dict[str, Any]) -> None:
    used = counts["occupied"] + counts["reserved"] + counts["available"] + counts["closed"]
    ceiling = counts["installed"] + counts["additional"]
    if used > ceiling:
        raise Invalid(
            f"available: occupés + réservés + disponibles + fermés ({used}) dépassent "
            f"installés + supplémentaires ({ceiling}).",
            errors=[
                {
                    "field": "available",
                    "message": f"occupied + reserved + available + closed = {used} "
                    f"> installed + additional = {ceiling}",
                }
            ],
        )


async def check_reserved_covers_holds(
    conn: asyncpg.Connection, unit_id: UUID, reserved: int
) -> None:
    """A declaration is the establishment's word, except that ``reserved`` cannot drop below
    the places held through Places on the unit (see ``api.holds.ledger``): otherwise a hold's
    release would give back places the snapshot no longer counts. Called with the snapshot
    row locked, so no hold can be taken or released meanwhile."""
    held: int = await conn.fetchval(
        "SELECT coalesce(sum(places), 0) FROM holds WHERE unit_id = $1 AND status = 'held'",
        unit_id,
    )
    if reserved < held:
        raise field_error(
            "reserved",
            f"{reserved} place(s) réservée(s) déclarée(s), mais {held} place(s) sont "
            "réservées via Places sur cette unité (admettez, libérez ou refusez d'abord)",
        )


async def declare(
    pool: asyncpg.Pool,
    principal: Principal,
    unit_id: UUID,
    body: CapacityIn,
    key: str,
    if_match: int | None,
    source: str = "api",
) -> Response:
    fingerprint = idempotency.request_hash(
        "PUT", f"/v1/units/{unit_id}/capacity", body.model_dump(exclude_none=True)
    )
    async with pool.acquire() as conn, conn.transaction():
        unit = await conn.fetchrow(LOCK_SQL, unit_id, body.temporality)
        if unit is None:
            raise NotFound(f"Unité {unit_id} inconnue.")
        check_may_declare(principal, unit)
        replay = await idempotency.claim(conn, principal.key, key, fingerprint)
        if replay is not None:
            return replay
        declared = unit["prev_version"] is not None
        version = unit["prev_version"] if declared else 0
        if if_match is not None and if_match != version:
            raise Conflict(
                f"Version périmée : la déclaration courante est en version {version}, "
                f"If-Match annonçait {if_match}. Rechargez puis redéclarez.",
                current_version=version,
            )
        if declared:
            base = {name: unit[f"prev_{name}"] for name in (*COUNT_FIELDS, "available_gender")}
        else:
            base = {name: 0 for name in COUNT_FIELDS} | {
                "installed": unit["installed"],
                "available_gender": "any",
            }
        counts = merge(base, body)
        check_invariants(counts)
        if body.temporality == "current" and counts["reserved"] < base["reserved"]:
            # Only a lower ``reserved`` can uncover places held through Places.
            await check_reserved_covers_holds(conn, unit_id, counts["reserved"])
        snapshot = CapacitySnapshot(
            unit_id=unit_id,
            temporality=body.temporality,
            version=version + 1,
            declared_at=unit["now"],
            declared_by=principal.sub,
            **counts,
        ).model_dump(mode="json")
        event = {**snapshot, "structure_id": str(unit["structure_id"]), "finess": unit["finess"]}
        await conn.execute(
            WRITE_SQL,
            unit_id,
            body.temporality,
            version + 1,
            unit["now"],
            principal.sub,
            source,
            *(counts[name] for name in COUNT_FIELDS),
            counts["available_gender"],
            unit["department"],
            event,
            principal.role,
            str(unit_id),
            {"temporality": body.temporality, "version": version + 1},
            snapshot,
            principal.key,
            key,
        )
    return Response(
        orjson.dumps(snapshot),
        media_type="application/json",
        headers={"ETag": f'"{snapshot["version"]}"'},
    )
