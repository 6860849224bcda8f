"""Sealed segments: the audit as a hash chain, without a lock on the write path.

Writers insert audit entries as before (one row, no lock, nothing computed). Now and then a
sealer takes the entries written since the last seal — a contiguous range of ids — and
writes one ``audit_seals`` row: the range, the count, the digest of the rows in id order,
and ``hash = sha256(previous seal's hash, segment, range, count, digest)``. Changing,
deleting or inserting an entry of a sealed range changes its digest; rewriting a seal to
match changes every later hash, so the head printed by ``places audit seal`` and kept outside
the database (a ticket, a mail, a printed page) pins the whole chain up to it.

Which ids may be sealed. An id is handed out by the sequence when the writer's INSERT runs,
and its row becomes visible at the writer's commit, later; the ids of rows still invisible
can be lower than ids already committed. Sealing past such an id would leave it out of a
segment it belongs to (verify would then report that segment). So the sealer takes the
sequence's last id ``L``, lets ``SETTLE_SECONDS`` pass (a writer's transaction gets its
transaction id in the very statement that took the id), reads the next unassigned
transaction id ``X``, and seals up to ``L`` only once no transaction older than ``X`` is
still running (snapshot ``xmin ≥ X``): every id up to ``L`` is then committed or never will
be. A long transaction postpones the seal (up to ``WAIT_SECONDS``, then the next round);
it never blocks a writer. One sealer at a time: ``pg_try_advisory_xact_lock(SEAL_LOCK)``
in the sealing transaction, in the CLI and in every worker's loop alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from api.audit import repository

log = logging.getLogger("places.audit")

SEAL_LOCK = 0x50415544  # "PAUD"
GENESIS = "0" * 64
"""The previous hash of the first segment."""
SEGMENT_IDS = 100_000
"""At most this many ids per segment (a long backlog is sealed in several)."""
SETTLE_SECONDS = 0.2
WAIT_SECONDS = 5.0
VERSION = "places-audit-seal/1"


def chain_hash(
    previous_hash: str, segment: int, first_id: int, last_id: int, entries: int, digest: str
) -> str:
    """The seal's hash: everything it states, chained to the previous seal's hash."""
    text = f"{VERSION}\n{previous_hash}\n{segment}\n{first_id}\n{last_id}\n{entries}\n{digest}"
    return hashlib.sha256(text.encode()).hexdigest()


async def safe_bound(
    db: asyncpg.Pool | asyncpg.Connection,
    settle: float = SETTLE_SECONDS,
    wait: float = WAIT_SECONDS,
) -> int | None:
    """The highest audit id below which every entry is committed or will never be (see the
    module's docstring); None when a transaction older than the bound is still running
    after ``wait`` seconds. Runs outside any transaction (it watches others finish)."""
    last = await repository.last_allocated_id(db)
    await asyncio.sleep(settle)
    _, xmax = await repository.snapshot_bounds(db)
    deadline = time.monotonic() + wait
    while True:
        xmin, _ = await repository.snapshot_bounds(db)
        if xmin >= xmax:
            return last
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's last seal (None fields: nothing sealed yet) and what this call sealed."""

    segment: int | None
    last_id: int | None
    hash: str
    sealed_now: int = 0

    def line(self) -> str:
        if self.segment is None:
            return "audit: nothing sealed yet"
        return f"segment {self.segment} · last entry {self.last_id} · head {self.hash}"


async def seal(
    conn: asyncpg.Connection, *, settle: float = SETTLE_SECONDS, wait: float = WAIT_SECONDS
) -> Head | None:
    """Seal every committed entry not sealed yet; return the head (None: another sealer
    holds the lock, or a long transaction kept the bound back — try again later)."""
    bound = await safe_bound(conn, settle, wait)
    if bound is None:
        log.info("audit seal postponed: a transaction older than the entries is running")
        return None
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEAL_LOCK):
            return None
        await conn.execute("SET LOCAL timezone = 'UTC'")
        last = await repository.head(conn)
        segment = last["segment"] if last else 0
        previous = last["hash"] if last else GENESIS
        start = last["last_id"] + 1 if last else 1
        sealed = 0
        if start <= bound and await repository.any_between(conn, start, bound):
            while start <= bound:
                end = min(bound, start + SEGMENT_IDS - 1)
                entries, digest = await repository.rows_digest(conn, start, end)
                segment += 1
                current = chain_hash(previous, segment, start, end, entries, digest)
                await repository.insert_seal(
                    conn,
                    {
                        "segment": segment,
                        "first_id": start,
                        "last_id": end,
                        "entries": entries,
                        "rows_digest": digest,
                        "previous_hash": previous,
                        "hash": current,
                    },
                )
                previous, start, sealed = current, end + 1, sealed + 1
        if segment == 0:
            return Head(None, None, GENESIS)
        return Head(segment, start - 1, previous, sealed)


@dataclass
class Verification:
    """What ``verify`` found: ``problems`` empty means the chain holds."""

    segments: int = 0
    purged: int = 0
    entries: int = 0
    unsealed: int = 0
    head: Head | None = None
    checkpoint: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(conn: asyncpg.Connection, expected_head: str | None = None) -> Verification:
    """Recompute the chain from the first seal: each seal's hash from its fields and the
    previous hash, each live segment's count and digest from its rows; purged segments (a
    prefix) are checked as links only, the last of them being the checkpoint. With
    ``expected_head`` (a hash printed earlier by ``places audit seal``): it must be one of
    the chain's hashes — a chain rewritten before it does not contain it."""
    result = Verification()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL timezone = 'UTC'")
        previous, next_first, seen_live = GENESIS, 1, False
        hashes: set[str] = set()
        for number, seal_row in enumerate(await repository.seals(conn), start=1):
            s = seal_row
            name = f"segment {s['segment']} (entries {s['first_id']}–{s['last_id']})"
            if s["segment"] != number or s["first_id"] != next_first:
                result.problems.append(
                    f"{name}: expected segment {number} starting at entry {next_first}:"
                    " a seal is missing"
                )
            if s["previous_hash"] != previous:
                result.problems.append(f"{name}: its previous hash is not the seal before it")
            recomputed = chain_hash(
                previous, s["segment"], s["first_id"], s["last_id"], s["entries"], s["rows_digest"]
            )
            if recomputed != s["hash"]:
                result.problems.append(f"{name}: the seal's hash does not match its fields")
            if s["purged_at"] is None:
                seen_live = True
                entries, digest = await repository.rows_digest(conn, s["first_id"], s["last_id"])
                if entries != s["entries"]:
                    result.problems.append(
                        f"{name}: {entries} entries now, {s['entries']} when sealed"
                        " (entries deleted or inserted)"
                    )
                elif digest != s["rows_digest"]:
                    result.problems.append(f"{name}: entries changed since sealed")
                result.entries += entries
            else:
                result.purged += 1
                result.checkpoint = s["segment"]
                if seen_live:
                    result.problems.append(f"{name}: purged after a live segment")
            hashes.add(s["hash"])
            previous, next_first = s["hash"], s["last_id"] + 1
            result.segments += 1
            result.head = Head(s["segment"], s["last_id"], s["hash"])
        result.unsealed = await repository.entries_after(conn, next_first - 1)
    if expected_head is not None and expected_head.strip().lower() not in hashes:
        result.problems.append(
            f"head {expected_head} is not in the chain: the seals were rewritten (or that"
            " head belongs to another database)"
        )
    return result


async def run(
    pool: asyncpg.Pool, stop: asyncio.Event, interval: float, *, settle: float = SETTLE_SECONDS
) -> None:
    """The background sealer: every ``interval`` seconds, seal what is new (every worker
    runs it; the advisory lock lets one seal at a time, the others find nothing new)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            break
        try:
            async with pool.acquire() as conn:
                head = await seal(conn, settle=settle)
            if head is not None and head.sealed_now:
                log.info("audit sealed: %s", head.line())
        except Exception as exc:  # the database away: try again next round
            log.warning("audit seal failed: %s", type(exc).__name__)
