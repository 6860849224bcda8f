"""Prometheus metrics: ``GET /metrics``, for the platform operator only (``metrics.read``).

Several uvicorn workers serve one port (``PLACES_WORKERS``) and a scrape reaches any one of
them, so what each figure means decides where it comes from:

- **What happens in a worker** (request latencies per route template, declarations, holds,
  searches; and that worker's feed clients, queue depths, database pool) is counted by the
  worker in prometheus_client's *multiprocess mode*: each worker writes its values to files
  in ``PROMETHEUS_MULTIPROC_DIR`` (``places run`` makes a fresh folder per run unless one is
  given) and the worker that answers a scrape adds up every worker's files. Counters keep
  the values of workers that died (they never go back while the service runs); gauges of the
  workers' state (``live*`` modes) count only workers alive, each refreshing its values every
  few seconds and at the scrape it answers. Without that variable (an app built in-process,
  the tests) the process's own registry is served.
- **What is true of the whole deployment** (the outbox's backlog and the age of its oldest
  unpublished event, the relay's lag, the standby's lag, whether PostgreSQL and Redis
  answer) is computed at scrape time from PostgreSQL and Redis themselves, so any worker of
  any instance answers the same, and nothing has to be kept in step between processes.

Route labels are the routes' templates (``/v1/units/{unit_id}/capacity``), never raw paths,
so that ids do not make a series each; a request no route matched is ``unmatched``.
"""

import asyncio
import contextlib
import glob
import logging
import math
import os
import re
import time
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import require

log = logging.getLogger("places.metrics")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_SECONDS = 5.0
"""How often each worker writes its feed and pool gauges (and at each scrape it answers)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
"""Around the contract's targets (search p95 < 200 ms, writes well under 100 ms)."""

REQUEST_SECONDS = Histogram(
    "places_http_request_duration_seconds",
    "Time from a request's arrival to its response's last byte, per method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "places_http_requests",
    "HTTP requests answered, per method, route template and status code.",
    ["method", "route", "status"],
)
DECLARATIONS = Counter(
    "places_declarations",
    "Capacity declarations accepted (2xx): a unit's capacity or a carer's availability.",
    ["kind"],
)
HOLDS = Counter(
    "places_holds",
    "Hold actions accepted (2xx): placed, admitted, released, refused (expiries are not"
    " requests and are not counted).",
    ["action"],
)
SEARCHES = Counter("places_searches", "Searches answered (2xx).")

WORKERS = Gauge("places_workers", "Workers alive and serving.", multiprocess_mode="livesum")
FEED_CLIENTS = Gauge(
    "places_feed_clients", "Live-feed clients connected.", multiprocess_mode="livesum"
)
FEED_READERS = Gauge(
    "places_feed_readers",
    "Feeds read (one reader per feed with clients, per worker).",
    multiprocess_mode="livesum",
)
FEED_QUEUED = Gauge(
    "places_feed_queued_events",
    "Events waiting in the live-feed clients' queues, all clients together.",
    multiprocess_mode="livesum",
)
FEED_QUEUE_DEPTH_MAX = Gauge(
    "places_feed_queue_depth_max",
    "Events waiting in the fullest client queue (the client is closed, 1013, when it reaches"
    " places_feed_queue_capacity).",
    multiprocess_mode="livemax",
)
FEED_QUEUE_CAPACITY = Gauge(
    "places_feed_queue_capacity",
    "Size of a client's queue (PLACES_WS_QUEUE_SIZE).",
    multiprocess_mode="livemax",
)
DB_POOL_SIZE = Gauge(
    "places_db_pool_connections",
    "Connections open in the workers' database pools.",
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "places_db_pool_in_use",
    "Pool connections lent to a request or a background task.",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "places_db_pool_max",
    "Most connections the workers' pools may open (PLACES_DB_POOL_MAX per worker).",
    multiprocess_mode="livesum",
)

BUSINESS: dict[tuple[str, str], tuple[Counter, dict[str, str]]] = {
    ("PUT", "/v1/units/{unit_id}/capacity"): (DECLARATIONS, {"kind": "unit"}),
    ("PUT", "/v1/foster-carers/{carer_id}/availability"): (DECLARATIONS, {"kind": "carer"}),
    ("POST", "/v1/holds"): (HOLDS, {"action": "placed"}),
    ("POST", "/v1/holds/{hold_id}/admit"): (HOLDS, {"action": "admitted"}),
    ("POST", "/v1/holds/{hold_id}/release"): (HOLDS, {"action": "released"}),
    ("POST", "/v1/holds/{hold_id}/refuse"): (HOLDS, {"action": "refused"}),
    ("POST", "/v1/search"): (SEARCHES, {}),
}
"""The domain's counters, by the route that does the thing: counted once answered 2xx
(an idempotent replay of a declaration counts again: it was answered again)."""

UNMATCHED = "unmatched"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request (set by the router in the scope),
    ``unmatched`` when none did (404, or refused by a middleware before routing)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpMetrics:
    """ASGI middleware: times every HTTP request and counts its answer. Outside the app's
    middlewares, so that refusals of a body or header too large are counted too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = scope["method"]
            route = route_template(scope)
            REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - start)
            REQUESTS.labels(method, route, str(status)).inc()
            counted = BUSINESS.get((method, route))
            if counted is not None and 200 <= status < 300:
                counter, labels = counted
                (counter.labels(**labels) if labels else counter).inc()


def refresh_worker_gauges(app: FastAPI) -> None:
    """This worker's feed and pool figures, as they are now."""
    WORKERS.set(1)
    pool: asyncpg.Pool | None = getattr(app.state, "pool", None)
    if pool is not None:
        size = pool.get_size()
        DB_POOL_SIZE.set(size)
        DB_POOL_IN_USE.set(size - pool.get_idle_size())
        DB_POOL_MAX.set(pool.get_max_size())
    hub = getattr(app.state, "feed_hub", None)
    if hub is not None:
        depths = [sub.queue.qsize() for r in hub.readers.values() for sub in r.subscribers]
        FEED_CLIENTS.set(len(depths))
        FEED_READERS.set(len(hub.readers))
        FEED_QUEUED.set(sum(depths))
        FEED_QUEUE_DEPTH_MAX.set(max(depths, default=0))
        FEED_QUEUE_CAPACITY.set(hub.settings.queue_size)


async def run(app: FastAPI, stop: asyncio.Event) -> None:
    """Refresh this worker's gauges until ``stop``; then withdraw them (``live*`` gauges of
    a stopped worker no longer count)."""
    try:
        while not stop.is_set():
            refresh_worker_gauges(app)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
    finally:
        path = multiprocess_dir()
        if path is not None:
            prometheus_multiprocess.mark_process_dead(os.getpid(), path)


_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def _forget_dead_workers(path: str) -> None:
    """Withdraw the ``live*`` gauges of workers that died without stopping (kill -9: uvicorn
    starts another in its place), so that they do not count forever."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        m = _LIVE_FILE.fullmatch(os.path.basename(name))
        if m is None:
            continue
        pid = int(m[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            prometheus_multiprocess.mark_process_dead(pid, path)
        except PermissionError:  # alive, another user's
            pass


def _workers_exposition() -> bytes:
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    _forget_dead_workers(path)
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


OUTBOX_SQL = """
SELECT (SELECT count(*) FROM outbox_events WHERE published_at IS NULL) AS backlog,
       (SELECT extract(epoch FROM now() - min(occurred_at))
          FROM outbox_events WHERE published_at IS NULL) AS oldest_age,
       last.published_at, last.lag
  FROM (SELECT 1) AS one
  LEFT JOIN LATERAL (
        SELECT extract(epoch FROM published_at) AS published_at,
               extract(epoch FROM published_at - occurred_at) AS lag
          FROM outbox_events
         WHERE published_at IS NOT NULL
         ORDER BY id DESC
         LIMIT 1
       ) AS last ON true
"""
"""The relay publishes in id order, so the published event of highest id is the last one
published; its delay from commit to publication is the relay's current lag."""

STANDBY_LAG_SQL = """
SELECT CASE
         WHEN NOT pg_is_in_recovery() THEN 0
         WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
         ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
       END
"""
"""Seconds the standby's replay is behind: 0 when it replayed all it received (an idle
primary writes nothing, and the last replayed transaction's age would otherwise grow)."""


async def outbox_figures(conn: asyncpg.Connection) -> dict[str, float]:
    row = await conn.fetchrow(OUTBOX_SQL)
    assert row is not None

    def number(value: Any) -> float:
        return math.nan if value is None else float(value)

    return {
        "backlog": float(row["backlog"]),
        "oldest_age": float(row["oldest_age"] or 0.0),
        "last_published": number(row["published_at"]),
        "relay_lag": number(row["lag"]),
    }


def read_url(app: FastAPI) -> str | None:
    """The standby's DSN (``PLACES_DATABASE_READ_URL``), when this deployment has one."""
    value = getattr(app.state.settings, "database_read_url", None)
    return str(value) if value else None


async def standby_lag(dsn: str) -> float:
    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        return float(await conn.fetchval(STANDBY_LAG_SQL, timeout=2))
    finally:
        await conn.close()


async def _deployment_exposition(app: FastAPI) -> bytes:
    """The figures of the whole deployment, read now from PostgreSQL and Redis."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float, **labels: str) -> None:
        g = Gauge(name, doc, list(labels), registry=registry)
        (g.labels(**labels) if labels else g).set(value)

    up = Gauge(
        "places_dependency_up",
        "Whether a dependency answered this scrape (postgres, redis, standby).",
        ["dependency"],
        registry=registry,
    )
    figures = {"backlog": math.nan, "oldest_age": math.nan}
    figures |= {"last_published": math.nan, "relay_lag": math.nan}
    try:
        async with asyncio.timeout(2):
            async with app.state.pool.acquire() as conn:
                figures = await outbox_figures(conn)
        up.labels("postgres").set(1)
    except Exception as exc:  # a scrape reports, it never fails
        log.warning("metrics: outbox figures unavailable: %s", type(exc).__name__)
        up.labels("postgres").set(0)
    redis = getattr(app.state, "redis", None)
    if redis is not None or app.state.settings.redis_url:
        try:
            if redis is None:
                raise ConnectionError("in-process bus in use")
            async with asyncio.timeout(2):
                await redis.ping()
            up.labels("redis").set(1)
        except Exception:
            up.labels("redis").set(0)
    gauge(
        "places_outbox_backlog_events",
        "Outbox events committed and not yet published to the feeds.",
        figures["backlog"],
    )
    gauge(
        "places_outbox_oldest_unpublished_age_seconds",
        "Age of the oldest unpublished outbox event (0 when none waits).",
        figures["oldest_age"],
    )
    gauge(
        "places_outbox_last_published_timestamp_seconds",
        "When the relay last published (Unix time; NaN before any event).",
        figures["last_published"],
    )
    gauge(
        "places_relay_lag_seconds",
        "Delay from commit to publication of the last event the relay published.",
        figures["relay_lag"],
    )
    lag = math.nan
    dsn = read_url(app)
    if dsn is not None:
        try:
            lag = await standby_lag(dsn)
            up.labels("standby").set(1)
        except Exception:
            up.labels("standby").set(0)
    gauge(
        "places_standby_lag_seconds",
        "How far the read standby's replay is behind the primary (NaN without"
        " PLACES_DATABASE_READ_URL, or when it does not answer).",
        lag,
    )
    return generate_latest(registry)


async def exposition(app: FastAPI) -> bytes:
    refresh_worker_gauges(app)
    workers = await asyncio.to_thread(_workers_exposition)
    return workers + await _deployment_exposition(app)


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (platform operator: `metrics.read`)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4."},
        401: {"description": "Missing, expired or invalid bearer token."},
        403: {"description": "Only the platform operator (`metrics.read`) reads the metrics."},
    },
    dependencies=[Depends(require("metrics.read"))],
)
async def metrics(request: Request) -> Response:
    # The text format every Prometheus parses (what generate_latest writes).
    return Response(await exposition(request.app), media_type=CONTENT_TYPE_PLAIN_0_0_4)
