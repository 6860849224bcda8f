"""Audit trail: who read or changed what, when, under which role (no personal data in it)."""

from typing import Any

import asyncpg

from api.auth import Principal


async def record(
    conn: asyncpg.Connection,
    principal: Principal,
    action: str,
    object_type: str,
    object_id: str,
    department: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_entries (actor, role, action, object_type, object_id, department, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        principal.sub,
        principal.role,
        action,
        object_type,
        object_id,
        department,
        detail or {},
    )
