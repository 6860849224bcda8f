"""Refuse oversized requests before they are read into memory: a body (413 problem+json) or
a request line and headers (431 problem+json)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class BodySizeLimit:
    """Checks Content-Length up front and counts streamed chunks for bodies without one."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            scope.get("path", ""),
            413,
            f"Corps de requête trop volumineux (maximum {self.max_bytes} octets).",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class HeaderSizeLimit:
    """The request line and headers, counted as on the wire, bounded by ``max_bytes``.

    Why here too: the server's own bound (h11's ``max_incomplete_event_size``, set by
    ``places run``) only applies to a head still arriving; a head that came in one read of
    up to 64 KiB reaches the app whole (found by the fuzz run). A WebSocket handshake over
    the bound is refused (403) before it is accepted."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or head_size(scope) <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_response(
            scope.get("path", ""),
            431,
            f"Ligne de requête et en-têtes trop volumineux (maximum {self.max_bytes} octets).",
        )
        await response(scope, receive, send)


def head_size(scope: Scope) -> int:
    """Bytes of the request line and headers as sent: ``METHOD target HTTP/1.1``, then
    ``name: value`` and CRLF for each header."""
    target = len(scope.get("raw_path") or scope.get("path", "").encode())
    query = scope.get("query_string", b"")
    size = len(scope.get("method", "GET")) + target + (len(query) + 1 if query else 0) + 11
    return size + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))
