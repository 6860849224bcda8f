"""Per-subject bounds on /v1: concurrent requests, and rate limits on searches and writes.

Why: one token's 64 parallel searches took another department's search from 11 ms to
440 ms (issue #14). A person gets a fair share, not the whole service.

- **Concurrent requests** of one subject (``Principal.key``) in one worker are bounded
  (``max_requests_per_subject``): beyond, 429 at once, before any work. Per worker, because a
  count shared through Redis would leak slots whenever a worker dies mid-request; with W
  workers a subject holds at most W × the cap.
- **Rate limits** per person on searches (``POST /v1/search``) and on writes (POST, PUT,
  PATCH, DELETE under /v1): a token bucket per person and kind, of ``limit`` tokens refilled at
  ``limit`` per minute, so a person may burst up to the limit then goes on at its pace. The
  bucket lives in Redis (one Lua script: read, refill, take, write, expire — atomic, so every
  worker shares it). When Redis does not answer, each worker falls back to a bucket of its own
  with the same limits (a subject may then get W × the limit) and tries Redis again two
  seconds later: searches keep working while Redis is down.
- A refusal is ``TooManyRequests`` (429 problem+json) with ``Retry-After`` in seconds.

The identity is ``api.auth.Principal.key``, whatever the token carries: the module never
reads a token itself.
"""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from starlette.requests import HTTPConnection, Request

from api.auth import bearer_token, current_principal
from api.errors import TooManyRequests
from api.settings import Settings

log = logging.getLogger("places.throttle")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SEARCH_PATHS = frozenset({"/v1/search"})
REDIS_RETRY_SECONDS = 2.0
"""After a Redis failure, the worker's own buckets serve this long before Redis is tried again
(a Redis that is down costs one failed call per two seconds, not one per request)."""
REDIS_TIMEOUT_SECONDS = 0.5
"""A Redis that hangs is treated as down after this long."""
MEMORY_MAX_KEYS = 100_000
"""Buckets one worker keeps in memory at most (full buckets are dropped first)."""
KEY_PREFIX = "places:ratelimit:"

# KEYS[1] the bucket; ARGV[1] capacity (tokens), ARGV[2] refill per millisecond.
# Returns {1, 0} when a token was taken, {0, ms to wait} when none is left. Redis' own clock,
# so that workers whose clocks differ share one bucket consistently.
BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local taken = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return {taken, wait}
"""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class MemoryBuckets:
    """The same token buckets in this worker's memory: the fallback when Redis is down."""

    def __init__(self, max_keys: int = MEMORY_MAX_KEYS) -> None:
        self.max_keys = max_keys
        self.buckets: dict[str, _Bucket] = {}

    def take(self, key: str, capacity: int, per_second: float, now: float) -> float:
        """0 when a token was taken, else the seconds until one is back."""
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._prune(now, per_second, capacity)
            bucket = self.buckets[key] = _Bucket(float(capacity), now)
        bucket.tokens = min(capacity, bucket.tokens + max(0.0, now - bucket.at) * per_second)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / per_second

    def _prune(self, now: float, per_second: float, capacity: int) -> None:
        """Forget the buckets that have refilled (they hold nothing a new one would not);
        if that is not enough, the oldest half."""
        full_after = capacity / per_second
        self.buckets = {k: b for k, b in self.buckets.items() if now - b.at < full_after}
        if len(self.buckets) >= self.max_keys:
            kept = sorted(self.buckets.items(), key=lambda kv: kv[1].at)[len(self.buckets) // 2 :]
            self.buckets = dict(kept)


class SubjectSlots:
    """Concurrent requests per subject in this worker."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.busy: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        if not self.cap:
            return True
        held = self.busy.get(key, 0)
        if held >= self.cap:
            return False
        self.busy[key] = held + 1
        return True

    def release(self, key: str) -> None:
        if not self.cap:
            return
        held = self.busy.get(key, 0) - 1
        if held > 0:
            self.busy[key] = held
        else:
            self.busy.pop(key, None)


class Limiter:
    """One per worker (``app.state.limiter``, made by the lifespan): the concurrent-request
    slots and the rate limits of this worker, with the Redis client the buckets live in
    (``None``: the service runs without Redis, and the worker's own buckets serve)."""

    def __init__(self, redis: aioredis.Redis | None, settings: Settings) -> None:
        self.redis = redis
        self.limits = {
            "search": settings.rate_limit_search_per_minute,
            "write": settings.rate_limit_writes_per_minute,
        }
        self.slots = SubjectSlots(settings.max_requests_per_subject)
        self.memory = MemoryBuckets()
        self.script = redis.register_script(BUCKET_SCRIPT) if redis is not None else None
        self.redis_down_until = 0.0

    async def take(self, kind: str, subject: str) -> float:
        """Take one of ``subject``'s ``kind`` tokens: 0 when allowed, else the seconds to
        wait. Shared through Redis; this worker's own buckets while Redis does not answer."""
        limit = self.limits.get(kind, 0)
        if limit <= 0:
            return 0.0
        per_second = limit / 60.0
        key = f"{KEY_PREFIX}{kind}:{subject}"
        now = time.monotonic()
        if self.script is not None and now >= self.redis_down_until:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    taken, wait_ms = await self.script(keys=[key], args=[limit, per_second / 1000])
            except Exception as exc:  # Redis down or hanging: this worker's buckets
                if self.redis_down_until == 0.0:
                    log.warning("rate limits: Redis unavailable (%r), per-worker limits", exc)
                self.redis_down_until = now + REDIS_RETRY_SECONDS
            else:
                if self.redis_down_until:
                    log.info("rate limits: Redis is back, limits shared again")
                    self.redis_down_until = 0.0
                return 0.0 if int(taken) else max(int(wait_ms), 1) / 1000
        return self.memory.take(key, limit, per_second, now)


def kind_of(method: str, path: str) -> str | None:
    """The rate limit a /v1 request counts against, if any."""
    if method not in WRITE_METHODS:
        return None
    return "search" if path in SEARCH_PATHS else "write"


def _refusal(detail: str, wait: float, **extra: Any) -> TooManyRequests:
    seconds = max(1, math.ceil(wait))
    headers = {"Retry-After": str(seconds)}
    return TooManyRequests(detail, headers=headers, retry_after=seconds, **extra)


async def guard(connection: HTTPConnection) -> AsyncIterator[None]:
    """App-wide dependency: on /v1 HTTP routes, the subject's concurrent-request slot and
    its rate limit. A request without a token has no subject: the route answers it (401); a
    token that does not verify is 401 here, as the route itself would say."""
    limiter: Limiter | None = getattr(connection.app.state, "limiter", None)
    if (
        connection.scope["type"] != "http"
        or not connection.url.path.startswith("/v1/")
        or limiter is None  # an app without its lifespan (some tests)
        or bearer_token(Request(connection.scope)) is None
    ):
        yield
        return
    request = Request(connection.scope)
    settings: Settings = request.app.state.settings
    principal = await current_principal(request, settings)
    if not limiter.slots.acquire(principal.key):
        raise _refusal(
            f"Trop de requêtes simultanées pour ce compte (au plus "
            f"{limiter.slots.cap} à la fois) : réessayez.",
            1,
        )
    try:
        kind = kind_of(request.method, request.url.path)
        if kind is not None:
            wait = await limiter.take(kind, principal.key)
            if wait:
                what = "recherches" if kind == "search" else "écritures"
                raise _refusal(
                    f"Trop de {what} pour ce compte (au plus {limiter.limits[kind]} par "
                    "minute) : réessayez plus tard.",
                    wait,
                    limit=kind,
                )
        yield
    finally:
        limiter.slots.release(principal.key)
