"""Declaring capacity: a unit's counts (the establishment's word) and a carer's free places
and status. Each declaration is one transaction through ``api.capacity.repository`` and
``api.changes``: history, snapshot, Idempotency-Key record, audit entry and outbox event —
all or nothing."""

from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from api import changes, events
from api.auth import Principal
from api.capacity import repository
from api.capacity.repository import COUNT_FIELDS
from api.capacity.schemas import AvailabilityIn, CapacityIn, CapacitySnapshot
from api.changes import Idempotency, Written
from api.errors import Conflict, Forbidden, Invalid, NotFound, field_error
from api.registry.schemas import FosterCarerOut


def check_may_declare(principal: Principal, unit: asyncpg.Record) -> None:
    """The unit's establishment; the platform operator corrects any (no child data)."""
    if principal.role == "operator":
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
    the places held through Places on the unit (see ``api.capacity.moves``): otherwise a
    hold's release would give back places the snapshot no longer counts. Called with the
    snapshot row locked, so no hold can be taken or released meanwhile."""
    held = await repository.held_on_unit(conn, unit_id)
    if reserved < held:
        raise field_error(
            "reserved",
            f"{reserved} place(s) réservée(s) déclarée(s), mais {held} place(s) sont "
            "réservées via Places sur cette unité (admettez, libérez ou refusez d'abord)",
        )


async def declare_unit(
    pool: asyncpg.Pool,
    principal: Principal,
    unit_id: UUID,
    body: CapacityIn,
    idempotency: Idempotency,
    if_match: int | None,
    source: str = "api",
) -> Written:
    async with pool.acquire() as conn, conn.transaction():
        unit = await repository.lock_unit(conn, unit_id, body.temporality)
        if unit is None:
            raise NotFound(f"Unité {unit_id} inconnue.")
        check_may_declare(principal, unit)
        replay = await changes.claim(
            conn, principal, idempotency, body.model_dump(exclude_none=True)
        )
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
        event = events.capacity_updated(
            unit["department"],
            snapshot,
            str(unit["structure_id"]),
            unit["finess"],
            source,
            authority=unit["authority"],
        )
        await repository.declare_unit(
            conn,
            unit_id,
            body.temporality,
            version + 1,
            unit["now"],
            principal.sub,
            source,
            *(counts[name] for name in COUNT_FIELDS),
            counts["available_gender"],
            event.type,
            event.department,
            event.data,
            principal.role,
            "capacity.declare",
            str(unit_id),
            {"temporality": body.temporality, "version": version + 1},
            200,
            snapshot,
            principal.key,
            idempotency.key,
            changes.CHANNEL,
            event.authority,
            principal.person_id,
            principal.function,
            principal.authority,
        )
    return Written(snapshot)


def check_may_declare_carer(principal: Principal, carer: asyncpg.Record) -> None:
    """The carer, the authority of their agrément (its functions that declare), or the
    platform operator."""
    if not principal.may("capacity.declare"):
        raise Forbidden("Cette fonction ne déclare pas de capacité.")
    if principal.role == "operator":
        return
    if principal.role == "carer" and principal.carer_id == str(carer["id"]):
        return
    if principal.for_authority and principal.authority == carer["authority"]:
        return
    raise Forbidden(
        "Seul l'assistant familial ou l'autorité compétente de son agrément peut déclarer."
    )


def check_carer_may_set_status(principal: Principal, current: str, wanted: str) -> None:
    """Suspension is a decision of the authority that issued the agrément (CASF L421-6), never
    of the carer: a carer can neither suspend nor reinstate themself, and declares nothing
    while suspended (#15; the agrément's own states come with that issue)."""
    if principal.role != "carer" or "suspended" not in (current, wanted):
        return
    message = (
        "votre agrément est suspendu : seule l'autorité qui l'a délivré peut lever la suspension"
        if current == "suspended"
        else "la suspension est une décision de l'autorité qui a délivré l'agrément"
    )
    raise Forbidden(f"status : {message}.", errors=[{"field": "status", "message": message}])


def check_carer_body(body: AvailabilityIn, agrement_capacity: int, taken: int = 0) -> None:
    """``taken``: places held or occupied through Places (holds ``held`` or ``admitted``):
    a carer cannot declare them free again without the workflow releasing them."""
    if body.available_places > agrement_capacity:
        raise field_error(
            "available_places",
            f"{body.available_places} places déclarées pour un agrément de {agrement_capacity}",
        )
    if body.available_places > agrement_capacity - taken:
        raise field_error(
            "available_places",
            f"{taken} place(s) réservée(s) ou occupée(s) via Places sur un agrément de "
            f"{agrement_capacity} : au plus {agrement_capacity - taken} disponible(s)",
        )
    if body.until is not None and body.until < date.today():
        raise field_error("until", "date passée")
    if body.status == "active" and body.until is not None:
        raise field_error("until", "seulement pour un congé ou une suspension")


async def declare_carer(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: AvailabilityIn,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    async with pool.acquire() as conn, conn.transaction():
        carer = await repository.lock_carer(conn, carer_id)
        if carer is None:
            raise NotFound(f"Assistant familial {carer_id} inconnu.")
        check_may_declare_carer(principal, carer)
        check_carer_may_set_status(principal, carer["status"], body.status)
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        if if_match is not None and if_match != carer["version"]:
            raise Conflict(
                f"Version périmée : version courante {carer['version']}, If-Match {if_match}.",
                current_version=carer["version"],
            )
        taken = await repository.taken_on_carer(conn, carer_id)
        check_carer_body(body, carer["agrement_capacity"], taken)
        row = await repository.write_carer(
            conn, carer_id, body.available_places, body.status, body.until, principal.sub, "api"
        )
        out = FosterCarerOut.model_validate(dict(row)).model_dump(mode="json")
        event = events.carer_availability_updated(
            carer["department"], out, "api", authority=carer["authority"], before=carer
        )
        await changes.emit(conn, event)
        await changes.audit(
            conn,
            principal,
            "carer.declare",
            "foster_carer",
            str(carer_id),
            carer["department"],
            {"version": row["version"]},
            authority=carer["authority"],
        )
        return await changes.store(conn, principal, idempotency, Written(out))
