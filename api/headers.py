"""Response headers every answer carries (issue #14, "Safe by default").

- ``Strict-Transport-Security`` on every response (``PLACES_HSTS_SECONDS``; 0: none);
- ``X-Content-Type-Options: nosniff`` on every response;
- ``Cache-Control: no-store`` on the API's answers (``/v1``, ``/fhir``) and on every error
  answer (status ≥ 400), replacing whatever the response said: they carry personal or
  scoped data that no shared or browser cache should keep. Pages keep their own
  ``no-cache`` and static files stay cacheable.

Installed outermost (``api.main``), so that the refusals of the other middlewares and the
500s of Starlette's own error middleware carry them too.
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE_PREFIXES = ("/v1", "/fhir")


def _no_store_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in NO_STORE_PREFIXES)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts_seconds: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api_path = _no_store_path(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if self.hsts is not None:
                    headers["Strict-Transport-Security"] = self.hsts
                headers["X-Content-Type-Options"] = "nosniff"
                if api_path or message["status"] >= 400:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
