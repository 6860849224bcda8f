"""Holds in SQL. Every transition starts by locking the hold row, then its request."""

from datetime import datetime
from uuid import UUID

import asyncpg

HOLD_COLUMNS = """
    id, request_id, target_kind, coalesce(unit_id, carer_id) AS target_id, places, status,
    expires_at, expires_at <= now() AS overdue, reason, created_by, created_at, updated_at
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
    conn: asyncpg.Connection, hold_id: UUID, status: str, reason: str | None
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        UPDATE holds
           SET status = $2, reason = coalesce($3, reason), updated_at = now()
         WHERE id = $1
     RETURNING {HOLD_COLUMNS}
        """,
        hold_id,
        status,
        reason,
    )
