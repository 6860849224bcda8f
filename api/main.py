"""The ASGI application: routers, error mapping, body limit, database pool, event relay."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors
from api.assignments.routes import router as assignments_router
from api.capacity.routes import router as capacity_router
from api.db import create_pool
from api.fhir.routes import install as install_fhir
from api.health import router as health_router
from api.holds import expiry as hold_expiry
from api.holds.routes import router as holds_router
from api.limits import BodySizeLimit
from api.opendata.routes import router as opendata_router
from api.registry.routes import router as registry_router
from api.requests.routes import router as requests_router
from api.search.routes import router as search_router
from api.settings import Settings, get_settings
from api.ui.routes import install as install_ui
from geo.referential import load_communes
from realtime import relay
from realtime.bus import Bus, InProcessBus, RedisBus, connect_redis
from realtime.routes import router as feeds_router

log = logging.getLogger("places")

DESCRIPTION = """
Places — national placement and orientation availability service for child protection.

Every `/v1` call needs `Authorization: Bearer <JWT>`; errors are `application/problem+json`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = await create_pool(settings.database_url)
    redis = await connect_redis(settings.redis_url)
    app.state.redis = redis
    bus: Bus
    if redis is not None:
        bus = RedisBus(redis)
        log.info("event bus: Redis Streams at %s", settings.redis_url)
    else:
        bus = InProcessBus()
        log.warning(
            "event bus: in-process (Redis %s); run a single worker",
            "not configured" if not settings.redis_url else "unreachable",
        )
    app.state.bus = bus
    # The commune referential (35,000 rows, ~0.25 s to parse) is read by the pages and the
    # declaration page's first call: load it before serving, not on a user's request.
    await asyncio.to_thread(load_communes)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(settings.database_url, bus, stop))
    expiry_task = asyncio.create_task(hold_expiry.run(app.state.pool, stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay_task, 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(expiry_task, 5)
        await bus.close()
        await app.state.pool.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Places",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health_router)
    app.include_router(registry_router)
    app.include_router(capacity_router)
    app.include_router(requests_router)
    app.include_router(holds_router)
    app.include_router(search_router)
    app.include_router(assignments_router)
    app.include_router(feeds_router)
    app.include_router(opendata_router)
    install_fhir(app)
    install_ui(app)
    return app


def app_factory() -> FastAPI:
    """uvicorn entry point (``--factory``): settings come from the environment."""
    from api.logging import configure

    configure(get_settings().log_json)
    return create_app()
