"""Placement requests in SQL: insert, lock, read, list, history, audit trail.

A request is always read together with its live hold (at most one: the partial unique index
``holds_one_active_per_request`` guarantees it), so the department sees where the child is
expected without a second call.
"""

from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from api.auth import Principal
from api.requests.schemas import ORIGIN_DECIMALS, OriginIn, RequestIn

REQUEST_SELECT = """
SELECT r.id, r.department, r.authority, r.reference, r.children, r.origin_commune,
       ST_Y(r.origin_location::geometry) AS lat, ST_X(r.origin_location::geometry) AS lon,
       r.timing, r.public, r.formula, r.parent_expecting, r.urgency, r.measure_kind,
       r.decided_on, r.status, r.version,
       r.separation_ordered, r.min_distance_km, r.school_commune, r.siblings_placed,
       r.created_at, r.updated_at,
       h.id AS hold_id, h.status AS hold_status, h.target_kind,
       coalesce(h.unit_id, h.carer_id) AS target_id, h.places, h.expires_at,
       sit.situation, sit.since AS situation_since
  FROM placement_requests r
  LEFT JOIN holds h ON h.request_id = r.id AND h.status IN ('held', 'admitted')
  LEFT JOIN LATERAL (
        SELECT situation, since FROM request_situations
         WHERE request_id = r.id ORDER BY id DESC LIMIT 1
       ) sit ON true
"""


async def department_exists(conn: asyncpg.Connection, code: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM departments WHERE code = $1", code))


def _rounded(origin: OriginIn) -> tuple[float | None, float | None]:
    """A point origin as it is stored: rounded to ``ORIGIN_DECIMALS`` (the home never is)."""
    lat = round(origin.lat, ORIGIN_DECIMALS) if origin.lat is not None else None
    lon = round(origin.lon, ORIGIN_DECIMALS) if origin.lon is not None else None
    return lat, lon


async def origin_place(conn: asyncpg.Connection, origin: OriginIn) -> asyncpg.Record | None:
    """The ``authority`` and ``department`` an origin belongs to: its commune's, or for a
    point the nearest commune's (to the stored, rounded point) — the rule of the trigger
    ``places_request_authority`` (migration 0007), applied before insert so that the caller's
    scope is checked first. None for an unknown commune (or no commune at all)."""
    if origin.commune is not None:
        return await conn.fetchrow(
            "SELECT authority, department FROM communes WHERE insee = $1", origin.commune
        )
    lat, lon = _rounded(origin)
    return await conn.fetchrow(
        """
        SELECT authority, department FROM communes
         ORDER BY location <-> ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography
         LIMIT 1
        """,
        lat,
        lon,
    )


async def insert(
    conn: asyncpg.Connection,
    principal: Principal,
    body: RequestIn,
    authority: str,
    department: str,
    siblings_placed: list[dict[str, Any]] | None = None,
    child_key: str | None = None,
) -> UUID:
    """Insert a waiting request of ``authority`` (resolved by ``origin_place``); the origin is
    the commune's point or the rounded lat/lon. ``siblings_placed``: as resolved and recorded
    by ``api.search.places`` (kind, id, commune — never a point)."""
    origin = body.origin
    lat, lon = _rounded(origin)
    request_id: UUID = await conn.fetchval(
        """
        INSERT INTO placement_requests
               (department, reference, children, origin_commune, origin_location,
                timing, public, formula, parent_expecting, urgency, measure_kind, decided_on,
                created_by, authority, separation_ordered, min_distance_km, school_commune,
                siblings_placed, child_key)
        VALUES ($1, $2, $3, $4::text,
                CASE WHEN $4::text IS NULL
                     THEN ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography
                     ELSE (SELECT location FROM communes WHERE insee = $4::text)
                END,
                $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
        RETURNING id
        """,
        department,
        body.reference,
        [child.model_dump(mode="json", exclude={"age"}) for child in body.children],
        origin.commune,
        lat,
        lon,
        *body.need_fields(),
        body.parent_expecting,
        body.urgency,
        body.measure.kind,
        body.measure.decided_on,
        principal.sub,
        authority,
        body.separation_ordered,
        body.min_distance_km,
        None if body.school is None else body.school.commune,
        siblings_placed or [],
        child_key,
    )
    return request_id


async def insert_situation(
    conn: asyncpg.Connection, request_id: UUID, code: str, since: date, recorded_by: str
) -> None:
    """A new row of the child's waiting situation; the latest row is the current one."""
    await conn.execute(
        "INSERT INTO request_situations (request_id, situation, since, recorded_by)"
        " VALUES ($1, $2, $3, $4)",
        request_id,
        code,
        since,
        recorded_by,
    )


async def get(conn: asyncpg.Connection, request_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(REQUEST_SELECT + " WHERE r.id = $1", request_id)


async def lock(conn: asyncpg.Connection, request_id: UUID) -> asyncpg.Record | None:
    """Lock the request row for a transition (callers lock a hold first, then its request)."""
    return await conn.fetchrow(
        """
        SELECT id, department, authority, reference, status, version,
               -- The places the request takes: its children, plus the one a parent expects.
               jsonb_array_length(children) + parent_expecting::int AS children_count,
               timing, public, formula, parent_expecting, urgency, measure_kind
          FROM placement_requests
         WHERE id = $1
           FOR UPDATE
        """,
        request_id,
    )


async def bump_version(conn: asyncpg.Connection, request_id: UUID) -> None:
    """A write on the request that changes no status (its waiting situation): the version
    goes up so that If-Match sees it."""
    await conn.execute(
        "UPDATE placement_requests SET version = version + 1, updated_at = now() WHERE id = $1",
        request_id,
    )


async def set_status(
    conn: asyncpg.Connection,
    principal: Principal,
    request: asyncpg.Record,
    event: str,
    to_status: str,
    hold_id: UUID | None = None,
    reason: str | None = None,
    reason_code: str | None = None,
) -> None:
    """Move a (locked) request to ``to_status`` and append the transition to its history
    (``reason_code``: the coded reason of a refusal, release, cancellation or exit)."""
    await conn.execute(
        """
        UPDATE placement_requests
           SET status = $2, version = version + 1, updated_at = now()
         WHERE id = $1
        """,
        request["id"],
        to_status,
    )
    await append_event(
        conn,
        principal,
        request["id"],
        event,
        request["status"],
        to_status,
        hold_id,
        reason,
        reason_code,
    )


async def append_event(
    conn: asyncpg.Connection,
    principal: Principal,
    request_id: UUID,
    event: str,
    from_status: str | None,
    to_status: str,
    hold_id: UUID | None = None,
    reason: str | None = None,
    reason_code: str | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO request_events
               (request_id, event, from_status, to_status, hold_id, actor, role, reason,
                reason_code)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        request_id,
        event,
        from_status,
        to_status,
        hold_id,
        principal.sub,
        principal.role,
        reason,
        reason_code,
    )


async def page(
    conn: asyncpg.Connection,
    authority: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """One page of an authority's requests, oldest decision first (the waiting list order)."""
    rows = await conn.fetch(
        REQUEST_SELECT
        + """
         WHERE ($1::text IS NULL OR r.authority = $1)
           AND ($2::text IS NULL OR r.status = $2)
         ORDER BY r.decided_on, r.created_at, r.id
         LIMIT $3 OFFSET $4
        """,
        authority,
        status,
        limit,
        offset,
    )
    total = await conn.fetchval(
        """
        SELECT count(*) FROM placement_requests
         WHERE ($1::text IS NULL OR authority = $1) AND ($2::text IS NULL OR status = $2)
        """,
        authority,
        status,
    )
    return list(rows), total


async def unexecuted(
    conn: asyncpg.Connection, authority: str | None, decided_before: date, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """Measures not executed: not placed yet (waiting, or held but not admitted) although the
    decision is at least N days old. Served by (authority, status, decided_on)."""
    where = """
         WHERE ($1::text IS NULL OR r.authority = $1)
           AND r.status IN ('waiting', 'held')
           AND r.decided_on <= $2
    """
    rows = await conn.fetch(
        REQUEST_SELECT + where + " ORDER BY r.decided_on, r.created_at, r.id LIMIT $3 OFFSET $4",
        authority,
        decided_before,
        limit,
        offset,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM placement_requests r" + where, authority, decided_before
    )
    return list(rows), total


async def history(conn: asyncpg.Connection, request_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT occurred_at, event, from_status, to_status, hold_id, actor, role, reason,
               reason_code
          FROM request_events
         WHERE request_id = $1
         ORDER BY id
        """,
        request_id,
    )


TRAIL_OBJECT_TYPES = "'placement_request', 'hold', 'search', 'foster_carer', 'feed', 'audit'"
"""What the trail of an authority shows: its requests and holds, and the reads of its data —
searches, carer lists, feed subscriptions, reads of the trail itself (``object_type`` of
``search.run``, ``carer.list``, ``feed.subscribe``, ``audit.read``)."""


OUTSIDE_READERS = "actor_authority IS DISTINCT FROM authority"
"""The entries of readers from outside the authority whose trail it is: every entry records
the authority its actor acted for (``actor_authority``: a placement service's or an
authority administrator's own; none for establishments, carers, national, the operator), so
an entry filed under an authority by someone acting for another, or for none, came from
outside."""


async def audit_trail(
    conn: asyncpg.Connection,
    authority: str | None,
    object_id: str | None,
    limit: int,
    offset: int,
    *,
    outside: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Audit entries about an authority's requests and holds and the reads of its data
    (``TRAIL_OBJECT_TYPES``), by whoever read them, newest first. With
    ``object_id`` (a request or hold id): the entries on it, its holds' entries (they carry
    ``request_id``) and the list reads that returned it (``request_ids``)."""
    # Only the filters asked for are written out (no "$n IS NULL OR …"). About one request,
    # the three ways an entry names it are three indexed lookups (migration 0006) joined by
    # UNION: written as one OR, the planner walks the whole trail backwards by id instead.
    # The ``detail ? …`` terms repeat the partial indexes' predicates so that they qualify.
    where, args = [f"object_type IN ({TRAIL_OBJECT_TYPES})"], []
    if authority is not None:
        args.append(authority)
        where.append(f"authority = ${len(args)}")
    if outside:
        where.append(OUTSIDE_READERS)
    common = " AND ".join(where)
    columns = (
        "id, occurred_at, actor, role, action, object_type, object_id, department, authority,"
        " detail, person_id, function, actor_authority"
    )
    if object_id is None:
        source = f"SELECT {columns} FROM audit_entries WHERE {common}"
    else:
        args.append(object_id)
        n = len(args)
        source = f"""
            SELECT {columns} FROM audit_entries
             WHERE {common} AND object_id = ${n}
            UNION
            SELECT {columns} FROM audit_entries
             WHERE {common} AND detail ? 'request_id' AND detail->>'request_id' = ${n}
            UNION
            SELECT {columns} FROM audit_entries
             WHERE {common} AND detail ? 'request_ids' AND detail->'request_ids' ? ${n}"""
    rows = await conn.fetch(
        f"""
        SELECT *, count(*) OVER () AS total
          FROM ({source}) AS about
         ORDER BY id DESC
         LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}
        """,
        *args,
        limit,
        offset,
    )
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = await conn.fetchval(f"SELECT count(*) FROM ({source}) AS about", *args)
    return [{k: v for k, v in dict(r).items() if k != "total"} for r in rows], total


async def refused_targets(conn: asyncpg.Connection, request_id: UUID) -> list[tuple[str, str]]:
    """``(kind, id)`` of the units and carers that refused a hold of this request: search
    leaves them out (#16: they already said no to this child)."""
    rows = await conn.fetch(
        "SELECT DISTINCT target_kind, coalesce(unit_id, carer_id)::text AS target_id"
        " FROM holds WHERE request_id = $1 AND status = 'refused'",
        request_id,
    )
    return [(r["target_kind"], r["target_id"]) for r in rows]
