"""Retention: what ``places purge`` deletes, per kind of data, by the ``PLACES_RETENTION_*``
settings (defaults and their grounds: docs/domain.md, "Retention").

Runs as the schema's owner (the service's role cannot delete audit entries). One
transaction: a dry run computes the same counts and rolls back. Nothing a running service
still needs goes: unpublished outbox events stay, and so does the last published one (the
relay's position); each unit's and carer's latest declaration stays (the snapshot equals
it); requests go only once closed (exited or cancelled), with their history and holds. The
audit goes by whole sealed segments only — those sealed before the cutoff, so every entry in
them is older — and their seals stay, marked purged: the chain stays checkable and the last
purged seal is the checkpoint ``places audit verify`` starts from. Unsealed entries never go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from api.settings import Settings

KINDS = ("audit", "requests", "declarations", "outbox", "idempotency")


@dataclass(frozen=True, slots=True)
class Purged:
    """One kind's result: rows deleted (or that would be, in a dry run) and the cutoff."""

    kind: str
    days: int
    cutoff: datetime
    rows: int
    detail: str = ""


def retention_days(settings: Settings) -> dict[str, int]:
    return {
        "audit": settings.retention_audit_days,
        "requests": settings.retention_requests_days,
        "declarations": settings.retention_declarations_days,
        "outbox": settings.retention_outbox_days,
        "idempotency": settings.retention_idempotency_days,
    }


class _DryRun(Exception):
    """Raised to roll the dry run's transaction back."""


def _count(status: str) -> int:
    """Rows affected by a DELETE or UPDATE, from asyncpg's status string."""
    return int(status.rsplit(" ", 1)[-1])


async def _audit(conn: asyncpg.Connection, cutoff: datetime) -> tuple[int, str]:
    last = await conn.fetchrow(
        "SELECT segment, last_id FROM audit_seals"
        " WHERE purged_at IS NULL AND sealed_at < $1 ORDER BY segment DESC LIMIT 1",
        cutoff,
    )
    if last is None:
        return 0, "no sealed segment old enough"
    deleted = _count(
        await conn.execute("DELETE FROM audit_entries WHERE id <= $1", last["last_id"])
    )
    segments = _count(
        await conn.execute(
            "UPDATE audit_seals SET purged_at = now() WHERE segment <= $1 AND purged_at IS NULL",
            last["segment"],
        )
    )
    return deleted, f"{segments} segment(s), checkpoint segment {last['segment']}"


async def _requests(conn: asyncpg.Connection, cutoff: datetime) -> tuple[int, str]:
    await conn.execute(
        "CREATE TEMP TABLE purge_requests ON COMMIT DROP AS SELECT id FROM placement_requests"
        " WHERE status IN ('exited', 'cancelled') AND updated_at < $1",
        cutoff,
    )
    events = _count(
        await conn.execute(
            "DELETE FROM request_events WHERE request_id IN (SELECT id FROM purge_requests)"
        )
    )
    holds = _count(
        await conn.execute("DELETE FROM holds WHERE request_id IN (SELECT id FROM purge_requests)")
    )
    situations = _count(
        await conn.execute(
            "DELETE FROM request_situations WHERE request_id IN (SELECT id FROM purge_requests)"
        )
    )
    requests = _count(
        await conn.execute(
            "DELETE FROM placement_requests WHERE id IN (SELECT id FROM purge_requests)"
        )
    )
    return requests, f"{events} history row(s), {holds} hold(s), {situations} situation(s)"


async def _declarations(conn: asyncpg.Connection, cutoff: datetime) -> tuple[int, str]:
    units = _count(
        await conn.execute(
            """
            DELETE FROM capacity_declarations d
             WHERE d.declared_at < $1
               AND EXISTS (SELECT 1 FROM capacity_declarations n
                            WHERE n.unit_id = d.unit_id AND n.temporality = d.temporality
                              AND (n.declared_at, n.id) > (d.declared_at, d.id))
            """,
            cutoff,
        )
    )
    carers = _count(
        await conn.execute(
            """
            DELETE FROM carer_declarations d
             WHERE d.declared_at < $1
               AND EXISTS (SELECT 1 FROM carer_declarations n
                            WHERE n.carer_id = d.carer_id
                              AND (n.declared_at, n.id) > (d.declared_at, d.id))
            """,
            cutoff,
        )
    )
    return units + carers, f"{units} unit declaration(s), {carers} carer declaration(s)"


async def _outbox(conn: asyncpg.Connection, cutoff: datetime) -> tuple[int, str]:
    deleted = _count(
        await conn.execute(
            """
            DELETE FROM outbox_events
             WHERE published_at < $1
               AND id < (SELECT max(id) FROM outbox_events WHERE published_at IS NOT NULL)
            """,
            cutoff,
        )
    )
    return deleted, ""


async def _idempotency(conn: asyncpg.Connection, cutoff: datetime) -> tuple[int, str]:
    deleted = _count(
        await conn.execute("DELETE FROM idempotency_keys WHERE created_at < $1", cutoff)
    )
    return deleted, ""


_PURGES = {
    "audit": _audit,
    "requests": _requests,
    "declarations": _declarations,
    "outbox": _outbox,
    "idempotency": _idempotency,
}


async def purge(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    dry_run: bool,
    now: datetime | None = None,
) -> list[Purged]:
    """Apply every retention period as of ``now`` (default: the database clock), in one
    transaction; a dry run counts the same rows and deletes nothing."""
    days = retention_days(settings)
    results: list[Purged] = []
    try:
        async with conn.transaction():
            at: datetime = now or await conn.fetchval("SELECT now()")
            for kind in KINDS:
                cutoff = at - timedelta(days=days[kind])
                rows, detail = await _PURGES[kind](conn, cutoff)
                results.append(Purged(kind, days[kind], cutoff, rows, detail))
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return results
