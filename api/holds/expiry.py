"""Background expiry of holds: an overdue hold releases itself and emits ``hold.expired``.

Every worker runs the loop (no leader to elect, nothing to fail over): each pass takes
overdue holds one at a time with ``SELECT … FOR UPDATE SKIP LOCKED``, so passes running in
several workers share the work and no hold is ever expired twice — a hold locked by one pass
is skipped by the others, and once committed it is no longer ``held``. Each expiry is its own
short transaction (the same code path as a release, see ``api.holds.service``), so locks are
held for milliseconds; a hold that fails to expire is logged and skipped for the rest of the
pass instead of blocking the ones behind it.
"""

import asyncio
import contextlib
import logging
from datetime import datetime
from uuid import UUID

import asyncpg

from api.holds import repository
from api.holds.service import SYSTEM_EXPIRY, apply_locked

log = logging.getLogger("places.expiry")

INTERVAL_SECONDS = 3.0
EXPIRY_REASON = "délai de réservation dépassé"


async def expire_due(
    pool_or_conn: asyncpg.Pool | asyncpg.Connection,
    now: datetime | None = None,
    limit: int = 10_000,
) -> int:
    """One pass: expire every hold whose ``expires_at`` is before ``now`` (default: the
    database clock) and that no other pass is handling; returns how many this pass expired.
    ``now`` lets an operator (or a test) expire as of another instant."""
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            return await expire_due(conn, now, limit)
    conn = pool_or_conn
    expired = 0
    failed: list[UUID] = []
    while expired + len(failed) < limit:
        hold_id: UUID | None = None
        try:
            async with conn.transaction():
                hold = await repository.lock_one_due(conn, now, failed)
                if hold is None:
                    break
                hold_id = hold["id"]
                await apply_locked(conn, SYSTEM_EXPIRY, hold, "expire", EXPIRY_REASON, None)
            expired += 1
        except Exception:
            if hold_id is None:
                raise
            # One broken hold must not stop the others: skip it for the rest of this pass.
            log.exception("could not expire hold %s; skipped in this pass", hold_id)
            failed.append(hold_id)
    return expired


async def run(pool: asyncpg.Pool, stop: asyncio.Event, interval: float = INTERVAL_SECONDS) -> None:
    """Run passes every ``interval`` seconds until ``stop``; errors are logged, not fatal."""
    while not stop.is_set():
        try:
            expired = await expire_due(pool)
            if expired:
                log.info("expired %d hold(s)", expired)
        except Exception:  # the loop must survive a database restart
            log.exception("hold expiry pass failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
