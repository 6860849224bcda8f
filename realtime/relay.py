"""Outbox relay: moves committed outbox rows to the feeds, in order, exactly once.

Every worker runs one; a PostgreSQL advisory lock keeps exactly one active. It wakes on
LISTEN/NOTIFY (fired at commit by whoever writes the outbox) and also polls every second, so
it catches up after its own restart or an outage of the bus. A row is marked published only
after the bus acknowledged it; the bus skips already-published ids, so a crash in between
never duplicates an event. Each event goes to its authority's feed (the row's ``authority``;
for a row written without one, its department's only authority: ``realtime.bus``) and to the
national feed.

The relay knows the ``outbox_events`` table and nothing else of the service: the caller
hands it the DSN, the NOTIFY channel the writers signal on and the connection set-up (the
JSON codecs), so that the dependencies run one way, from the API to here.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import asyncpg
from redis.exceptions import RedisError

from realtime.bus import Bus, OutboxEvent, legacy_authority

log = logging.getLogger("places.relay")

LOCK_ID = 0x504C4143  # "PLAC"
APPLICATION_NAME = "places-relay"
UNKNOWN = -1
"""In the relay's record of its last publication: not known (it just took the lock)."""
BATCH = 500

ConnectionInit = Callable[[asyncpg.Connection], Awaitable[None]]
"""Prepares the relay's connection like the service's pool ones: ``jsonb`` decoded to dicts."""


async def source_identity(conn: asyncpg.Connection) -> str:
    """This database's identity: the cluster's system identifier and the database's oid
    (a database dropped and recreated under the same name gets a new oid)."""
    return await conn.fetchval(
        """
        SELECT (SELECT system_identifier FROM pg_control_system())::text || ':' || oid::text
          FROM pg_database
         WHERE datname = current_database()
        """
    )


async def publish_pending(
    conn: asyncpg.Connection, bus: Bus, published: list[int] | None = None
) -> int:
    """Publish one batch of unpublished events; returns how many were published (their ids
    replace the content of ``published`` when given, and there are any)."""
    rows = await conn.fetch(
        """
        SELECT id, type, department, authority, occurred_at, data, national_data
          FROM outbox_events
         WHERE published_at IS NULL
         ORDER BY id
         LIMIT $1
        """,
        BATCH,
    )
    if not rows:
        return 0
    events = [_event(r) for r in rows]
    if published is not None:
        published[:] = [e.outbox_id for e in events]
    heads = await bus.publish(events)
    async with conn.transaction():
        await conn.execute(
            "UPDATE outbox_events SET published_at = now() WHERE id = ANY($1::bigint[])",
            [e.outbox_id for e in events],
        )
        await record_positions(conn, heads)
    return len(events)


async def record_positions(conn: asyncpg.Connection, heads: dict[str, str]) -> None:
    """Each feed's new head into ``feed_positions``, in the transaction marking the events
    published: a snapshot that sees the row holds every event up to that entry (their
    transactions committed before the relay read them), on the primary as on a standby."""
    if not heads:
        return
    feeds = sorted(heads)
    try:
        async with conn.transaction():  # a savepoint: its failure keeps the events marked
            await conn.execute(
                """
                INSERT INTO feed_positions AS p (feed, entry_id)
                SELECT * FROM unnest($1::text[], $2::text[])
                ON CONFLICT (feed) DO UPDATE SET entry_id = excluded.entry_id, updated_at = now()
                """,
                feeds,
                [heads[f] for f in feeds],
            )
    except asyncpg.UndefinedTableError:
        # A database not yet migrated to 0022 (a rolling upgrade: new code, old schema).
        log.debug("feed_positions missing: positions not recorded")


async def republish_missing(
    conn: asyncpg.Connection, bus: Bus, window_seconds: float, last: list[int] | None = None
) -> int:
    """Re-publish the events published within ``window_seconds`` that the bus no longer holds
    (a Redis failover to a replica that had not received them). Returns how many.

    ``last``: the ids of this relay's last publication, when it knows them. A replica holds
    a prefix of what its master was sent (one replication stream, in order), so when the
    last publication is there everything before it is: one ``ZMSCORE``, and the window's
    query (a scan of the outbox's recent rows) only when something is missing or the last
    publication is unknown (a relay that just took the lock, ``last`` None or ``[-1]``).
    They go after what the feeds now hold, with new ids: a client that
    had received one of them sees the chain break (its next entry's predecessor is not its
    last id) and reloads its snapshot; a client that had not receives it once.

    The relay's remembered heads are dropped first: they may name entries the new master
    lacks, and chaining onto them would hide the gap from a client that saw them."""
    if last is not None and last != [UNKNOWN]:
        if not last or not await bus.missing(last):
            return 0  # nothing published since the last check, or the last one is there
    if last is not None:
        last[:] = []
    rows = await conn.fetch(
        """
        SELECT id FROM outbox_events
         WHERE published_at IS NOT NULL
           AND published_at > now() - make_interval(secs => $1)
         ORDER BY id
        """,
        window_seconds,
    )
    if not rows:
        return 0
    ids = [r["id"] for r in rows]
    if last is not None:
        last[:] = ids[-1:]
    lost = await bus.missing(ids)
    if not lost:
        return 0
    bus.forget_heads()
    rows = await conn.fetch(
        """
        SELECT id, type, department, authority, occurred_at, data, national_data
          FROM outbox_events
         WHERE id = ANY($1::bigint[])
         ORDER BY id
        """,
        lost,
    )
    async with conn.transaction():
        await record_positions(conn, await bus.publish([_event(r) for r in rows]))
    if last is not None:
        last[:] = [r["id"] for r in rows]
    log.warning("outbox relay: %d events missing from Redis re-published", len(rows))
    return len(rows)


def _event(r: asyncpg.Record) -> OutboxEvent:
    return OutboxEvent(
        outbox_id=r["id"],
        type=r["type"],
        department=r["department"],
        occurred_at=r["occurred_at"].isoformat(),
        data=r["data"],
        national_data=r["national_data"],
        authority=r["authority"] or legacy_authority(r["department"]),
    )


async def run(
    dsn: str,
    bus: Bus,
    stop: asyncio.Event,
    *,
    channel: str,
    init_connection: ConnectionInit,
    poll_seconds: float = 1.0,
    recheck_seconds: float = 0.0,
    recheck_every: float = 2.0,
) -> None:
    """Run until ``stop``; contend for the lock, then relay. Errors are logged and retried.

    ``channel`` is the NOTIFY channel the outbox writers signal on at commit;
    ``init_connection`` must decode ``jsonb`` to Python values (the events' ``data``).
    ``recheck_seconds`` > 0: every ``recheck_every`` seconds, on taking the lock and after
    Redis comes back, the events published that recently are checked to still be in Redis,
    and those missing re-published (``republish_missing``) — before any new event, so that
    a new event never chains onto an entry the new master lacks.
    """
    wake = asyncio.Event()
    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            # Named after the process, so that an operator (or a chaos test) finds which
            # instance holds the lock: pg_locks → pg_stat_activity.application_name.
            conn = await asyncpg.connect(
                dsn, server_settings={"application_name": f"{APPLICATION_NAME} {os.getpid()}"}
            )
            await init_connection(conn)
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
            if stop.is_set():
                break
            await conn.add_listener(channel, lambda *_: wake.set())
            log.info("outbox relay active in this worker")
            # Another worker may have published since this one last held the lock.
            bus.forget_heads()
            bus.bind_source(await source_identity(conn))
            bus_down = False
            last = [UNKNOWN]  # this relay's last publication: unknown yet
            loop = asyncio.get_running_loop()
            next_check = 0.0  # at once: the previous holder may have died mid-failover
            while not stop.is_set():
                wake.clear()
                try:
                    if recheck_seconds > 0 and (bus_down or loop.time() >= next_check):
                        await republish_missing(conn, bus, recheck_seconds, last)
                        next_check = loop.time() + recheck_every
                    while await publish_pending(conn, bus, last) == BATCH:
                        pass
                    if bus_down:
                        log.info("outbox relay: Redis back, pending events published")
                    bus_down = False
                except RedisError as exc:
                    # Redis down: keep the lock (no other relay publishes meanwhile, so the
                    # bus's memory of each feed's last id stays true) and retry every second.
                    if not bus_down:
                        log.warning("outbox relay waiting for Redis: %s", type(exc).__name__)
                    bus_down = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_seconds)
        except (OSError, asyncpg.PostgresError, ConnectionError) as exc:
            log.warning("outbox relay paused: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        except Exception as exc:  # the bus (Redis) down: keep events, retry
            log.warning("outbox relay paused: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
