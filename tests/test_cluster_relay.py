"""The relay after a Redis failover that lost the tail of what it published: it finds the
events the (new) master lacks and re-publishes them, chained after what the feed still holds;
a Redis that lost everything is not asked (the relay's heads carry the chain, as before).

A database of its own (not the session's: an app's relay there would check these events
against its own Redis too) and the run's Redis.
"""

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from api.db import drop_database, init_connection
from realtime.bus import RedisBus, feed_key
from realtime.relay import publish_pending, republish_missing
from tests.support.database import create_fixture_database
from tests.support.env import BASE_DSN

pytestmark = pytest.mark.database

DSN = f"{BASE_DSN}/places_test_relay_{os.getpid()}"


@pytest.fixture(scope="module")
async def conn() -> AsyncIterator[asyncpg.Connection]:
    await create_fixture_database(DSN)
    c = await asyncpg.connect(DSN)
    await init_connection(c)
    yield c
    await c.close()
    await drop_database(DSN)


@pytest.fixture
async def bus() -> AsyncIterator[RedisBus]:
    client = aioredis.from_url(os.environ["PLACES_REDIS_URL"])
    b = RedisBus(client)
    b.bind_source(f"test-{uuid.uuid4().hex}")
    yield b
    await client.delete(b.done_key, b.done_key + ":since")
    await b.close()


async def write_events(conn: asyncpg.Connection, authority: str, n: int) -> list[int]:
    rows = await conn.fetch(
        """
        INSERT INTO outbox_events (type, department, authority, data, national_data)
        SELECT 'capacity.updated', '13', $1, jsonb_build_object('n', i), jsonb_build_object('n', i)
          FROM generate_series(1, $2) AS i
        RETURNING id
        """,
        authority,
        n,
    )
    return [r["id"] for r in rows]


async def entries(bus: RedisBus, feed: str) -> list[tuple[str, dict[str, object]]]:
    return await bus.read(feed, "0-0", 0, 1000)


async def test_a_lost_tail_is_republished_after_what_the_feed_holds(
    conn: asyncpg.Connection, bus: RedisBus
) -> None:
    feed = f"T{uuid.uuid4().hex[:8]}"
    try:
        ids = await write_events(conn, feed, 5)
        last: list[int] = []
        assert await publish_pending(conn, bus, last) >= 5
        assert last[-5:] == ids
        # The last publication is in Redis: one look at it, nothing re-published.
        assert await republish_missing(conn, bus, 120, last) == 0
        before = await entries(bus, feed)
        assert [m["outbox_id"] for _, m in before] == ids
        # The replica promoted had not received the last two: neither their entries nor
        # their ids in the done set (the script's effects replicate together).
        lost = before[3:]
        await bus.client.xdel(feed_key(feed), *[eid for eid, _ in lost])
        await bus.client.zrem(bus.done_key, *[str(i) for i in ids[3:]])
        assert await bus.missing(ids) == ids[3:]

        assert await republish_missing(conn, bus, 120, last) == 2
        assert last == ids[3:]
        after = await entries(bus, feed)
        assert [m["outbox_id"] for _, m in after] == ids
        # Chained after what the feed held, with new ids: a client that had seen them is
        # told of the gap (their predecessor is not its last id), one that had not gets them.
        assert after[3][1]["prev"] == before[2][0]
        assert after[3][0] > lost[-1][0]
        assert await bus.missing(ids) == []
        # Nothing missing: nothing re-published.
        assert await republish_missing(conn, bus, 120) == 0
        # The recorded position is the new head.
        assert (
            await conn.fetchval("SELECT entry_id FROM feed_positions WHERE feed = $1", feed)
            == after[-1][0]
        )
    finally:
        await bus.client.delete(feed_key(feed))


async def test_a_redis_that_lost_everything_is_not_asked(
    conn: asyncpg.Connection, bus: RedisBus
) -> None:
    feed = f"T{uuid.uuid4().hex[:8]}"
    try:
        ids = await write_events(conn, feed, 3)
        assert await publish_pending(conn, bus) >= 3
        # Restarted empty: the done set and its ':since' are gone with the streams.
        await bus.client.delete(bus.done_key, bus.done_key + ":since", feed_key(feed))
        assert await bus.missing(ids) == []
        assert await republish_missing(conn, bus, 120) == 0
        # The next event starts the fresh set: only ids from it on are compared later.
        newer = await write_events(conn, feed, 1)
        assert await publish_pending(conn, bus) >= 1
        assert int(await bus.client.get(bus.done_key + ":since")) <= newer[0]
        assert await bus.missing([*ids, *newer]) == []
    finally:
        await bus.client.delete(feed_key(feed))
