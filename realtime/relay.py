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
from collections.abc import Awaitable, Callable

import asyncpg
from redis.exceptions import RedisError

from realtime.bus import Bus, OutboxEvent, legacy_authority

log = logging.getLogger("places.relay")

LOCK_ID = 0x504C4143  # "PLAC"
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


async def publish_pending(conn: asyncpg.Connection, bus: Bus) -> int:
    """Publish one batch of unpublished events; returns how many were published."""
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
    events = [
        OutboxEvent(
            outbox_id=r["id"],
            type=r["type"],
            department=r["department"],
            occurred_at=r["occurred_at"].isoformat(),
            data=r["data"],
            national_data=r["national_data"],
            authority=r["authority"] or legacy_authority(r["department"]),
        )
        for r in rows
    ]
    await bus.publish(events)
    await conn.execute(
        "UPDATE outbox_events SET published_at = now() WHERE id = ANY($1::bigint[])",
        [e.outbox_id for e in events],
    )
    return len(events)


async def run(
    dsn: str,
    bus: Bus,
    stop: asyncio.Event,
    *,
    channel: str,
    init_connection: ConnectionInit,
    poll_seconds: float = 1.0,
) -> None:
    """Run until ``stop``; contend for the lock, then relay. Errors are logged and retried.

    ``channel`` is the NOTIFY channel the outbox writers signal on at commit;
    ``init_connection`` must decode ``jsonb`` to Python values (the events' ``data``).
    """
    wake = asyncio.Event()
    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn)
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
            while not stop.is_set():
                wake.clear()
                try:
                    while await publish_pending(conn, bus) == BATCH:
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
