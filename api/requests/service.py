"""Placement requests: creation, audited reads, the waiting list and the measures not executed.

Every child-level read (one request, its history, a list) writes an audit entry with the same
connection before the data leaves: a read that could not be audited is not served. List reads
write one entry carrying the ids they returned (``detail.request_ids``), so a department can
find, for one request, every read that exposed it (``GET /v1/audit?object_id=…``).
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from api import changes, events
from api.auth import Principal, require_department_scope
from api.changes import Idempotency, Written
from api.errors import Conflict, NotFound, field_error
from api.requests import repository
from api.requests.schemas import RequestIn
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
    return {
        "id": str(row["id"]),
        "department": row["department"],
        "reference": row["reference"],
        "children": row["children"],
        "origin": {"commune": row["origin_commune"], "lat": row["lat"], "lon": row["lon"]},
        "care_mode": row["care_mode"],
        "urgency": row["urgency"],
        "measure": {"kind": row["measure_kind"], "decided_on": row["decided_on"].isoformat()},
        "status": row["status"],
        "days_since_decision": (today - row["decided_on"]).days,
        "hold": hold,
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _check_body(body: RequestIn) -> None:
    if body.measure.decided_on > local_today(body.department):
        raise field_error("measure.decided_on", "date dans le futur")
    origin = body.origin
    if origin.lat is not None and origin.lon is not None and not in_france(origin.lat, origin.lon):
        raise field_error("origin", f"point ({origin.lat}, {origin.lon}) hors de France")


async def create(
    pool: asyncpg.Pool, principal: Principal, body: RequestIn, idempotency: Idempotency | None
) -> Written:
    require_department_scope(principal, body.department)
    _check_body(body)
    async with pool.acquire() as conn, conn.transaction():
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        if not await repository.department_exists(conn, body.department):
            raise field_error("department", f"département {body.department} inconnu")
        commune = body.origin.commune
        if commune is not None and not await repository.commune_exists(conn, commune):
            raise field_error("origin.commune", f"commune INSEE {commune} inconnue")
        request_id = await repository.insert(conn, principal, body)
        await repository.append_event(conn, principal, request_id, "created", None, "waiting")
        row = await repository.get(conn, request_id)
        assert row is not None
        out = to_out(row)
        await changes.emit(conn, events.request_created(out, authority=row["authority"]))
        await changes.audit(
            conn, principal, "request.create", OBJECT_TYPE, out["id"], body.department
        )
        return await changes.store(conn, principal, idempotency, Written(out, 201))


async def _readable(conn: asyncpg.Connection, principal: Principal, request_id: UUID) -> Any:
    row = await repository.get(conn, request_id)
    if row is None:
        raise NotFound(f"Demande {request_id} inconnue.")
    require_department_scope(principal, row["department"])
    return row


async def read(pool: asyncpg.Pool, principal: Principal, request_id: UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        row = await _readable(conn, principal, request_id)
        await changes.audit(
            conn, principal, "request.read", OBJECT_TYPE, str(request_id), row["department"]
        )
    return to_out(row)


async def history(pool: asyncpg.Pool, principal: Principal, request_id: UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        row = await _readable(conn, principal, request_id)
        events = await repository.history(conn, request_id)
        await changes.audit(
            conn, principal, "request.history", OBJECT_TYPE, str(request_id), row["department"]
        )
    return {"request_id": str(request_id), "items": [dict(e) for e in events]}


def _scoped_department(principal: Principal, department: str | None) -> str | None:
    """Departments read their own; admin reads one department or all (``None``)."""
    if principal.role != "admin":
        department = department or principal.department
    if department is not None:
        require_department_scope(principal, department)
    return department


async def _audit_list(
    conn: asyncpg.Connection,
    principal: Principal,
    action: str,
    department: str | None,
    items: list[dict[str, Any]],
    filters: dict[str, Any],
) -> None:
    await changes.audit(
        conn,
        principal,
        action,
        OBJECT_TYPE,
        f"list:{department or '*'}",
        department,
        {**filters, "request_ids": [item["id"] for item in items]},
    )


async def list_requests(
    pool: asyncpg.Pool,
    principal: Principal,
    department: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    department = _scoped_department(principal, department)
    today = local_today(department)
    async with pool.acquire() as conn, conn.transaction():
        if department is not None and not await repository.department_exists(conn, department):
            raise field_error("department", f"département {department} inconnu")
        rows, total = await repository.page(conn, department, status, limit, offset)
        items = [to_out(r, today if department else None) for r in rows]
        await _audit_list(
            conn,
            principal,
            "request.list",
            department,
            items,
            {"status": status, "limit": limit, "offset": offset},
        )
    return {"items": items, "total": total}


async def list_unexecuted(
    pool: asyncpg.Pool,
    principal: Principal,
    department: str | None,
    limit: int,
    offset: int,
    after_days: int,
) -> dict[str, Any]:
    """``after_days``: the setting ``unexecuted_after_days``."""
    department = _scoped_department(principal, department)
    today = local_today(department)
    async with pool.acquire() as conn, conn.transaction():
        if department is not None and not await repository.department_exists(conn, department):
            raise field_error("department", f"département {department} inconnu")
        rows, total = await repository.unexecuted(
            conn, department, today - timedelta(days=after_days), limit, offset
        )
        items = [to_out(r, today if department else None) for r in rows]
        await _audit_list(
            conn,
            principal,
            "request.unexecuted",
            department,
            items,
            {"after_days": after_days, "limit": limit, "offset": offset},
        )
    return {"items": items, "total": total, "after_days": after_days}


async def cancel(
    pool: asyncpg.Pool, principal: Principal, request_id: UUID, reason: str
) -> dict[str, Any]:
    """Cancel a waiting request (measure lifted, child placed by other means). A held or
    placed request must be released or exited first, so that places are given back."""
    async with pool.acquire() as conn, conn.transaction():
        request = await repository.lock(conn, request_id)
        if request is None:
            raise NotFound(f"Demande {request_id} inconnue.")
        require_department_scope(principal, request["department"])
        if request["status"] != "waiting":
            raise Conflict(
                f"Seule une demande en attente peut être annulée ; celle-ci est "
                f"« {request['status']} » (libérez la réservation ou enregistrez la sortie).",
                status_now=request["status"],
            )
        await repository.set_status(
            conn, principal, request, "cancelled", "cancelled", reason=reason
        )
        await changes.emit(conn, events.request_updated(request, "cancelled", "cancelled"))
        await changes.audit(
            conn, principal, "request.cancel", OBJECT_TYPE, str(request_id), request["department"]
        )
        row = await repository.get(conn, request_id)
    assert row is not None
    return to_out(row)


async def audit_trail(
    pool: asyncpg.Pool,
    principal: Principal,
    department: str | None,
    object_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    department = _scoped_department(principal, department)
    async with pool.acquire() as conn:
        items, total = await repository.audit_trail(conn, department, object_id, limit, offset)
    return {"items": items, "total": total}
