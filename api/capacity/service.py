"""Declaring a unit's capacity: one transaction writes the history row, the snapshot, the
idempotency record, the audit entry and the outbox event — all or nothing."""

from typing import Any
from uuid import UUID

import asyncpg
from fastapi.responses import JSONResponse

from api import audit, idempotency, outbox
from api.auth import Principal
from api.capacity.schemas import CapacityIn, CapacitySnapshot
from api.errors import Problem, field_error

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


async def unit_owner(conn: asyncpg.Connection, unit_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        SELECT u.id, u.installed, s.id AS structure_id, s.finess, s.department
          FROM units u
          JOIN structures s ON s.id = u.structure_id
         WHERE u.id = $1
        """,
        unit_id,
    )
    if row is None:
        raise Problem(404, f"Unité {unit_id} inconnue.")
    return row


def check_may_declare(principal: Principal, unit: asyncpg.Record) -> None:
    if principal.role == "admin":
        return
    if principal.role == "structure" and principal.finess == unit["finess"]:
        return
    raise Problem(403, "Seul l'établissement de cette unité peut déclarer sa capacité.")


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
        raise Problem(
            422,
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
) -> JSONResponse:
    fingerprint = idempotency.request_hash(
        "PUT", f"/v1/units/{unit_id}/capacity", body.model_dump(exclude_none=True)
    )
    async with pool.acquire() as conn, conn.transaction():
        unit = await unit_owner(conn, unit_id)
        check_may_declare(principal, unit)
        replay = await idempotency.claim(conn, principal.key, key, fingerprint)
        if replay is not None:
            return replay
        previous = await conn.fetchrow(
            f"SELECT {SNAPSHOT_COLUMNS} FROM capacity_snapshots"
            " WHERE unit_id = $1 AND temporality = $2 FOR UPDATE",
            unit_id,
            body.temporality,
        )
        version = previous["version"] if previous else 0
        if if_match is not None and if_match != version:
            raise Problem(
                409,
                f"Version périmée : la déclaration courante est en version {version}, "
                f"If-Match annonçait {if_match}. Rechargez puis redéclarez.",
                current_version=version,
            )
        base = (
            dict(previous)
            if previous
            else {
                "installed": unit["installed"],
                "occupied": 0,
                "reserved": 0,
                "closed": 0,
                "available": 0,
                "additional": 0,
                "available_gender": "any",
            }
        )
        counts = merge(base, body)
        check_invariants(counts)
        if body.temporality == "current":
            await check_reserved_covers_holds(conn, unit_id, counts["reserved"])
        row = await conn.fetchrow(
            f"""
            WITH history AS (
                INSERT INTO capacity_declarations
                       (unit_id, temporality, version, declared_at, declared_by, source,
                        installed, occupied, reserved, closed, available, additional,
                        available_gender)
                VALUES ($1, $2, $3, now(), $4, $5, $6, $7, $8, $9, $10, $11, $12)
            )
            INSERT INTO capacity_snapshots AS s
                   (unit_id, temporality, version, declared_at, declared_by, source,
                    installed, occupied, reserved, closed, available, additional,
                    available_gender)
            VALUES ($1, $2, $3, now(), $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (unit_id, temporality) DO UPDATE
               SET version = EXCLUDED.version, declared_at = EXCLUDED.declared_at,
                   declared_by = EXCLUDED.declared_by, source = EXCLUDED.source,
                   installed = EXCLUDED.installed, occupied = EXCLUDED.occupied,
                   reserved = EXCLUDED.reserved, closed = EXCLUDED.closed,
                   available = EXCLUDED.available, additional = EXCLUDED.additional,
                   available_gender = EXCLUDED.available_gender
            RETURNING {SNAPSHOT_COLUMNS}
            """,
            unit_id,
            body.temporality,
            version + 1,
            principal.sub,
            source,
            *(counts[name] for name in COUNT_FIELDS),
            counts["available_gender"],
        )
        if body.temporality == "current" and counts["installed"] != unit["installed"]:
            await conn.execute(
                "UPDATE units SET installed = $2 WHERE id = $1", unit_id, counts["installed"]
            )
        snapshot = CapacitySnapshot.model_validate(dict(row)).model_dump(mode="json")
        await outbox.emit(
            conn,
            "capacity.updated",
            unit["department"],
            {**snapshot, "structure_id": str(unit["structure_id"]), "finess": unit["finess"]},
        )
        await audit.record(
            conn,
            principal,
            "capacity.declare",
            "unit",
            str(unit_id),
            unit["department"],
            {"temporality": body.temporality, "version": snapshot["version"]},
        )
        await idempotency.store(conn, principal.key, key, 200, snapshot)
    return JSONResponse(snapshot, headers={"ETag": f'"{snapshot["version"]}"'})
