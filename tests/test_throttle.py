"""Per-subject caps and rate limits (``api.throttle``, ``realtime.hub``): a person's burst of
searches or writes is refused with 429 and ``Retry-After``, shared across workers through
Redis and still enforced — per worker — while Redis is down, when searches keep working;
concurrent requests and live feeds of one subject are bounded (429, close 4429)."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.main import create_app
from api.settings import Settings, get_settings
from api.throttle import KEY_PREFIX, REDIS_RETRY_SECONDS, Limiter, MemoryBuckets, kind_of
from loadtests.harness import RedisServer, ServiceProcess
from tests.support.factories import bearer, idem, request_body

SEARCH = {
    "children": [{"age": 10, "sex": "M", "disability_profiles": []}],
    "origin": {"commune": "69123"},
    "care_mode": "durable",
    "max_distance_km": 30,
    "limit": 5,
}


def person() -> dict[str, str]:
    """A placement officer of Lyon of one's own (a fresh ``sub``): buckets are per person."""
    return bearer("department", authority="69M", sub=f"agent-{uuid.uuid4()}")


@contextlib.asynccontextmanager
async def serving(
    limits_redis: str | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan, on the session's database and Redis, with
    ``overrides``; ``limits_redis``: the rate limits' buckets in that Redis instead (the
    events keep the session's, so that no other test's events go astray)."""
    settings = get_settings().model_copy(update=overrides)
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        if limits_redis is not None:
            own = aioredis.from_url(limits_redis, socket_connect_timeout=1, socket_timeout=5)
            app.state.limiter = Limiter(own, settings)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
                yield c
        finally:
            if limits_redis is not None:
                await own.aclose()


DEFAULTS = {
    name: Settings.model_fields[name].default
    for name in (
        "max_requests_per_subject",
        "rate_limit_search_per_minute",
        "rate_limit_writes_per_minute",
    )
}


# --- pure: the buckets, the kinds ------------------------------------------------------


@pytest.mark.pure
def test_a_bucket_lets_a_burst_of_its_size_through_then_refills_at_its_rate() -> None:
    buckets = MemoryBuckets()
    now = 1000.0
    assert [buckets.take("p", 60, 1.0, now) for _ in range(60)] == [0.0] * 60
    wait = buckets.take("p", 60, 1.0, now)
    assert wait == pytest.approx(1.0)  # one a second
    assert buckets.take("q", 60, 1.0, now) == 0.0  # another person's bucket
    assert buckets.take("p", 60, 1.0, now + 1.0) == 0.0
    assert buckets.take("p", 60, 1.0, now + 1.0) > 0


@pytest.mark.pure
def test_a_full_worker_memory_forgets_refilled_buckets_first() -> None:
    buckets = MemoryBuckets(max_keys=10)
    for i in range(10):
        buckets.take(f"old{i}", 5, 1.0, 0.0)
    buckets.take("busy", 5, 1.0, 99.0)
    assert set(buckets.buckets) == {"busy"}  # the old ones had refilled: nothing lost


@pytest.mark.pure
def test_searches_and_writes_count_apart_and_reads_not_at_all() -> None:
    assert kind_of("POST", "/v1/search") == "search"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert kind_of(method, "/v1/requests") == "write"
    assert kind_of("GET", "/v1/requests") is None
    assert kind_of("GET", "/v1/search") is None


@pytest.mark.pure
def test_the_defaults_refuse_a_burst_an_officer_never_makes() -> None:
    """A few hundred searches within a minute are refused by default; a few a minute never."""
    assert 10 <= DEFAULTS["rate_limit_search_per_minute"] <= 120
    assert DEFAULTS["max_requests_per_subject"] >= 6  # a browser's parallel requests


# --- through the app, real Redis ---------------------------------------------------------


async def test_a_burst_of_searches_is_refused_with_retry_after(database: str) -> None:
    """With the default limits: a burst of 100 searches from one person, 60 pass."""
    async with serving(**DEFAULTS) as c:
        me, other = person(), person()
        codes = [
            (await c.post("/v1/search", json=SEARCH, headers=me)).status_code for _ in range(100)
        ]
        passed = codes.count(200)
        assert 60 <= passed <= 62 and codes.count(429) == 100 - passed, codes
        assert codes[:60] == [200] * 60
        r = await c.post("/v1/search", json=SEARCH, headers=me)
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        assert 1 <= int(r.headers["retry-after"]) <= 2  # one search a second comes back
        body = r.json()
        assert body["status"] == 429 and body["limit"] == "search" and body["retry_after"] >= 1
        assert "par minute" in body["detail"]
        # the person's reads and another person's searches are untouched
        assert (await c.get("/v1/requests", headers=me)).status_code == 200
        assert (await c.post("/v1/search", json=SEARCH, headers=other)).status_code == 200


async def test_writes_have_their_own_limit(database: str) -> None:
    async with serving(rate_limit_writes_per_minute=3, rate_limit_search_per_minute=1000) as c:
        me = person()
        codes = [
            (
                await c.post("/v1/requests", json=request_body(), headers={**me, **idem()})
            ).status_code
            for _ in range(4)
        ]
        assert codes == [201, 201, 201, 429]
        assert (await c.post("/v1/search", json=SEARCH, headers=me)).status_code == 200


async def test_concurrent_requests_of_one_subject_are_bounded(database: str) -> None:
    """One token's 64 parallel searches: beyond the cap at once, 429 (the others' share)."""
    async with serving(**DEFAULTS | {"rate_limit_search_per_minute": 0}) as c:
        me = person()
        answers = await asyncio.gather(
            *(c.post("/v1/search", json=SEARCH, headers=me) for _ in range(64))
        )
        codes = [a.status_code for a in answers]
        assert set(codes) == {200, 429}, codes
        refused = next(a for a in answers if a.status_code == 429)
        assert "simultanées" in refused.json()["detail"] and refused.headers["retry-after"] == "1"
        # the slots are given back: later requests pass
        assert (await c.post("/v1/search", json=SEARCH, headers=me)).status_code == 200


async def test_no_token_is_still_401_not_429(database: str) -> None:
    async with serving(**DEFAULTS) as c:
        r = await c.post("/v1/search", json=SEARCH)
        assert r.status_code == 401


@pytest.mark.timeout(60)
async def test_the_limit_is_shared_through_redis_and_per_worker_while_redis_is_down(
    database: str,
) -> None:
    """Two workers (two limiters) share one bucket in Redis; with Redis stopped each worker
    enforces the limit alone, at once and without error; Redis back, shared again."""
    redis_server = RedisServer()
    await redis_server.astart()
    settings = get_settings().model_copy(update={"rate_limit_search_per_minute": 6})
    clients = [aioredis.from_url(redis_server.url, socket_connect_timeout=1) for _ in range(2)]
    a, b = (Limiter(client, settings) for client in clients)
    try:
        taken = [await (a if i % 2 else b).take("search", "p1") for i in range(6)]
        assert taken == [0.0] * 6
        assert await a.take("search", "p1") > 0 and await b.take("search", "p1") > 0
        assert await clients[0].exists(f"{KEY_PREFIX}search:p1")

        await redis_server.astop()
        started = time.monotonic()
        alone = [await a.take("search", "p2") for _ in range(7)]
        assert alone[:6] == [0.0] * 6 and alone[6] > 0  # per worker: a's own bucket
        assert await b.take("search", "p2") == 0.0  # b's own, apart
        assert time.monotonic() - started < 2  # no waiting on a dead Redis

        await redis_server.astart()  # same port, empty
        await asyncio.sleep(REDIS_RETRY_SECONDS + 0.1)
        assert [await a.take("search", "p3") for _ in range(3)] == [0.0] * 3
        assert [await b.take("search", "p3") for _ in range(3)] == [0.0] * 3
        assert await a.take("search", "p3") > 0  # one bucket again
    finally:
        for client in clients:
            await client.aclose()
        await redis_server.astop()


@pytest.mark.timeout(90)
async def test_searches_keep_working_with_redis_down(database: str) -> None:
    """The service's Redis stops: searches still answer, and a burst is still refused."""
    redis_server = RedisServer()
    await redis_server.astart()
    try:
        async with serving(
            redis_server.url,
            rate_limit_search_per_minute=10,
            max_requests_per_subject=16,
        ) as c:
            me = person()
            assert (await c.post("/v1/search", json=SEARCH, headers=me)).status_code == 200
            await redis_server.astop()
            codes = [
                (await c.post("/v1/search", json=SEARCH, headers=me)).status_code for _ in range(12)
            ]
            # the worker's own bucket starts full: 10 pass, then 429
            assert codes.count(200) in (10, 11) and codes[-1] == 429, codes
            assert (await c.post("/v1/search", json=SEARCH, headers=person())).status_code == 200
    finally:
        await redis_server.astop()


# --- live feeds per subject, on a real server --------------------------------------------


@pytest.mark.server
@pytest.mark.timeout(120)
async def test_live_feeds_per_subject_are_bounded(database: str) -> None:
    server = ServiceProcess(database, PLACES_MAX_FEEDS_PER_SUBJECT="2")
    await server.astart()
    national = bearer("national", sub=f"analyst-{uuid.uuid4()}")

    def open_feed(headers: dict[str, str]) -> Any:
        return connect(
            f"{server.ws}/ws/national", additional_headers=headers, proxy=None, open_timeout=20
        )

    try:
        async with open_feed(national), open_feed(national) as second:
            async with open_feed(national) as third:
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(20):  # generous: a loaded CI machine
                        await third.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
                assert "au plus 2" in closed.value.rcvd.reason
            # another subject is not affected
            async with open_feed(bearer("national", sub=f"analyst-{uuid.uuid4()}")) as other:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(1):
                        await other.recv()  # open, quiet (pings every 25 s)
            await second.close()
            await asyncio.sleep(1)
            async with open_feed(national) as again:  # a slot was given back
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(1):
                        await again.recv()
    finally:
        await server.astop()
