"""Holds in SQL. Every transition starts by locking the hold row, then its request."""

from datetime import datetime
from uuid import UUID

import asyncpg

HOLD_COLUMNS = """
    id, request_id, target_kind, coalesce(unit_id, carer_id) AS target_id, places, status,
    expires_at, expires_at <= now() AS overdue, reason, reason_code, created_by, created_at,
    updated_at
"""


async def insert(
    conn: asyncpg.Connection,
    request_id: UUID,
    kind: str,
    target_id: UUID,
    places: int,
    expires_in_minutes: int,
    created_by: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO holds (request_id, target_kind, unit_id, carer_id, places, expires_at,
                           created_by)
        VALUES ($1, $2::text,
                CASE WHEN $2::text = 'unit' THEN $3::uuid END,
                CASE WHEN $2::text = 'carer' THEN $3::uuid END,
                $4, now() + make_interval(mins => $5), $6)
        RETURNING {HOLD_COLUMNS}
        """,
        request_id,
        kind,
        target_id,
        places,
        expires_in_minutes,
        created_by,
    )


async def get(conn: asyncpg.Connection, hold_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1", hold_id)


async def lock(conn: asyncpg.Connection, hold_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 FOR UPDATE", hold_id
    )


async def lock_one_due(
    conn: asyncpg.Connection, now: datetime | None, skip: list[UUID]
) -> asyncpg.Record | None:
    """The oldest overdue hold nobody else is working on (``SKIP LOCKED``): several expiry
    passes share the work, and none waits for another. ``now`` defaults to the database's;
    ``skip`` lists holds this pass failed to expire."""
    return await conn.fetchrow(
        f"""
        SELECT {HOLD_COLUMNS}
          FROM holds
         WHERE status = 'held'
           AND expires_at < coalesce($1::timestamptz, now())
           AND id <> ALL($2::uuid[])
         ORDER BY expires_at
         LIMIT 1
           FOR UPDATE SKIP LOCKED
        """,
        now,
        skip,
    )


async def set_status(
    conn: asyncpg.Connection,
    hold_id: UUID,
    status: str,
    reason: str | None,
    reason_code: str | None = None,
) -> asyncpg.Record:
    """``reason_code``: the transition's coded reason (none for admit and expire); the
    CHECK ``holds_reason_code`` (migration 0019) refuses a refusal, release or exit without
    one."""
    return await conn.fetchrow(
        f"""
        UPDATE holds
           SET status = $2, reason = coalesce($3, reason), reason_code = $4, updated_at = now()
         WHERE id = $1
     RETURNING {HOLD_COLUMNS}
        """,
        hold_id,
        status,
        reason,
        reason_code,
    )


async def list_for(
    conn: asyncpg.Connection,
    *,
    finess: str | None,
    carer_id: UUID | None,
    authority: str | None,
    status: str,
    limit: int,
) -> list[asyncpg.Record]:
    """Holds one side may see: an establishment's units and the carers it employs, a
    carer's own, an authority's requests and the holds on the carers it employs (each
    filter applies when given), soonest deadline first."""
    return await conn.fetch(
        """
        SELECT h.id, h.request_id, h.target_kind, coalesce(h.unit_id, h.carer_id) AS target_id,
               h.places, h.status, h.expires_at, h.expires_at <= now() AS overdue, h.reason,
               h.reason_code,
               h.created_by, h.created_at, h.updated_at,
               r.status AS request_status, r.department, r.authority
          FROM holds h
          JOIN placement_requests r ON r.id = h.request_id
          LEFT JOIN units u ON u.id = h.unit_id
          LEFT JOIN structures s ON s.id = u.structure_id
          LEFT JOIN foster_carers c ON c.id = h.carer_id
          LEFT JOIN structures es ON es.id = c.employer_structure
         WHERE h.status = $1
           AND ($2::text IS NULL OR s.finess = $2 OR es.finess = $2)
           AND ($3::uuid IS NULL OR h.carer_id = $3)
           AND ($4::text IS NULL OR r.authority = $4 OR c.employing_authority = $4)
         ORDER BY h.expires_at, h.id
         LIMIT $5
        """,
        status,
        finess,
        carer_id,
        authority,
        limit,
    )
