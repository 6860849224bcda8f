"""Placement requests: creation, audited reads, the waiting list and the measures not executed.

A request belongs to the competent authority of its origin (its commune's, or for a point the
nearest commune's), resolved before anything is written so that the caller's scope is checked
first; every read, list, transition and audit entry is scoped by ``request.authority``. The
request's ``department`` stays its origin's geography (dates, maps, distances).

Every child-level read (one request, its history, a list) writes an audit entry with the same
connection before the data leaves: a read that could not be audited is not served. List reads
write one entry carrying the ids they returned (``detail.request_ids``), so a placement service
can find, for one request, every read that exposed it (``GET /v1/audit?object_id=…``).
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from api import changes, events
from api.auth import Principal, require_authority_scope, scoped_authority
from api.authorities import check_authority, describe, single_department
from api.changes import Idempotency, Written
from api.errors import Conflict, NotFound, field_error
from api.needs import legacy_need_fields
from api.requests import repository
from api.requests.children import key_for
from api.requests.schemas import Outcome, RequestIn, SituationIn
from api.search import places
from geo.bounds import in_france

OBJECT_TYPE = "placement_request"

# A decision is dated in its department's calendar: overseas departments live hours apart.
_TIMEZONES = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "975": "America/Miquelon",
    "976": "Indian/Mayotte",
}


def local_today(department: str | None) -> date:
    """Today in the department's time zone (Paris when no department is given)."""
    zone = ZoneInfo(_TIMEZONES.get(department or "", "Europe/Paris"))
    return datetime.now(UTC).astimezone(zone).date()


def to_out(row: asyncpg.Record, today: date | None = None) -> dict[str, Any]:
    """The API view of a request row (see ``repository.REQUEST_SELECT``)."""
    today = today or local_today(row["department"])
    hold = None
    if row["hold_id"] is not None:
        hold = {
            "id": str(row["hold_id"]),
            "status": row["hold_status"],
            "target": {"kind": row["target_kind"], "id": str(row["target_id"])},
            "places": row["places"],
            "expires_at": row["expires_at"].isoformat(),
        }
    return legacy_need_fields(
        {
            "id": str(row["id"]),
            "authority": row["authority"],
            "department": row["department"],
            "reference": row["reference"],
            "children": row["children"],
            "origin": {"commune": row["origin_commune"], "lat": row["lat"], "lon": row["lon"]},
            "timing": row["timing"],
            "public": row["public"],
            "formula": row["formula"],
            "parent_expecting": row["parent_expecting"],
            "urgency": row["urgency"],
            "measure": {"kind": row["measure_kind"], "decided_on": row["decided_on"].isoformat()},
            "separation_ordered": row["separation_ordered"],
            "min_distance_km": row["min_distance_km"],
            "school": (
                None if row["school_commune"] is None else {"commune": row["school_commune"]}
            ),
            "siblings_placed": row["siblings_placed"],
            "status": row["status"],
            "days_since_decision": (today - row["decided_on"]).days,
            "hold": hold,
            "situation": (
                None
                if row["situation"] is None
                else {"code": row["situation"], "since": row["situation_since"].isoformat()}
            ),
            "version": row["version"],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
        }
    )


def _check_point(body: RequestIn) -> None:
    origin = body.origin
    if origin.lat is not None and origin.lon is not None and not in_france(origin.lat, origin.lon):
        raise field_error("origin", f"point ({origin.lat}, {origin.lon}) hors de France")


def _check_date(body: RequestIn, department: str) -> None:
    if body.measure.decided_on > local_today(department):
        raise field_error("measure.decided_on", "date dans le futur")


def _situation_since(situation: SituationIn, department: str, field: str) -> date:
    """The situation's first day: given, or today in the department's calendar; never in
    the future (422 naming ``field``)."""
    today = local_today(department)
    if situation.since is None:
        return today
    if situation.since > today:
        raise field_error(field, "date dans le futur")
    if situation.since < date(2000, 1, 1):
        raise field_error(field, "date avant 2000-01-01")
    return situation.since


async def _origin_scope(
    conn: asyncpg.Connection, principal: Principal, body: RequestIn
) -> tuple[str, str]:
    """The request's authority and department, from its origin (``repository.origin_place``):
    the authority given in the body must be that one; the caller must be of it (403)."""
    place = await repository.origin_place(conn, body.origin)
    if place is None:
        if body.origin.commune is not None:
            raise field_error("origin.commune", f"commune INSEE {body.origin.commune} inconnue")
        raise field_error("origin", "aucune commune connue près de ce point")
    authority: str = place["authority"]
    if body.authority is not None and check_authority(body.authority) != authority:
        where = (
            f"la commune {body.origin.commune}"
            if body.origin.commune is not None
            else "la commune la plus proche du point"
        )
        raise field_error(
            "authority",
            f"l'origine ({where}) relève de {describe([authority])}, pas de {body.authority}",
        )
    require_authority_scope(principal, authority)
    return authority, body.department or place["department"]


async def create(
    pool: asyncpg.Pool, principal: Principal, body: RequestIn, idempotency: Idempotency | None
) -> Written:
    _check_point(body)
    async with pool.acquire() as conn, conn.transaction():
        authority, department = await _origin_scope(conn, principal, body)
        _check_date(body, department)
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        if body.department is not None and not await repository.department_exists(
            conn, body.department
        ):
            raise field_error("department", f"département {body.department} inconnu")
        if body.school is not None:
            await places.school_point(conn, body.school, "school.commune")
        await places.disability_services(conn, body.children)  # known communes only (422)
        siblings = await places.siblings_placed(conn, body.siblings_placed)
        situation = body.situation or SituationIn(code="inconnu")
        since = _situation_since(situation, department, "situation.since")
        request_id = await repository.insert(
            conn,
            principal,
            body,
            authority,
            department,
            [places.stored(p) for p in siblings],
            key_for(authority, body.reference),
        )
        await repository.append_event(conn, principal, request_id, "created", None, "waiting")
        await repository.insert_situation(conn, request_id, situation.code, since, principal.sub)
        row = await repository.get(conn, request_id)
        assert row is not None
        out = to_out(row)
        await changes.emit(conn, events.request_created(out, authority=row["authority"]))
        await changes.audit(
            conn,
            principal,
            "request.create",
            OBJECT_TYPE,
            out["id"],
            department,
            authority=authority,
        )
        return await changes.store(conn, principal, idempotency, Written(out, 201))


async def _readable(conn: asyncpg.Connection, principal: Principal, request_id: UUID) -> Any:
    row = await repository.get(conn, request_id)
    if row is None:
        raise NotFound(f"Demande {request_id} inconnue.")
    require_authority_scope(principal, row["authority"])
    return row


async def read(pool: asyncpg.Pool, principal: Principal, request_id: UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        row = await _readable(conn, principal, request_id)
        await changes.audit(
            conn,
            principal,
            "request.read",
            OBJECT_TYPE,
            str(request_id),
            row["department"],
            authority=row["authority"],
        )
    return to_out(row)


async def history(pool: asyncpg.Pool, principal: Principal, request_id: UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        row = await _readable(conn, principal, request_id)
        events = await repository.history(conn, request_id)
        await changes.audit(
            conn,
            principal,
            "request.history",
            OBJECT_TYPE,
            str(request_id),
            row["department"],
            authority=row["authority"],
        )
    return {"request_id": str(request_id), "items": [dict(e) for e in events]}


async def _audit_list(
    conn: asyncpg.Connection,
    principal: Principal,
    action: str,
    authority: str | None,
    items: list[dict[str, Any]],
    filters: dict[str, Any],
) -> None:
    """One entry per authority whose requests the list returned, so that each authority's
    trail (``GET /v1/audit``) shows every read of its children's records."""
    by_authority: dict[str | None, list[str]] = {authority: []} if authority or not items else {}
    for item in items:
        by_authority.setdefault(authority or item["authority"], []).append(item["id"])
    for code, ids in by_authority.items():
        await changes.audit(
            conn,
            principal,
            action,
            OBJECT_TYPE,
            f"list:{authority or '*'}",
            single_department(code),
            {**filters, "request_ids": ids},
            authority=code,
        )


def _today(authority: str | None) -> date | None:
    """Today in the calendar of the authority's department, when it has one (every overseas
    authority has): None lets each row use its own department's."""
    department = single_department(authority)
    return local_today(department) if department is not None else None


async def list_requests(
    pool: asyncpg.Pool,
    principal: Principal,
    authority: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """``authority``: resolved by ``api.authorities``; a placement service reads its own."""
    authority = scoped_authority(principal, authority)
    today = _today(authority)
    async with pool.acquire() as conn, conn.transaction():
        rows, total = await repository.page(conn, authority, status, limit, offset)
        items = [to_out(r, today) for r in rows]
        await _audit_list(
            conn,
            principal,
            "request.list",
            authority,
            items,
            {"status": status, "limit": limit, "offset": offset},
        )
    return {"items": items, "total": total}


async def list_unexecuted(
    pool: asyncpg.Pool,
    principal: Principal,
    authority: str | None,
    limit: int,
    offset: int,
    after_days: int,
) -> dict[str, Any]:
    """``after_days``: the setting ``unexecuted_after_days``."""
    authority = scoped_authority(principal, authority)
    today = _today(authority)
    async with pool.acquire() as conn, conn.transaction():
        # Without one calendar (all authorities, 20R, 6AE) the threshold is Paris's date.
        threshold = (today or local_today(None)) - timedelta(days=after_days)
        rows, total = await repository.unexecuted(conn, authority, threshold, limit, offset)
        items = [to_out(r, today) for r in rows]
        await _audit_list(
            conn,
            principal,
            "request.unexecuted",
            authority,
            items,
            {"after_days": after_days, "limit": limit, "offset": offset},
        )
    return {"items": items, "total": total, "after_days": after_days}


async def cancel(
    pool: asyncpg.Pool, principal: Principal, request_id: UUID, outcome: Outcome
) -> dict[str, Any]:
    """Cancel a waiting request (measure lifted, child placed by other means), with its
    coded reason. A held or placed request must be released or exited first, so that places
    are given back."""
    async with pool.acquire() as conn, conn.transaction():
        request = await repository.lock(conn, request_id)
        if request is None:
            raise NotFound(f"Demande {request_id} inconnue.")
        require_authority_scope(principal, request["authority"])
        if request["status"] != "waiting":
            raise Conflict(
                f"Seule une demande en attente peut être annulée ; celle-ci est "
                f"« {request['status']} » (libérez la réservation ou enregistrez la sortie).",
                status_now=request["status"],
            )
        await repository.set_status(
            conn,
            principal,
            request,
            "cancelled",
            "cancelled",
            reason=outcome.text,
            reason_code=outcome.code,
        )
        await changes.emit(conn, events.request_updated(request, "cancelled", "cancelled"))
        await changes.audit(
            conn,
            principal,
            "request.cancel",
            OBJECT_TYPE,
            str(request_id),
            request["department"],
            authority=request["authority"],
        )
        row = await repository.get(conn, request_id)
    assert row is not None
    return to_out(row)


SITUATION_STATUSES = ("waiting", "held")
"""A waiting situation is recorded while the measure is not executed (waiting, or held and
not yet admitted); once placed, exited or cancelled the child is no longer waiting."""


async def set_situation(
    pool: asyncpg.Pool,
    principal: Principal,
    request_id: UUID,
    body: SituationIn,
    idempotency: Idempotency | None,
    if_match: int,
) -> Written:
    """``PUT /v1/requests/{id}/situation``: a new situation row from ``since``; the request's
    version goes up (If-Match required), idempotent, audited (``request.situation``), with
    ``request.updated`` (``event: situation``, status unchanged: no national count moves)."""
    async with pool.acquire() as conn, conn.transaction():
        request = await repository.lock(conn, request_id)
        if request is None:
            raise NotFound(f"Demande {request_id} inconnue.")
        require_authority_scope(principal, request["authority"])
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        if if_match != request["version"]:
            raise Conflict(
                f"Version périmée : version courante {request['version']}, If-Match {if_match}.",
                current_version=request["version"],
            )
        if request["status"] not in SITUATION_STATUSES:
            raise Conflict(
                f"La situation d'attente ne se renseigne que pour une demande en attente ou "
                f"réservée ; celle-ci est « {request['status']} ».",
                status_now=request["status"],
            )
        since = _situation_since(body, request["department"], "since")
        await repository.insert_situation(conn, request_id, body.code, since, principal.sub)
        await repository.bump_version(conn, request_id)
        await changes.emit(conn, events.request_updated(request, request["status"], "situation"))
        await changes.audit(
            conn,
            principal,
            "request.situation",
            OBJECT_TYPE,
            str(request_id),
            request["department"],
            {"situation": body.code, "since": since.isoformat()},
            authority=request["authority"],
        )
        row = await repository.get(conn, request_id)
        assert row is not None
        return await changes.store(conn, principal, idempotency, Written(to_out(row)))


async def audit_trail(
    pool: asyncpg.Pool,
    principal: Principal,
    authority: str | None,
    object_id: str | None,
    limit: int,
    offset: int,
    *,
    outside: bool = False,
) -> dict[str, Any]:
    """The trail of an authority's data, whoever read it (a read of a request is filed under
    the request's authority); ``outside``: only readers from outside the authority. The read
    is itself audited (``audit.read``: the filters, under the authority read) in its
    transaction, after the page it returns."""
    authority = scoped_authority(principal, authority)
    async with pool.acquire() as conn, conn.transaction():
        items, total = await repository.audit_trail(
            conn, authority, object_id, limit, offset, outside=outside
        )
        await changes.audit(
            conn,
            principal,
            "audit.read",
            "audit",
            f"list:{authority or '*'}",
            single_department(authority),
            {"object_id": object_id, "limit": limit, "offset": offset}
            | ({"readers": "outside"} if outside else {}),
            authority=authority,
        )
    return {"items": items, "total": total}
