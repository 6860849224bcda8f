"""What the app opens at start-up it closes at shutdown: the feed hub (made with the app, not
on the first WebSocket), its readers and their Redis pool, the bus's Redis pool, the database
pool. A pool left open leaks connections in every process that builds apps, tests included."""

import asyncio
import contextlib
import uuid

import redis.asyncio as aioredis

from api.main import create_app
from api.settings import get_settings
from realtime.hub import Hub


async def redis_client_names(url: str) -> set[str]:
    observer = aioredis.from_url(url)
    try:
        return {c["name"] for c in await observer.client_list()}
    finally:
        await observer.aclose()


async def test_lifespan_makes_the_hub_and_closes_every_pool(database: str) -> None:
    settings = get_settings()
    assert settings.redis_url, "the suite runs against Redis"
    app = create_app(settings)
    tag = f"places-test-{uuid.uuid4().hex[:12]}"
    async with contextlib.AsyncExitStack() as clients:
        async with app.router.lifespan_context(app):
            hub = app.state.feed_hub
            assert isinstance(hub, Hub)
            assert hub.bus is not app.state.bus, "readers have a Redis pool of their own"
            # A WebSocket client still subscribed when the app stops: its reader holds one
            # connection of the readers' pool in XREAD BLOCK (cancelling it drops that one).
            await clients.enter_async_context(hub.subscribe("69"))
            reader = hub.readers["69"].task
            # One more, idle, named connection in each Redis pool: only closing the pool
            # closes it, and the server lists it until then.
            await app.state.redis.client_setname(f"{tag}-bus")
            await hub.bus.client.client_setname(f"{tag}-readers")
            pool = app.state.pool
            assert {f"{tag}-bus", f"{tag}-readers"} <= await redis_client_names(settings.redis_url)
        assert reader.done() and not hub.readers
        assert pool.is_closing()
    for _ in range(100):  # the server sees a closed socket a moment later
        left = {f"{tag}-bus", f"{tag}-readers"} & await redis_client_names(settings.redis_url)
        if not left:
            break
        await asyncio.sleep(0.02)
    assert left == set(), "Redis connections left open after shutdown"
