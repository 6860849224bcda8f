"""Holds, admissions, releases, refusals, expiries and exits.

Each transition is one transaction that writes, all or nothing: the hold's status, the
request's status and its history row, the capacity move (``api.capacity.moves``), an audit
entry and the outbox events (``request.updated``, the hold's own event, and
``capacity.updated`` or ``carer.availability_updated``). An illegal transition is refused
with 409 and a reason before anything is written.

Lock order, everywhere: hold → request → snapshot/carer (a new hold: request → snapshot).

A hold belongs to its request's competent authority: the placement service of that authority
holds, admits, releases and records the exit; the target's side (establishment, carer) is
unchanged.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from api import changes, events
from api.auth import Principal, require_authority_scope, scoped_authority
from api.authorities import single_department
from api.capacity import moves
from api.capacity.moves import Move, Target
from api.changes import Idempotency, Written
from api.errors import Conflict, Forbidden, NotFound, field_error
from api.holds import repository
from api.holds.schemas import HoldIn
from api.requests import repository as requests_repository
from api.requests.schemas import Outcome

OBJECT_TYPE = "hold"
SYSTEM_EXPIRY = Principal(sub="system:expiry", role="system")


@dataclass(frozen=True, slots=True)
class Transition:
    hold_from: str
    hold_to: str
    request_from: str
    request_to: str
    event_type: str
    """Outbox event type."""
    history_event: str
    """``request_events.event``."""
    move: Move


# Columns: hold from → to, request from → to, outbox event, history event, capacity move.
# fmt: off
TRANSITIONS: dict[str, Transition] = {
    "admit": Transition("held", "admitted", "held", "placed", "admission.recorded", "admitted",
                        "admit"),
    "release": Transition("held", "released", "held", "waiting", "hold.released", "released",
                          "release"),
    "refuse": Transition("held", "refused", "held", "waiting", "hold.refused", "refused",
                         "refuse"),
    "expire": Transition("held", "expired", "held", "waiting", "hold.expired", "expired",
                         "expire"),
    "exit": Transition("admitted", "exited", "placed", "exited", "exit.recorded", "exited",
                       "exit"),
}
# fmt: on

AccessCheck = Callable[[Principal, asyncpg.Record, Target], None]


def department_side(principal: Principal, request: asyncpg.Record, _: Target) -> None:
    """Admit, release, exit: the placement service of the request's authority."""
    require_authority_scope(principal, request["authority"])


def target_side(principal: Principal, _: asyncpg.Record, target: Target) -> None:
    """Refuse: the establishment of the unit, the carer themselves."""
    if target.kind == "unit" and principal.role == "structure" and principal.finess:
        if principal.finess == target.finess:
            return
    if target.kind == "carer" and principal.role == "carer" and principal.carer_id:
        if principal.carer_id == target.carer_id:
            return
    raise Forbidden("Seul l'établissement ou l'assistant familial visé peut refuser.")


def either_side(principal: Principal, request: asyncpg.Record, target: Target) -> None:
    """Reading a hold: the request's authority or the target's side."""
    if principal.for_authority:
        department_side(principal, request, target)
    else:
        target_side(principal, request, target)


def hold_out(hold: asyncpg.Record, request_status: str) -> dict[str, Any]:
    return {
        "id": str(hold["id"]),
        "request_id": str(hold["request_id"]),
        "target": {"kind": hold["target_kind"], "id": str(hold["target_id"])},
        "places": hold["places"],
        "status": hold["status"],
        "expires_at": hold["expires_at"].isoformat(),
        "reason": hold["reason"],
        "reason_code": hold["reason_code"],
        "request_status": request_status,
        "created_at": hold["created_at"].isoformat(),
        "updated_at": hold["updated_at"].isoformat(),
    }


async def _emit_hold_event(
    conn: asyncpg.Connection,
    event_type: str,
    request: asyncpg.Record,
    out: dict[str, Any],
    target: Target,
) -> None:
    event = events.hold_event(
        event_type,
        request["department"],
        out,
        target.department,
        authority=request["authority"],
        target_authority=target.authority,
    )
    await changes.emit(conn, event)
    employer = target.employing_authority
    if target.kind == "carer" and employer is not None and employer != request["authority"]:
        # The employer hears, live, of holds another authority places on its carer (#15).
        await changes.emit(conn, events.for_employer(event, employer))


async def create(
    pool: asyncpg.Pool, principal: Principal, body: HoldIn, idempotency: Idempotency | None
) -> Written:
    """Hold one place per child of a waiting request on a unit or a carer."""
    async with pool.acquire() as conn, conn.transaction():
        request = await requests_repository.lock(conn, body.request_id)
        if request is None:
            raise field_error("request_id", f"demande {body.request_id} inconnue")
        require_authority_scope(principal, request["authority"])
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        target = await moves.resolve(conn, body.target.kind, body.target.id)
        moves.check_may_hold(target, request["authority"])
        if request["status"] != "waiting":
            raise Conflict(
                f"Seule une demande en attente peut être réservée ; celle-ci est "
                f"« {request['status']} ».",
                request_status=request["status"],
            )
        places = request["children_count"]
        await moves.move(conn, target, "hold", places, principal.sub)
        hold = await repository.insert(
            conn,
            request["id"],
            target.kind,
            target.id,
            places,
            body.expires_in_minutes,
            principal.sub,
        )
        await requests_repository.set_status(
            conn, principal, request, "held", "held", hold_id=hold["id"]
        )
        await changes.emit(conn, events.request_updated(request, "held", "held"))
        out = hold_out(hold, "held")
        await _emit_hold_event(conn, "hold.created", request, out, target)
        await changes.audit(
            conn,
            principal,
            "hold.create",
            OBJECT_TYPE,
            out["id"],
            request["department"],
            {"request_id": out["request_id"], "target": out["target"], "places": places},
            authority=request["authority"],
        )
        return await changes.store(conn, principal, idempotency, Written(out, 201))


def _refuse_illegal(
    name: str, t: Transition, hold: asyncpg.Record, request: asyncpg.Record
) -> None:
    """409 with the reason when ``name`` is not allowed from the current state."""
    status = hold["status"]
    if status != t.hold_from:
        if name == "admit" and status == "admitted":
            detail = "Réservation déjà admise : une seconde admission est refusée."
        elif name == "exit":
            detail = f"Sortie impossible : la demande n'est pas placée (réservation « {status} »)."
        else:
            detail = (
                f"« {name} » impossible : la réservation est « {status} », "
                f"il faut « {t.hold_from} »."
            )
        raise Conflict(detail, hold_status=status)
    if name == "admit" and hold["overdue"]:
        raise Conflict(
            f"Réservation expirée le {hold['expires_at'].isoformat()} : elle ne peut plus être "
            "admise ; faites une nouvelle réservation.",
            hold_status="expired",
        )
    if request["status"] != t.request_from:
        raise Conflict(
            f"« {name} » impossible : la demande est « {request['status']} ».",
            request_status=request["status"],
        )


async def apply_locked(
    conn: asyncpg.Connection,
    principal: Principal,
    hold: asyncpg.Record,
    name: str,
    reason: str | None,
    check: AccessCheck | None,
    reason_code: str | None = None,
) -> dict[str, Any]:
    """Run transition ``name`` on a hold already locked by this transaction; ``reason_code``:
    the coded reason of a refusal, release or exit (``api.codes``), ``reason`` the free text
    beside it (or the expiry's note)."""
    t = TRANSITIONS[name]
    request = await requests_repository.lock(conn, hold["request_id"])
    assert request is not None  # foreign key
    target = await moves.resolve(conn, hold["target_kind"], hold["target_id"])
    if check is not None:
        check(principal, request, target)
    _refuse_illegal(name, t, hold, request)
    await moves.move(conn, target, t.move, hold["places"], principal.sub)
    updated = await repository.set_status(conn, hold["id"], t.hold_to, reason, reason_code)
    await requests_repository.set_status(
        conn, principal, request, t.history_event, t.request_to, hold["id"], reason, reason_code
    )
    await changes.emit(conn, events.request_updated(request, t.request_to, t.history_event))
    out = hold_out(updated, t.request_to)
    await _emit_hold_event(conn, t.event_type, request, out, target)
    await changes.audit(
        conn,
        principal,
        f"hold.{name}",
        OBJECT_TYPE,
        out["id"],
        request["department"],
        {"request_id": out["request_id"], "target": out["target"], "places": hold["places"]},
        authority=request["authority"],
    )
    return out


async def transition(
    pool: asyncpg.Pool,
    principal: Principal,
    hold_id: UUID,
    name: str,
    outcome: Outcome | None,
    check: AccessCheck,
) -> dict[str, Any]:
    """``outcome``: the coded reason and free text of a refusal, release or exit."""
    code, text = outcome if outcome is not None else (None, None)
    async with pool.acquire() as conn, conn.transaction():
        hold = await repository.lock(conn, hold_id)
        if hold is None:
            raise NotFound(f"Réservation {hold_id} inconnue.")
        return await apply_locked(conn, principal, hold, name, text, check, code)


async def read(pool: asyncpg.Pool, principal: Principal, hold_id: UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        hold = await repository.get(conn, hold_id)
        if hold is None:
            raise NotFound(f"Réservation {hold_id} inconnue.")
        request = await conn.fetchrow(
            "SELECT authority, department, status FROM placement_requests WHERE id = $1",
            hold["request_id"],
        )
        target = await moves.resolve(conn, hold["target_kind"], hold["target_id"])
        either_side(principal, request, target)
        await changes.audit(
            conn,
            principal,
            "hold.read",
            OBJECT_TYPE,
            str(hold_id),
            request["department"],
            {"request_id": str(hold["request_id"])},
            authority=request["authority"],
        )
    return hold_out(hold, request["status"])


async def list_holds(
    pool: asyncpg.Pool, principal: Principal, status: str, authority: str | None, limit: int
) -> dict[str, Any]:
    """What each side has to act on: an establishment sees the holds on its units and, for
    a placement service, on the carers it employs; a carer those on itself (to admit them
    or refuse); a placement service those of its authority's requests and those other
    authorities placed on the carers its authority employs (``authority``: resolved by
    ``api.authorities``). The read is audited like every list of child-level records."""
    finess = principal.finess if principal.role == "structure" else None
    carer_id = (
        UUID(principal.carer_id) if principal.role == "carer" and principal.carer_id else None
    )
    if principal.for_authority:
        authority = scoped_authority(principal, authority)
    async with pool.acquire() as conn, conn.transaction():
        rows = await repository.list_for(
            conn,
            finess=finess,
            carer_id=carer_id,
            authority=authority,
            status=status,
            limit=limit,
        )
        # One entry per authority whose holds were read: a structure or a carer listing
        # across authorities is seen in each authority's trail.
        by_authority: dict[str | None, list[str]] = {authority: []} if not rows else {}
        for r in rows:
            by_authority.setdefault(r["authority"], []).append(str(r["id"]))
        for code, ids in by_authority.items():
            await changes.audit(
                conn,
                principal,
                "hold.list",
                OBJECT_TYPE,
                "*",
                single_department(code),
                {"hold_ids": ids, "status": status},
                authority=code,
            )
    return {"items": [hold_out(r, r["request_status"]) for r in rows], "total": len(rows)}
