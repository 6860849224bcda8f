"""Transactional outbox: each change writes its event with the same connection, in the same
transaction, so an event exists if and only if its change committed."""

from typing import Any

import asyncpg

CHANNEL = "places_outbox"


async def emit(
    conn: asyncpg.Connection,
    event_type: str,
    department: str,
    data: dict[str, Any],
    national_data: dict[str, Any] | None = None,
) -> int:
    """Write one event; ``national_data`` is what the national feed may see (defaults to
    ``data`` for events that carry no child-level field). NOTIFY fires only at commit."""
    event_id: int = await conn.fetchval(
        """
        WITH event AS (
            INSERT INTO outbox_events (type, department, data, national_data)
            VALUES ($1, $2::text, $3, $4)
            RETURNING id
        )
        SELECT id FROM event, pg_notify($5::text, $2::text)
        """,
        event_type,
        department,
        data,
        data if national_data is None else national_data,
        CHANNEL,
    )
    return event_id
