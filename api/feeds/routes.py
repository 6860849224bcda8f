"""The live feeds of the contract: ``WS /ws/authorities/{code}``, its alias
``WS /ws/departments/{code}``, and ``WS /ws/national``.

Feeds are per competent authority — who is in charge of child protection: ``69M`` (Métropole
de Lyon) and ``69D`` (Rhône) inside department 69, ``20R`` (Corse) for 2A and 2B, ``6AE``
(Alsace) for 67 and 68, every other department under its own code. An event goes to the
feed of its authority (``api.events``) and to the national feed. ``/ws/authorities/{code}``
is open to the placement services of that authority (permission ``placement``).
``/ws/departments/{code}`` is the feed of the department's authority when it has exactly one
(``13`` → ``13``, ``2A`` and ``2B`` → ``20R``, ``67`` and ``68`` → ``6AE``), with the same
scope; ``69`` has two and is refused with 4404 naming ``69M`` and ``69D``.

Resuming across the move to authorities (migration 0007): ``last_event_id`` is a position in
one stream. An authority whose code is its department's (``13``, ``75``… all but four) kept
that department's stream, so a position taken before the upgrade resumes after it, on
``/ws/departments/13`` as on ``/ws/authorities/13``. ``20R``, ``6AE``, ``69M`` and ``69D``
are new streams: a position from the former feed of 2A, 2B, 67, 68 or 69 is none of theirs,
and the client is closed with 4410, once — it reloads its snapshot, connects without
``last_event_id``, and resumes from then on with the ids of the new feed. The former stream
is checked first (a clear reason while Redis still holds it); beyond that the hub refuses
any position that is not one of the feed's own (``realtime.hub``).

The token (issue #14: never in the URL, where proxies log it): ``Authorization: Bearer`` for
clients that set headers, the subprotocol ``places.bearer.<token>`` offered beside
``places.v1`` for browsers (the server selects ``places.v1``, never echoes the token), or a
first message ``{"type": "auth", "token": "…"}`` (within ``PLACES_WS_AUTH_SECONDS``).
``?access_token=`` is accepted only with ``PLACES_WS_QUERY_TOKEN`` (old clients); otherwise it
is refused with 4401 saying how.

A browser's handshake carries ``Origin``: one that is not allowed
(``PLACES_WS_ALLOWED_ORIGINS``, default the handshake's own ``Host``) is refused before
``accept`` — a bare HTTP 403 — so a page of another site never gets an open socket. Every
other handshake is accepted, then refused with a close code, because a refusal before
``accept`` reaches the client as a bare HTTP 403 and it could not tell "log in again"
(4401) from "not yours" (4403). Nothing is subscribed before the token, the feed, the scope
and ``last_event_id`` are checked, in that order.

Close codes: 4400 malformed ``last_event_id`` · 4401 missing/invalid/expired token (also
when the token expires while the feed is open: reconnect with a fresh one) · 4403
out of scope · 4404 unknown authority or department, or a department of two authorities ·
4410 ``last_event_id`` older than the retained feed, or not one of its positions (reload the
snapshot, then connect without it) · 4429 the token's subject already has
``max_feeds_per_subject`` feeds open in this worker (close one) · 1013 too slow, or feed
momentarily unavailable (reconnect with ``last_event_id``).
"""

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
from fastapi import APIRouter, FastAPI, WebSocket

from api import changes
from api.auth import HABILITATION_HEADER, Principal, authenticate, still_valid
from api.authorities import single_department
from api.errors import DomainError
from api.settings import Settings
from realtime.bus import NATIONAL
from realtime.client import BEARER_PROTOCOL, SUBPROTOCOL
from realtime.hub import (
    FeedGap,
    FeedSettings,
    FeedUnavailable,
    Hub,
    TooManyFeeds,
    parse_event_id,
)

log = logging.getLogger("places.feeds")

router = APIRouter(tags=["live feeds"])

CLOSE_TIMEOUT = 10.0
"""A close frame waits for the client's socket to take it; a stuck client is dropped after."""
REFERENTIAL_TTL = 60.0
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


def _offered(websocket: WebSocket) -> list[str]:
    """The subprotocols the client offered (``Sec-WebSocket-Protocol``)."""
    return [
        p.strip()
        for header in websocket.headers.getlist("sec-websocket-protocol")
        for p in header.split(",")
        if p.strip()
    ]


def _without_default_port(netloc: str, scheme: str) -> str:
    default = {"http": ":80", "https": ":443", "ws": ":80", "wss": ":443"}.get(scheme, "")
    netloc = netloc.lower()
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


def origin_allowed(origin: str | None, host: str | None, allowed: str | None) -> bool:
    """Whether a handshake's ``Origin`` may open a feed. No ``Origin``: not a browser (a
    browser always sends one), allowed — its token is its credential. With
    ``PLACES_WS_ALLOWED_ORIGINS``: one of those origins; without: the page's host must be
    the host the handshake was sent to (``Host``), so another site's page cannot use a
    token its user holds here (cross-site WebSocket hijacking)."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if allowed:
        return origin in {o.strip().rstrip("/").lower() for o in allowed.split(",") if o.strip()}
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False  # "null" (a sandboxed or file: page) and the like
    return _without_default_port(parts.netloc, parts.scheme) == _without_default_port(
        host.strip(), parts.scheme
    )


def _handshake_token(websocket: WebSocket, settings: Settings) -> tuple[str | None, str | None]:
    """The token the handshake carries, or why it is refused: ``Authorization: Bearer``
    (non-browser clients), the subprotocol ``places.bearer.<token>`` (browsers: headers
    are not theirs to set), or — only with ``PLACES_WS_QUERY_TOKEN`` — ``?access_token=``.
    ``(None, None)``: none; the client may still send it in its first message."""
    header = websocket.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), None
        return None, "En-tête Authorization : attendu « Bearer <jeton> »."
    for protocol in _offered(websocket):
        if protocol.startswith(BEARER_PROTOCOL) and len(protocol) > len(BEARER_PROTOCOL):
            return protocol[len(BEARER_PROTOCOL) :], None
    query = websocket.query_params.get("access_token")
    if query:
        if settings.ws_query_token:
            return query, None
        return None, (
            "Jeton dans l'URL refusé : envoyez-le en sous-protocole "
            f"{BEARER_PROTOCOL}<jeton> (avec {SUBPROTOCOL}) ou en premier message."
        )
    return None, None


async def _first_message_token(websocket: WebSocket, seconds: float) -> str | None:
    """``{"type": "auth", "token": "…"}`` as the client's first message, within ``seconds``
    (``PLACES_WS_AUTH_SECONDS``); None when it is not that (or does not come)."""
    try:
        async with asyncio.timeout(seconds):
            message = await websocket.receive()
    except TimeoutError:
        return None
    text = message.get("text")
    if message["type"] != "websocket.receive" or not text:
        return None
    with contextlib.suppress(ValueError):
        body = json.loads(text)
        if isinstance(body, dict) and body.get("type") == "auth":
            value = body.get("token")
            return value if isinstance(value, str) and value else None
    return None


def feed_settings(s: Settings) -> FeedSettings:
    """The hub's parameters from the service's settings (``PLACES_WS_*``)."""
    return FeedSettings(
        ping_seconds=s.ws_ping_seconds,
        queue_size=s.ws_queue_size,
        read_block_ms=s.ws_read_block_ms,
        batch=s.ws_batch,
        ready_timeout=s.ws_ready_timeout,
        max_per_subject=s.max_feeds_per_subject,
    )


def _hub(app: FastAPI) -> Hub:
    """The worker's hub, made by the app's lifespan (``api.main``) with the bus."""
    hub: Hub = app.state.feed_hub
    return hub


class _Refused(Exception):
    """The feed cannot be opened: close with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class _Referential:
    """Departments and authorities as the database has them (read at ``at``)."""

    at: float
    departments: frozenset[str]
    authorities: dict[str, tuple[str, ...]]
    """Authority code → its departments."""

    def authorities_of(self, department: str) -> list[str]:
        return sorted(a for a, ds in self.authorities.items() if department in ds)


async def _referential(app: FastAPI, code: str) -> _Referential:
    """Cached per worker and refreshed at most once a minute on a miss of ``code``."""
    cached: _Referential | None = getattr(app.state, "feed_referential", None)
    if cached is None or (
        code not in cached.departments
        and code not in cached.authorities
        and time.monotonic() - cached.at > REFERENTIAL_TTL
    ):
        async with app.state.pool.acquire() as conn:
            departments = await conn.fetch("SELECT code FROM departments")
            authorities = await conn.fetch("SELECT code, departments FROM authorities")
        cached = _Referential(
            time.monotonic(),
            frozenset(r["code"] for r in departments),
            {r["code"]: tuple(r["departments"]) for r in authorities},
        )
        app.state.feed_referential = cached
    return cached


def _authority_allowed(principal: Principal, authority: str) -> bool:
    return principal.may("placement") and principal.authority == authority


@dataclass(frozen=True, slots=True)
class _Feed:
    """A resolved feed: the stream it reads, and the former department streams whose
    positions are not its own (see the module's docstring)."""

    name: str
    former: tuple[str, ...] = ()


def _authority_feed(referential: _Referential, authority: str) -> _Feed:
    departments = referential.authorities[authority]
    return _Feed(authority, tuple(d for d in departments if d != authority))


async def _by_authority(app: FastAPI, code: str) -> _Feed:
    referential = await _referential(app, code)
    if code not in referential.authorities:
        raise _Refused(4404, f"Autorité inconnue : {code}.")
    return _authority_feed(referential, code)


async def _by_department(app: FastAPI, code: str) -> _Feed:
    referential = await _referential(app, code)
    if code not in referential.departments:
        raise _Refused(4404, f"Département inconnu : {code}.")
    authorities = referential.authorities_of(code)
    if len(authorities) != 1:
        raise _Refused(
            4404,
            f"Département {code} partagé entre "
            + " et ".join(authorities)
            + " : ouvrez /ws/authorities/"
            + " ou /ws/authorities/".join(authorities)
            + ".",
        )
    return _authority_feed(referential, authorities[0])


async def _revoked(app: FastAPI, principal: Principal) -> str:
    """Returns (the reason) once the principal's habilitation is revoked or the person signed
    out everywhere; checked every ``PLACES_HABILITATION_RECHECK_SECONDS`` from the worker's
    cache (which NOTIFY empties), a failed check counting as none (the next one retries)."""
    period = app.state.settings.habilitation_recheck_seconds
    while True:
        await asyncio.sleep(period)
        try:
            reason = await still_valid(principal, app.state.directory)
        except (OSError, asyncpg.PostgresError):
            continue
        if reason is not None:
            return reason


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so that its close frame is seen at once."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _former_position(hub: Hub, feed: _Feed, last_event_id: str) -> str | None:
    """The former department stream ``last_event_id`` is an entry of, if any."""
    for department in feed.former:
        if await hub.holds(department, last_event_id):
            return department
    return None


async def _audit_subscription(
    app: FastAPI, principal: Principal, websocket: WebSocket, feed: str, last_event_id: str | None
) -> None:
    """``feed.subscribe``, once per accepted subscription, committed before any event is
    sent: the feed's authority (none for the national feed) sees who followed its data."""
    authority = None if feed == NATIONAL else feed
    async with app.state.pool.acquire() as conn:
        await changes.audit(
            conn,
            principal,
            "feed.subscribe",
            "feed",
            feed,
            single_department(authority),
            {"path": websocket.url.path, "last_event_id": last_event_id},
            authority=authority,
        )


async def _serve(
    websocket: WebSocket,
    resolve: Callable[[FastAPI], Awaitable[_Feed]],
    allowed: Callable[[Principal, str], bool],
) -> None:
    settings: Settings = websocket.app.state.settings
    if not origin_allowed(
        websocket.headers.get("origin"), websocket.headers.get("host"), settings.ws_allowed_origins
    ):
        # Before accept: the browser's page gets a bare 403 and never an open socket.
        log.info("feed %s: Origin %r refused", websocket.url.path, websocket.headers.get("origin"))
        await websocket.close(1008)
        return
    offered = _offered(websocket)
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    token, refusal = _handshake_token(websocket, settings)
    if refusal is not None:
        await _close(websocket, 4401, refusal)
        return
    if token is None:
        token = await _first_message_token(websocket, settings.ws_auth_seconds)
    if token is None:
        await _close(
            websocket,
            4401,
            f"Authentification requise : sous-protocole {BEARER_PROTOCOL}<jeton>, en-tête"
            ' Bearer ou premier message {"type":"auth","token":…}.',
        )
        return
    try:
        principal = await authenticate(
            token,
            websocket.app.state.settings,
            websocket.app.state.directory,
            websocket.headers.get(HABILITATION_HEADER)
            or websocket.query_params.get("habilitation"),
        )
    except DomainError as exc:
        await _close(websocket, 4401 if exc.status == 401 else 4403, exc.detail)
        return
    except (OSError, asyncpg.PostgresError):
        log.exception("feed: person lookup failed")
        await _close(websocket, 1013, "Service momentanément indisponible, réessayez.")
        return
    app: FastAPI = websocket.app
    try:
        target = await resolve(app)
    except _Refused as refused:
        await _close(websocket, refused.code, refused.reason)
        return
    except Exception:
        log.exception("feed lookup failed")
        await _close(websocket, 1013, "Service momentanément indisponible, réessayez.")
        return
    feed = target.name
    if not allowed(principal, feed):
        scope = NATIONAL if feed == NATIONAL else f"autorité {feed}"
        await _close(websocket, 4403, f"Hors du périmètre du jeton ({scope}).")
        return
    last_event_id = websocket.query_params.get("last_event_id") or None
    if last_event_id is not None and parse_event_id(last_event_id) is None:
        await _close(websocket, 4400, "last_event_id malformé : attendu <ms>-<seq>.")
        return

    code, reason = 1000, ""
    hub = _hub(app)
    try:
        if last_event_id is not None and target.former:
            former = await _former_position(hub, target, last_event_id)
            if former is not None:
                log.info("feed %s: position of the former feed %s, closing 4410", feed, former)
                await _close(
                    websocket,
                    4410,
                    f"Position de l'ancien flux {former} : rechargez l'instantané puis"
                    f" reconnectez sans last_event_id ({feed}).",
                )
                return
        if not hub.has_room(principal.key):  # before the audit: a refusal subscribes nothing
            raise TooManyFeeds(principal.key)
        await _audit_subscription(app, principal, websocket, feed, last_event_id)
        async with hub.subscribe(feed, principal.key) as sub:
            sender = asyncio.create_task(
                hub.pump(sub, websocket.send_text, last_event_id), name="feed-sender"
            )
            receiver = asyncio.create_task(_drain(websocket), name="feed-receiver")
            overflow = asyncio.create_task(sub.overflowed.wait(), name="feed-overflow")
            # A token is checked once at the handshake; the feed ends when it expires, so a
            # revoked-by-expiry session does not keep receiving events for hours.
            lifetime = min(principal.expires_at - time.time(), MAX_FEED_SECONDS)
            expiry = asyncio.create_task(asyncio.sleep(max(0.0, lifetime)), name="feed-expiry")
            # Revocation and sign-out everywhere close the feed at the next check.
            revoked = asyncio.create_task(_revoked(app, principal), name="feed-revocation")
            tasks = {sender, receiver, overflow, expiry, revoked}
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
            elif revoked in done and not revoked.cancelled() and revoked.exception() is None:
                code, reason = 4401, revoked.result()
            elif sender in done and not sender.cancelled():
                failure = sender.exception()
                if isinstance(failure, FeedGap | FeedUnavailable):
                    raise failure
                return  # sending failed: the client is gone
    except FeedGap:
        code, reason = 4410, "Historique dépassé : rechargez l'instantané puis reconnectez."
    except FeedUnavailable:
        code, reason = 1013, "Flux momentanément indisponible : reconnectez-vous."
    except TooManyFeeds:
        cap = hub.settings.max_per_subject
        code, reason = 4429, f"Trop de flux ouverts pour ce compte (au plus {cap})."
    except (OSError, asyncpg.PostgresError):
        # No trail, no feed: the subscription could not be audited.
        log.exception("feed %s: subscription audit failed", feed)
        code, reason = 1013, "Service momentanément indisponible, réessayez."
    log.info("feed %s: closing %d", feed, code)
    await _close(websocket, code, reason)


@router.websocket("/ws/authorities/{code}")
async def authority_feed(websocket: WebSocket, code: str) -> None:
    """Events of one competent authority: its own placement services (``placement``)."""
    await _serve(websocket, lambda app: _by_authority(app, code), _authority_allowed)


@router.websocket("/ws/departments/{code}")
async def department_feed(websocket: WebSocket, code: str) -> None:
    """The feed of the department's authority when it has exactly one (an alias of
    ``/ws/authorities/{authority}``); 4404 for 69, shared by 69M and 69D."""
    await _serve(websocket, lambda app: _by_department(app, code), _authority_allowed)


async def _national(app: FastAPI) -> _Feed:
    return _Feed(NATIONAL)


@router.websocket("/ws/national")
async def national_feed(websocket: WebSocket) -> None:
    """Every authority's events without child-level fields (``feed.national``)."""
    await _serve(websocket, _national, lambda p, _feed: p.may("feed.national"))
