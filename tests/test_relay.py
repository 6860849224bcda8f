"""The relay's idempotent publish is scoped to one database: outbox ids restart at 1 in a
recreated database and must never be taken for another database's events."""

import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from realtime.bus import OutboxEvent, RedisBus, feed_key
from realtime.relay import source_identity
from tests.support.env import ADMIN_DSN


def event(outbox_id: int, department: str) -> OutboxEvent:
    return OutboxEvent(
        outbox_id,
        "capacity.updated",
        department,
        "2026-11-25T08:00:00+00:00",
        {"n": outbox_id},
        {"n": outbox_id},
    )


@pytest.mark.database  # the shared test Redis
async def test_same_outbox_id_from_two_databases_is_published_twice():
    client = aioredis.from_url("redis://127.0.0.1:6379/15")
    dept = f"t{uuid.uuid4().hex[:6]}"  # a feed of its own in the shared test Redis
    try:
        bus = RedisBus(client)
        bus.bind_source(f"db-a-{dept}")
        await bus.publish([event(1, dept)])
        await bus.publish([event(1, dept)])  # a replay after a crash: skipped
        bus.forget_heads()
        bus.bind_source(f"db-b-{dept}")  # another database, its own outbox id 1
        await bus.publish([event(1, dept)])
        assert await client.xlen(feed_key(dept)) == 2
    finally:
        await client.delete(feed_key(dept))
        await client.aclose()


async def test_identity_differs_between_databases(database):
    other = ADMIN_DSN.rsplit("/", 1)[0] + "/postgres"
    a = await asyncpg.connect(database)
    b = await asyncpg.connect(other)
    try:
        ida, idb = await source_identity(a), await source_identity(b)
        assert ida != idb and ida.split(":")[0] == idb.split(":")[0]
        assert await source_identity(a) == ida
    finally:
        await a.close()
        await b.close()
