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
from api.capacity.schemas import AvailabilityIn, CapacityIn, CapacitySnapshot, OpennessIn
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


def is_employer(principal: Principal, carer: asyncpg.Record) -> bool:
    """The carer's employer: the authority that employs them (its functions), or the
    placement service (FINESS 236 structure) whose token it is."""
    if principal.for_authority and carer["employer_authority"] is not None:
        return principal.authority == carer["employer_authority"]
    if principal.role == "structure" and principal.finess is not None:
        return principal.finess == carer["employer_finess"]
    return False


def check_may_declare_carer(principal: Principal, carer: asyncpg.Record) -> None:
    """The carer; their employer (the employing authority's functions that declare, or the
    placement service's structure token, #15); the authority that issued their agrément
    (its functions that declare: it may correct a declaration); the platform operator."""
    if not principal.may("capacity.declare"):
        raise Forbidden("Cette fonction ne déclare pas de capacité.")
    if principal.role == "operator":
        return
    if principal.role == "carer" and principal.carer_id == str(carer["id"]):
        return
    if principal.for_authority and principal.authority == carer["authority"]:
        return
    if is_employer(principal, carer):
        return
    raise Forbidden(
        "Seul l'assistant familial, son employeur ou l'autorité qui a délivré son agrément "
        "peut déclarer."
    )


def check_carer_may_set_status(principal: Principal, wanted: str) -> None:
    """``suspended`` is not the carer's part: suspension is a decision on the agrément by the
    authority that issued it (CASF L421-6). A carer asking for it is refused (403: not theirs
    to decide); anyone else is told where it is decided (422: the wrong endpoint). Both name
    ``status``; nothing is written."""
    if wanted != "suspended":
        return
    if principal.role == "carer":
        message = "la suspension est une décision de l'autorité qui a délivré l'agrément"
        raise Forbidden(f"status : {message}.", errors=[{"field": "status", "message": message}])
    raise field_error(
        "status",
        "la suspension est décidée sur l'agrément : POST /v1/agrements/{id}/suspend",
    )


def check_carer_body(
    body: AvailabilityIn, carer: asyncpg.Record, taken: int = 0, today: date | None = None
) -> None:
    """The carer's own part within the agrément (CASF L421-5: no more children than it
    allows). ``taken``: places held or occupied through Places (holds ``held`` or
    ``admitted``): a carer cannot declare them free again without the workflow releasing
    them."""
    agrement_capacity = carer["agrement_capacity"]
    today = today or date.today()
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
    if body.until is not None and body.until < today:
        raise field_error("until", "date passée")
    if body.status == "active" and body.until is not None:
        raise field_error("until", "seulement pour un congé")
    if body.status == "active" and body.leave_from is not None:
        raise field_error("leave_from", "seulement pour un congé")
    if body.leave_from is not None and body.until is not None and body.until < body.leave_from:
        raise field_error("until", "fin du congé avant son début")
    prefs = body.preferences
    if prefs is None:
        return
    assert prefs.age_min_months is not None and prefs.age_max_months is not None
    if prefs.age_min_months < carer["age_min_months"]:
        raise field_error(
            "preferences.age_min_months",
            f"{prefs.age_min_months} mois : en dessous de l'agrément"
            f" ({carer['age_min_months']} mois)",
        )
    if prefs.age_max_months > carer["age_max_months"]:
        raise field_error(
            "preferences.age_max_months",
            f"{prefs.age_max_months} mois : au-delà de l'agrément ({carer['age_max_months']} mois)",
        )
    for name in ("timings", "publics", "formulas"):
        outside = sorted(set(getattr(prefs, name) or ()) - set(carer[name]))
        if outside:
            raise field_error(f"preferences.{name}", f"hors de l'agrément : {', '.join(outside)}")


def check_agrement_allows_places(carer: asyncpg.Record, available_places: int) -> None:
    """Free places only on an agrément valid today (CASF L421-3, L421-6) — the trigger of
    migration 0012 refuses it anyway. A 409, not a 422: the body is right, the agrément's
    state (the issuer's decision, or the calendar) refuses it now; the problem carries the
    derived state. Lowering or keeping places is always accepted (a carer whose agrément
    was just suspended still declares their leave)."""
    if available_places > 0 and not carer["agrement_valid"]:
        state = carer["agrement_today"]
        raise Conflict(
            f"available_places : agrément {AGREMENT_LABELS.get(state, state)} aujourd'hui, "
            "aucune place ne peut être déclarée disponible.",
            errors=[{"field": "available_places", "message": f"agrément {state}"}],
            agrement_state=state,
        )


AGREMENT_LABELS = {
    "suspended": "suspendu",
    "withdrawn": "retiré",
    "expired": "expiré",
    "not_yet_valid": "pas encore en vigueur",
}


def agrement_violation(exc: asyncpg.CheckViolationError) -> Conflict | None:
    """The database's last word (triggers of migration 0012) as a clean 409, for a race the
    service's own check could not see (the agrément changed between its read and the
    write cannot happen under the row lock, but a direct rule is a direct rule)."""
    if exc.constraint_name in ("foster_carers_agrement_valid", "holds_agrement_valid"):
        return Conflict(
            "L'agrément de l'assistant familial n'est pas valide aujourd'hui.",
            agrement_state="not_valid",
            reason="agrement_not_valid",
        )
    return None


async def declare_carer(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: AvailabilityIn,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    try:
        return await _declare_carer(pool, principal, carer_id, body, idempotency, if_match)
    except asyncpg.CheckViolationError as exc:
        refusal = agrement_violation(exc)
        if refusal is None:
            raise
        raise refusal from exc


async def _declare_carer(
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
        check_carer_may_set_status(principal, body.status)
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        if if_match is not None and if_match != carer["version"]:
            raise Conflict(
                f"Version périmée : version courante {carer['version']}, If-Match {if_match}.",
                current_version=carer["version"],
            )
        taken = await repository.taken_on_carer(conn, carer_id)
        check_carer_body(body, carer, taken, await conn.fetchval("SELECT current_date"))
        check_agrement_allows_places(carer, body.available_places)
        prefs = body.preferences
        row = await repository.write_carer(
            conn,
            carer_id,
            body.available_places,
            body.status,
            body.until,
            principal.sub,
            "api",
            leave_from=body.leave_from if body.status == "leave" else None,
            preferences=None if prefs is None else prefs.offer_values(),
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


def check_may_open(principal: Principal, carer: asyncpg.Record) -> None:
    """Openness is the employer's choice (the law makes an authority's carers its
    employees; a placement service's are its own): the employing authority's functions
    that declare capacity, the employer structure, or the platform operator."""
    if not principal.may("capacity.declare"):
        raise Forbidden("Cette fonction ne déclare pas de capacité.")
    if principal.role == "operator" or is_employer(principal, carer):
        return
    raise Forbidden(
        "Seul l'employeur de l'assistant familial décide s'il est proposé aux autres autorités."
    )


async def set_openness(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: OpennessIn,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    """``PUT /v1/foster-carers/{id}/openness``: versioned on the carer's part (If-Match
    required), idempotent, audited (``carer.openness``), with ``carer.availability_updated``
    (source ``openness``) on the carer's authority's feed."""
    async with pool.acquire() as conn, conn.transaction():
        carer = await repository.lock_carer(conn, carer_id)
        if carer is None:
            raise NotFound(f"Assistant familial {carer_id} inconnu.")
        check_may_open(principal, carer)
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        if if_match != carer["version"]:
            raise Conflict(
                f"Version périmée : version courante {carer['version']}, If-Match {if_match}.",
                current_version=carer["version"],
            )
        row = await repository.write_openness(conn, carer_id, body.open_to_other_authorities)
        out = FosterCarerOut.model_validate(dict(row)).model_dump(mode="json")
        await changes.emit(
            conn,
            events.carer_availability_updated(
                carer["department"], out, "openness", authority=carer["authority"], before=carer
            ),
        )
        await changes.audit(
            conn,
            principal,
            "carer.openness",
            "foster_carer",
            str(carer_id),
            carer["department"],
            {
                "version": row["version"],
                "open_to_other_authorities": body.open_to_other_authorities,
                "employing_authority": carer["employing_authority"],
            },
            authority=carer["authority"],
        )
        return await changes.store(conn, principal, idempotency, Written(out))
