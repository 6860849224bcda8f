"""Liveness and readiness."""

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import AppSettings

router = APIRouter(tags=["health"])


FAILING_OVER = "down, within PLACES_REDIS_GRACE_SECONDS (failover)"


def _redis_down(request: Request, grace: float) -> str:
    """ "down", or still acceptable while Redis has been away less than ``grace`` seconds:
    during a Sentinel failover every instance would otherwise leave the load balancer at
    once, though writes go on through the outbox and the feeds resume afterwards."""
    now = time.monotonic()
    since = getattr(request.app.state, "redis_down_since", None)
    if since is None:
        request.app.state.redis_down_since = since = now
    return FAILING_OVER if now - since < grace else "down"


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL (and Redis when configured) answer; the standby's lag",
)
async def readyz(request: Request, settings: AppSettings) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with request.app.state.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception:  # readiness reports, it never raises
        checks["postgres"] = "down"
    redis = getattr(request.app.state, "redis", None)
    if redis is None and (settings.redis_url or settings.redis_sentinels):
        # Configured but unreachable at start: serving on the in-process bus (one worker),
        # not the configured deployment — the contract says not ready.
        checks["redis"] = "down (in-process bus in use)"
    elif redis is not None:
        try:
            async with asyncio.timeout(2):
                await redis.ping()
            checks["redis"] = "ok"
            request.app.state.redis_down_since = None
        except Exception:
            checks["redis"] = _redis_down(request, settings.redis_grace_seconds)
    ok = all(v in ("ok", FAILING_OVER) for v in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    # The standby is reported, never a reason to be unready: beyond its lag (or down), the
    # lag-tolerant reads go to the primary (api.reads).
    reads = getattr(request.app.state, "reads", None)
    if reads is not None:
        body["standby"] = reads.state()
    return JSONResponse(body, status_code=200 if ok else 503)
