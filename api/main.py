"""The ASGI application: routers, error mapping, body limit, and what lives as long as it
(database pool, event bus, feed hub, outbox relay, hold expiry), opened at start-up and all
closed at shutdown.

``create_app`` takes its ``Settings``; only ``app_factory`` (uvicorn's entry point) reads
them from the environment.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware

from api import errors
from api.agrements.routes import router as agrements_router
from api.assignments.routes import router as assignments_router
from api.audit import service as audit_seals
from api.capacity.routes import router as capacity_router
from api.changes import CHANNEL as OUTBOX_CHANNEL
from api.db import ReadRouting, create_pool, init_connection
from api.docs import install as install_docs
from api.feeds.routes import feed_settings
from api.feeds.routes import router as feeds_router
from api.fhir.routes import install as install_fhir
from api.headers import SecurityHeaders
from api.health import router as health_router
from api.holds import expiry as hold_expiry
from api.holds.routes import router as holds_router
from api.hostile import ControlCharacters
from api.limits import BodySizeLimit, HeaderSizeLimit
from api.logging import RequestId
from api.metrics import HttpMetrics
from api.metrics import router as metrics_router
from api.metrics import run as refresh_metrics
from api.opendata.routes import router as opendata_router
from api.persons.directory import Directory
from api.persons.routes import router as persons_router
from api.reads import RecentWriters, track_writes
from api.registry.routes import router as registry_router
from api.requests.routes import router as requests_router
from api.search.routes import router as search_router
from api.settings import Settings, get_settings
from api.throttle import Limiter, guard
from api.tracing import instrumented, telemetry, tracer_provider
from api.ui.routes import install as install_ui
from api.ui.signin import check_dev_signin
from geo.referential import load_communes
from realtime import relay
from realtime.bus import Bus, InProcessBus, RedisBus, connect_redis, connect_sentinel
from realtime.hub import Hub

log = logging.getLogger("places")

DESCRIPTION = """
Places — national placement and orientation availability service for child protection.

Every `/v1` call needs `Authorization: Bearer <JWT>`; errors are `application/problem+json`.
"""


async def _open_bus(settings: Settings) -> tuple[aioredis.Redis | None, Bus]:
    """Redis Streams when Redis answers, else the in-process bus (one worker only)."""
    if settings.redis_sentinels:
        found = await connect_sentinel(settings.redis_sentinels, settings.redis_master_name)
        if found is not None:
            sentinel, master = found
            log.info(
                "event bus: Redis Streams, master %r through Sentinels %s",
                settings.redis_master_name,
                settings.redis_sentinels,
            )
            return master, RedisBus(master, sentinel=(sentinel, settings.redis_master_name))
    else:
        redis = await connect_redis(settings.redis_url)
        if redis is not None:
            log.info("event bus: Redis Streams at %s", settings.redis_url)
            return redis, RedisBus(redis)
    log.warning(
        "event bus: in-process (Redis %s); run a single worker",
        "not configured" if not (settings.redis_url or settings.redis_sentinels) else "unreachable",
    )
    return None, InProcessBus()


async def _stop(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    """Ask the background loops to stop and give each a few seconds to finish."""
    stop.set()
    for task in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


async def _warn_if_audit_writable(pool: asyncpg.Pool) -> None:
    """Say it loudly when the service connects as a role that may rewrite the audit (the
    schema's owner, a superuser): the trail is then only as safe as the code."""
    if await pool.fetchval(
        "SELECT CASE WHEN to_regclass('audit_entries') IS NULL THEN false"
        " ELSE has_table_privilege('audit_entries', 'UPDATE') END"
    ):
        log.warning(
            "the database role of PLACES_DATABASE_URL can UPDATE the audit: connect as"
            " places_app (README, Settings)"
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the app's resources in order; close them in reverse, whatever fails (exit stack):
    the background loops, then the feed hub (its readers and their Redis pool), the bus (the
    Redis client and its pool), the database pool."""
    settings: Settings = app.state.settings
    async with contextlib.AsyncExitStack() as resources:
        app.state.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        resources.push_async_callback(app.state.pool.close)
        resources.enter_context(instrumented(app))  # asyncpg's spans, when tracing is on
        # The hot standby for lag-tolerant reads (api.reads): connected lazily (min_size 0),
        # so that a standby that is down at start-up only sends the reads to the primary.
        standby = None
        if settings.database_read_url:
            standby = await create_pool(
                settings.database_read_url, min_size=0, max_size=settings.db_pool_max
            )
            resources.push_async_callback(standby.close)
        app.state.reads = ReadRouting(app.state.pool, standby, settings.read_max_lag_seconds)
        app.state.writers = RecentWriters(settings.read_max_lag_seconds + 1.0)
        # Who each token's person is and what they may do (revocations via LISTEN/NOTIFY).
        app.state.directory = Directory(app.state.pool, settings.database_url)
        app.state.redis, bus = await _open_bus(settings)
        resources.push_async_callback(bus.close)
        app.state.bus = bus
        app.state.limiter = Limiter(app.state.redis, settings)
        app.state.feed_hub = Hub(bus, feed_settings(settings))
        resources.push_async_callback(app.state.feed_hub.close)
        # The commune referential (35,000 rows, ~0.25 s to parse) is read by the pages and the
        # declaration page's first call: load it before serving, not on a user's request.
        await asyncio.to_thread(load_communes)
        stop = asyncio.Event()
        relay_task = asyncio.create_task(
            relay.run(
                settings.database_url,
                bus,
                stop,
                channel=OUTBOX_CHANNEL,
                init_connection=init_connection,
                recheck_seconds=settings.relay_recheck_seconds,
            )
        )
        expiry_task = asyncio.create_task(hold_expiry.run(app.state.pool, stop))
        persons_task = asyncio.create_task(app.state.directory.run(stop))
        tasks = [relay_task, expiry_task, persons_task]
        tasks.append(asyncio.create_task(refresh_metrics(app, stop)))  # this worker's gauges
        if standby is not None:
            tasks.append(asyncio.create_task(app.state.reads.watch(stop)))
        if settings.audit_seal_interval_seconds > 0:
            tasks.append(
                asyncio.create_task(
                    audit_seals.run(app.state.pool, stop, settings.audit_seal_interval_seconds)
                )
            )
        resources.push_async_callback(_stop, stop, *tasks)
        await _warn_if_audit_writable(app.state.pool)
        yield


def create_app(settings: Settings) -> FastAPI:
    check_dev_signin(settings)  # a production configuration never serves the dev sign-in
    provider = tracer_provider(settings)  # None unless PLACES_OTEL_ENABLED
    app = FastAPI(
        title="Places",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs and /redoc from packaged assets
        redoc_url=None,
        # Per-subject concurrency and rate limits on /v1 (api.throttle), before the route.
        dependencies=[Depends(guard), Depends(track_writes)],
        telemetry=telemetry(provider),
    )
    app.state.settings = settings
    app.state.tracer_provider = provider
    errors.install(app)
    # Outermost last: the body's size is bounded before its characters are checked.
    # Innermost, responses are gzipped (HTML, JSON, CSS, JS: the pages on a slow phone).
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.add_middleware(ControlCharacters)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeaderSizeLimit, max_bytes=settings.max_header_bytes)
    # The response headers wrap everything, Starlette's own error middleware included (it is
    # outside the added middlewares), so that every refusal and every 500 carries them; the
    # request's id (api.logging) and its timing (api.metrics) wrap those in turn.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestId(  # type: ignore[method-assign]
        HttpMetrics(SecurityHeaders(build_stack(), hsts_seconds=settings.hsts_seconds))
    )
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(registry_router)
    app.include_router(capacity_router)
    app.include_router(requests_router)
    app.include_router(holds_router)
    app.include_router(agrements_router)
    app.include_router(search_router)
    app.include_router(assignments_router)
    app.include_router(feeds_router)
    app.include_router(opendata_router)
    app.include_router(persons_router)
    install_fhir(app)
    install_ui(app)
    install_docs(app)
    return app


def app_factory() -> FastAPI:
    """uvicorn entry point (``--factory``): the one place the app's settings are read from
    the environment."""
    from api.logging import configure

    settings = get_settings()
    configure(settings.log_json)
    return create_app(settings)
