"""SQL of persons and habilitations."""

from typing import Any
from uuid import UUID

import asyncpg

from api.persons.directory import CHANNEL

HABILITATION_SELECT = """
SELECT h.id, h.function, h.authority, h.finess, h.carer_id::text AS carer_id, h.granted_by,
       h.granted_at, h.revoked_by, h.revoked_at,
       p.id AS person_id, p.issuer, p.sub, p.display_name, p.email
  FROM habilitations h JOIN persons p ON p.id = h.person_id
"""


async def notify(conn: asyncpg.Connection) -> None:
    """Every worker forgets its cached persons when the transaction commits."""
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


async def upsert_person(
    conn: asyncpg.Connection, issuer: str, sub: str, display_name: str | None, email: str | None
) -> int:
    person_id: int = await conn.fetchval(
        """
        INSERT INTO persons (issuer, sub, display_name, email) VALUES ($1, $2, $3, $4)
        ON CONFLICT (issuer, sub) DO UPDATE
           SET display_name = coalesce(EXCLUDED.display_name, persons.display_name),
               email = coalesce(EXCLUDED.email, persons.email)
        RETURNING id
        """,
        issuer,
        sub,
        display_name,
        email,
    )
    return person_id


async def live_duplicate(
    conn: asyncpg.Connection,
    person_id: int,
    function: str,
    authority: str | None,
    finess: str | None,
    carer_id: UUID | None,
) -> int | None:
    found: int | None = await conn.fetchval(
        """
        SELECT id FROM habilitations
         WHERE person_id = $1 AND function = $2 AND authority IS NOT DISTINCT FROM $3
           AND finess IS NOT DISTINCT FROM $4 AND carer_id IS NOT DISTINCT FROM $5
           AND revoked_at IS NULL
        """,
        person_id,
        function,
        authority,
        finess,
        carer_id,
    )
    return found


async def insert(
    conn: asyncpg.Connection,
    person_id: int,
    function: str,
    authority: str | None,
    finess: str | None,
    carer_id: UUID | None,
    granted_by: str,
) -> int:
    new_id: int = await conn.fetchval(
        """
        INSERT INTO habilitations (person_id, function, authority, finess, carer_id, granted_by)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
        """,
        person_id,
        function,
        authority,
        finess,
        carer_id,
        granted_by,
    )
    return new_id


async def one(conn: asyncpg.Connection, habilitation_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        HABILITATION_SELECT + " WHERE h.id = $1", habilitation_id
    )
    return row


async def of_authority(
    conn: asyncpg.Connection, authority: str, include_revoked: bool
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        HABILITATION_SELECT
        + " WHERE h.authority = $1 AND ($2 OR h.revoked_at IS NULL) ORDER BY h.id",
        authority,
        include_revoked,
    )
    return rows


async def revoke(conn: asyncpg.Connection, habilitation_id: int, revoked_by: str) -> None:
    await conn.execute(
        "UPDATE habilitations SET revoked_at = now(), revoked_by = $2"
        " WHERE id = $1 AND revoked_at IS NULL",
        habilitation_id,
        revoked_by,
    )


async def sign_out(conn: asyncpg.Connection, issuer: str, sub: str) -> Any:
    return await conn.fetchval(
        """
        INSERT INTO persons (issuer, sub, signed_out_at) VALUES ($1, $2, now())
        ON CONFLICT (issuer, sub) DO UPDATE SET signed_out_at = now()
        RETURNING signed_out_at
        """,
        issuer,
        sub,
    )
