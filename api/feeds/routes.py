"""The live feeds of the contract: ``WS /ws/departments/{code}`` and ``WS /ws/national``.

The handshake is always accepted, then refused with a close code, because a refusal before
``accept`` reaches the client as a bare HTTP 403 and it could not tell "log in again" (4401)
from "not yours" (4403). Nothing is subscribed before the token, the scope and
``last_event_id`` are checked.

Close codes: 4400 malformed ``last_event_id`` · 4401 missing/invalid/expired token (also
when the token expires while the feed is open: reconnect with a fresh one) · 4403
out of scope · 4404 unknown department · 4410 ``last_event_id`` older than the retained feed
(reload the snapshot, then connect without it) · 1013 too slow, or feed momentarily
unavailable (reconnect with ``last_event_id``).
"""

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, WebSocket

from api.auth import Principal, decode_token
from api.errors import DomainError
from api.settings import Settings
from realtime.bus import NATIONAL
from realtime.hub import FeedGap, FeedSettings, FeedUnavailable, Hub, parse_event_id

log = logging.getLogger("places.feeds")

router = APIRouter(tags=["live feeds"])

CLOSE_TIMEOUT = 10.0
"""A close frame waits for the client's socket to take it; a stuck client is dropped after."""
DEPARTMENTS_TTL = 60.0
MAX_FEED_SECONDS = 7 * 24 * 3600.0
"""Upper bound of a feed's life when its token would allow more (a sleep needs a bound)."""


class _RedactTokens(logging.Filter):
    """uvicorn logs every WebSocket path with its query string: never the ``access_token``."""

    _TOKEN = re.compile(r"(access_token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "access_token=" in a for a in record.args
        ):
            record.args = tuple(
                self._TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


logging.getLogger("uvicorn.error").addFilter(_RedactTokens())


def _reason(text: str) -> str:
    """A close reason is at most 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "…"


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(code, _reason(reason))


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return websocket.query_params.get("access_token") or None


def feed_settings(s: Settings) -> FeedSettings:
    """The hub's parameters from the service's settings (``PLACES_WS_*``)."""
    return FeedSettings(
        ping_seconds=s.ws_ping_seconds,
        queue_size=s.ws_queue_size,
        read_block_ms=s.ws_read_block_ms,
        batch=s.ws_batch,
        ready_timeout=s.ws_ready_timeout,
    )


def _hub(app: FastAPI) -> Hub:
    """The worker's hub, made by the app's lifespan (``api.main``) with the bus."""
    hub: Hub = app.state.feed_hub
    return hub


async def _known_department(app: FastAPI, code: str) -> bool:
    """Department codes, cached per worker and refreshed at most once a minute on a miss."""
    cached: tuple[float, frozenset[str]] | None = getattr(app.state, "feed_departments", None)
    if cached is None or (code not in cached[1] and time.monotonic() - cached[0] > DEPARTMENTS_TTL):
        rows = await app.state.pool.fetch("SELECT code FROM departments")
        cached = (time.monotonic(), frozenset(r["code"] for r in rows))
        app.state.feed_departments = cached
    return code in cached[1]


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so that its close frame is seen at once."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _serve(
    websocket: WebSocket, feed: str, allowed: Callable[[Principal], bool], scope: str
) -> None:
    await websocket.accept()
    token = _token(websocket)
    if token is None:
        await _close(websocket, 4401, "Authentification requise (Bearer ou access_token).")
        return
    try:
        principal = decode_token(token, websocket.app.state.settings)
    except DomainError as exc:
        await _close(websocket, 4401, exc.detail)
        return
    if not allowed(principal):
        await _close(websocket, 4403, f"Hors du périmètre du jeton ({scope}).")
        return
    last_event_id = websocket.query_params.get("last_event_id") or None
    if last_event_id is not None and parse_event_id(last_event_id) is None:
        await _close(websocket, 4400, "last_event_id malformé : attendu <ms>-<seq>.")
        return
    app: FastAPI = websocket.app
    if feed != NATIONAL:
        try:
            known = await _known_department(app, feed)
        except Exception:
            log.exception("department lookup failed")
            await _close(websocket, 1013, "Service momentanément indisponible, réessayez.")
            return
        if not known:
            await _close(websocket, 4404, f"Département inconnu : {feed}.")
            return

    code, reason = 1000, ""
    hub = _hub(app)
    try:
        async with hub.subscribe(feed) as sub:
            sender = asyncio.create_task(
                hub.pump(sub, websocket.send_text, last_event_id), name="feed-sender"
            )
            receiver = asyncio.create_task(_drain(websocket), name="feed-receiver")
            overflow = asyncio.create_task(sub.overflowed.wait(), name="feed-overflow")
            # A token is checked once at the handshake; the feed ends when it expires, so a
            # revoked-by-expiry session does not keep receiving events for hours.
            lifetime = min(principal.expires_at - time.time(), MAX_FEED_SECONDS)
            expiry = asyncio.create_task(asyncio.sleep(max(0.0, lifetime)), name="feed-expiry")
            tasks = {sender, receiver, overflow, expiry}
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if receiver in done:
                return  # the client left
            if overflow in done:
                code, reason = 1013, "Client trop lent : reconnectez-vous avec last_event_id."
            elif expiry in done:
                code, reason = 4401, "Jeton expiré : reconnectez-vous avec un nouveau jeton."
            elif sender in done and not sender.cancelled():
                failure = sender.exception()
                if isinstance(failure, FeedGap | FeedUnavailable):
                    raise failure
                return  # sending failed: the client is gone
    except FeedGap:
        code, reason = 4410, "Historique dépassé : rechargez l'instantané puis reconnectez."
    except FeedUnavailable:
        code, reason = 1013, "Flux momentanément indisponible : reconnectez-vous."
    log.info("feed %s: closing %d", feed, code)
    await _close(websocket, code, reason)


@router.websocket("/ws/departments/{code}")
async def department_feed(websocket: WebSocket, code: str) -> None:
    """Events of one department: its own department role, or admin."""

    def allowed(p: Principal) -> bool:
        return p.role == "admin" or (p.role == "department" and p.department == code)

    await _serve(websocket, code, allowed, f"département {code}")


@router.websocket("/ws/national")
async def national_feed(websocket: WebSocket) -> None:
    """Every department's events without child-level fields: national role, or admin."""
    await _serve(websocket, NATIONAL, lambda p: p.role in ("national", "admin"), "national")
