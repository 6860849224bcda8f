"""Read routing: lag-tolerant reads on the hot standby, with read-your-writes.

Search, statistics, FHIR and open data read through ``ReadPool``: the standby
(``PLACES_DATABASE_READ_URL``) while ``api.db.ReadRouting`` finds it at most
``PLACES_READ_MAX_LAG_SECONDS`` behind, else the primary. Their writes (the audit of a
search) take the primary ``Pool``.

Read-your-writes, by subject: a subject that wrote (POST, PUT, PATCH, DELETE under /v1, a
search excepted) reads on the primary for the next ``read_max_lag_seconds + 1`` seconds. A
standby that serves reads is at most ``read_max_lag_seconds`` behind, so a write older than
that window is on it. The mark lives in Redis (``places:rw:<subject>``, expiring with the
window) because the load balancer sends a subject's next request to any instance; each
worker also keeps its own marks, and a Redis that does not answer sends the subject to the
primary (when in doubt, the primary). Chosen over returning the write's WAL position for the
client to send back: no client has to change (docs/architecture.md, "Cluster").
"""

import asyncio
import logging
import time
from typing import Annotated

import asyncpg
from fastapi import Depends, Response
from starlette.requests import HTTPConnection, Request

from api.auth import Principal, bearer_token, current_principal
from api.db import ReadRouting
from api.settings import Settings
from realtime.bus import NATIONAL

log = logging.getLogger("places.reads")

FEED_POSITION_HEADER = "Places-Feed-Position"
KEY_PREFIX = "places:rw:"
REDIS_TIMEOUT_SECONDS = 0.3
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_WRITES = frozenset({"/v1/search"})
MEMORY_MAX = 100_000


class RecentWriters:
    """Who wrote within the window: in Redis for every instance, and in this worker."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self.local: dict[str, float] = {}

    async def mark(self, redis: object | None, subject: str) -> None:
        now = time.monotonic()
        if len(self.local) >= MEMORY_MAX:
            self.local = {k: t for k, t in self.local.items() if t > now}
        self.local[subject] = now + self.window
        if redis is not None:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    await redis.set(KEY_PREFIX + subject, 1, px=int(self.window * 1000))  # type: ignore[attr-defined]
            except Exception as exc:  # the next reads of any subject go to the primary
                log.debug("write mark not shared: %r", exc)

    async def recent(self, redis: object | None, subject: str) -> bool:
        """Whether ``subject`` may have written within the window (True when unsure)."""
        if self.local.get(subject, 0.0) > time.monotonic():
            return True
        if redis is None:
            return False  # one instance without Redis: this worker's marks are all of them
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                return bool(await redis.exists(KEY_PREFIX + subject))  # type: ignore[attr-defined]
        except Exception:
            return True


def is_write(method: str, path: str) -> bool:
    return method in WRITE_METHODS and path.startswith("/v1/") and path not in NOT_WRITES


async def track_writes(connection: HTTPConnection) -> None:
    """App-wide dependency: marks the subject of a write before the route runs (a write that
    then fails only costs its subject a few seconds of reads on the primary)."""
    if connection.scope["type"] != "http":
        return
    request = Request(connection.scope)
    writers: RecentWriters | None = getattr(request.app.state, "writers", None)
    if writers is None or not is_write(request.method, request.url.path):
        return
    if bearer_token(request) is None:
        return  # the route answers 401
    settings: Settings = request.app.state.settings
    principal = await current_principal(request, settings)
    await writers.mark(getattr(request.app.state, "redis", None), principal.key)


async def get_read_pool(
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(current_principal)],
) -> asyncpg.Pool:
    """The standby for this read when it is close enough and the subject did not just
    write; else the primary. Async: a sync dependency would take a thread per request.

    A GET (a snapshot: statistics, FHIR, open data) also gets ``Places-Feed-Position``, read
    from the same server before the route reads: see ``feed_position``."""
    pool = await _choose(request, principal)
    if request.method == "GET":
        position = await feed_position(pool, principal)
        if position:
            response.headers[FEED_POSITION_HEADER] = position
    return pool


async def _choose(request: Request, principal: Principal) -> asyncpg.Pool:
    routing: ReadRouting | None = getattr(request.app.state, "reads", None)
    if routing is None or not routing.usable:
        return request.app.state.pool
    writers: RecentWriters = request.app.state.writers
    if await writers.recent(getattr(request.app.state, "redis", None), principal.key):
        return routing.primary
    return routing.pool()


async def feed_position(pool: asyncpg.Pool, principal: Principal) -> str | None:
    """``national=<id>, <authority>=<id>``: the positions of the national feed and of the
    principal's authority's feed that a snapshot read next on ``pool`` is consistent with.

    The relay records each feed's head in ``feed_positions`` in the transaction that marks
    the events published, so a server that shows the row holds every event up to it; read
    before the route's own queries, the snapshot holds at least that much (the server only
    moves forward). A client subscribes with ``last_event_id=<id>`` and is replayed what the
    snapshot lacks — after a lagging standby's snapshot too; an event it replays that the
    snapshot already had is recognised by its version."""
    feeds = [NATIONAL, *([principal.authority] if principal.authority else [])]
    try:
        rows = await pool.fetch(
            "SELECT feed, entry_id FROM feed_positions WHERE feed = ANY($1::text[])", feeds
        )
    except asyncpg.UndefinedTableError:  # not migrated to 0022 yet
        return None
    found = {r["feed"]: r["entry_id"] for r in rows}
    return ", ".join(f"{f}={found[f]}" for f in feeds if f in found) or None


ReadPool = Annotated[asyncpg.Pool, Depends(get_read_pool)]
