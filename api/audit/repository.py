"""SQL of the audit's seals. The rows' digest is computed by PostgreSQL, over each entry's
canonical text: ``jsonb_strip_nulls(to_jsonb(entry))::text`` with the session in UTC.

Why this form: jsonb prints its keys in one fixed order and timestamps in ISO 8601 (in the
session's time zone, hence UTC), so the text of a row is the same whoever reads it; and a
column added later, nullable and null on old rows, is stripped from them — their digests do
not change. A later column with a non-null default on old rows would change them: add
columns to ``audit_entries`` nullable, without default.
"""

from typing import Any

import asyncpg

SEQUENCE = "SELECT pg_get_serial_sequence('audit_entries', 'id')"

ROWS_DIGEST = """
SELECT count(*)::int AS entries,
       encode(sha256(convert_to(coalesce(string_agg(
           encode(sha256(convert_to(jsonb_strip_nulls(to_jsonb(a))::text, 'UTF8')), 'hex'),
           '' ORDER BY a.id), ''), 'UTF8')), 'hex') AS digest
  FROM audit_entries a
 WHERE a.id BETWEEN $1 AND $2
"""

SEAL_COLUMNS = (
    "segment, first_id, last_id, entries, rows_digest, previous_hash, hash, sealed_at, purged_at"
)


async def last_allocated_id(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The last audit id handed out by the sequence (committed or not); 0 before any."""
    sequence = await conn.fetchval(SEQUENCE)
    row = await conn.fetchrow(f"SELECT last_value, is_called FROM {sequence}")
    assert row is not None
    return int(row["last_value"]) if row["is_called"] else 0


async def snapshot_bounds(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, int]:
    """(xmin, xmax) of a fresh snapshot: the oldest transaction id still running, and the
    first not yet assigned."""
    row = await conn.fetchrow(
        "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint"
        " AS xmax FROM pg_current_snapshot() AS s"
    )
    assert row is not None
    return int(row["xmin"]), int(row["xmax"])


async def rows_digest(conn: asyncpg.Connection, first_id: int, last_id: int) -> tuple[int, str]:
    """Count and digest of the entries with ids in [first_id, last_id]. The caller's
    transaction must be in UTC (``SET LOCAL timezone``)."""
    row = await conn.fetchrow(ROWS_DIGEST, first_id, last_id)
    assert row is not None
    return int(row["entries"]), str(row["digest"])


async def head(conn: asyncpg.Connection) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {SEAL_COLUMNS} FROM audit_seals ORDER BY segment DESC LIMIT 1"
    )
    return dict(row) if row else None


async def seals(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT {SEAL_COLUMNS} FROM audit_seals ORDER BY segment")
    return [dict(r) for r in rows]


async def insert_seal(conn: asyncpg.Connection, seal: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO audit_seals (segment, first_id, last_id, entries, rows_digest,"
        " previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        seal["segment"],
        seal["first_id"],
        seal["last_id"],
        seal["entries"],
        seal["rows_digest"],
        seal["previous_hash"],
        seal["hash"],
    )


async def entries_after(conn: asyncpg.Connection, last_id: int) -> int:
    """Entries not sealed yet (ids after the last seal's)."""
    return int(await conn.fetchval("SELECT count(*) FROM audit_entries WHERE id > $1", last_id))


async def any_between(conn: asyncpg.Connection, first_id: int, last_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM audit_entries WHERE id BETWEEN $1 AND $2)",
            first_id,
            last_id,
        )
    )
