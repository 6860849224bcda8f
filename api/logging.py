"""Structured logs: JSON lines in production, plain text locally. Never request bodies.

Every request gets an id (``RequestId``): the proxy's ``X-Request-Id`` when it is sane, else
a new one. It is returned in the response's ``X-Request-Id`` and carried by every log line
written while the request is handled (a context variable read by the handler's filter), so
that an operator can go from a user's complaint, a proxy log or a trace to the service's own
lines about it.
"""

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.tracing import tag_request

REQUEST_ID_HEADER = "X-Request-Id"
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")
"""What an incoming id may look like: a proxy's UUID, HAProxy's ``%ID``, a trace id — at
most 128 characters of a safe set (no spaces, quotes or control characters that would forge
log lines or headers). Anything else is replaced by a new id."""

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "places_request_id", default=None
)
"""The id of the request being handled by this task (None outside a request)."""


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The incoming id if it is sane, else a fresh one."""
    if value is not None and _SANE_ID.fullmatch(value):
        return value
    return new_request_id()


class RequestId:
    """ASGI middleware, outermost: sets the request's id for its task (logs) and adds it to
    the response (HTTP) or to the handshake's answer (WebSocket). The app's other layers,
    Starlette's error handler included, run inside, so a 500 carries it too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == _HEADER:
                incoming = value.decode("latin-1")
                break
        rid = accepted_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = rid
        header = (_HEADER, rid.encode("latin-1"))
        token = request_id.set(rid)
        tag_request(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (``record.request_id``, None outside a
    request); installed on the handler so that every logger's lines get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message``, with ``[request_id]`` after the logger in a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


def configure(json_lines: bool) -> None:
    """One handler on the root logger, which uvicorn's loggers propagate to as well (their
    own handlers removed), so that every line has the same shape and its request's id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
