"""Control characters are refused at the door, for every route: one validator.

PostgreSQL refuses a NUL in text (it used to surface as a 500 from any string field: a
reason, a unit's name, ``/v1/audit?object_id=``…), and no field of Places has a use for
the C0 control characters or DEL. The request target (path and query) may contain none;
a JSON body may contain none but tab, line feed and carriage return (free-text reasons
span lines). The refusal is a 422 problem+json naming the parameter or the body field,
and nothing is read further, so nothing is written.
"""

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

_IN_TARGET = re.compile(r"[\x00-\x1f\x7f]")
_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A JSON body can only carry a control character escaped (raw ones are invalid JSON, which
# the app answers 400): look for the escape first, parse only then.
_ESCAPED = re.compile(rb"\\u00[01][0-9a-fA-F]|\\u007[fF]")


def control_character_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first string (key or value) in ``value`` holding a control
    character other than tab, line feed and carriage return; None if there is none."""
    for where, text in _strings(value, path):
        if _IN_TEXT.search(text):
            return ".".join(where) or "body"
    return None


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, str(key)), str(key)
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, str(index)))


def _target_field(scope: Scope) -> str | None:
    """The query parameter (or ``path``) whose decoded value holds a control character."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    if _IN_TARGET.search(unquote(raw_path.decode("latin-1"))):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if _IN_TARGET.search(name) or _IN_TARGET.search(value):
            return name if not _IN_TARGET.search(name) else "query"
    return None


class ControlCharacters:
    """ASGI middleware: 422 for a control character in the target or a JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = _target_field(scope)
        if field is not None:
            await _refuse(field, scope, receive, send)
            return
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        # Read the (size-limited, see BodySizeLimit) body, check it, then hand it on.
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _ESCAPED.search(body):
            try:
                field = control_character_field(orjson.loads(body))
            except orjson.JSONDecodeError:
                field = None  # not JSON: the route answers it
            if field is not None:
                await _refuse(field, scope, receive, send)
                return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """The messages already read, then the client's own (a disconnect, when it comes)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


async def _refuse(field: str, scope: Scope, receive: Receive, send: Send) -> None:
    message = "caractère de contrôle refusé (NUL, U+0001–U+001F, DEL)"
    response = error_response(
        scope.get("path", ""),
        422,
        f"{field}: {message}.",
        errors=[{"field": field, "message": message}],
    )
    await response(scope, receive, send)
