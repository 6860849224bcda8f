"""Every error leaves from here: named domain errors, and the one table that maps them to
RFC 9457 ``application/problem+json`` — or, under ``/fhir``, to a FHIR ``OperationOutcome``.

Services raise what went wrong in the domain's words (``NotFound``, ``Conflict``…); they
never choose a status code, and nothing outside this module builds an error response.
"""

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("places.errors")

DATABASE_RETRY_AFTER_SECONDS = 2
"""When a client whose request lost its database connection may retry: about what a primary
restart or a backend's replacement takes (chaos scenario "primary": 0.7 s)."""

PROBLEM = "application/problem+json"
FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"


class DomainError(Exception):
    """A refusal the client can act on: a plain French detail and, when relevant, the fields
    (``errors[].field``) and extra members of the problem document."""

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra

    @property
    def status(self) -> int:
        return status_of(self)


class BadRequest(DomainError):
    """The request cannot be read (bad JSON, a bad search parameter)."""


class Unauthorized(DomainError):
    """No token, or a token that does not verify."""


class Forbidden(DomainError):
    """A valid token, but out of its role or scope."""


class UnsupportedParameter(BadRequest):
    """A search parameter the service does not implement (FHIR strict handling)."""


class NotFound(DomainError):
    """The object named in the path does not exist."""


class NotAcceptable(DomainError):
    """A representation the service does not serve (FHIR ``_format``)."""


class Conflict(DomainError):
    """The state of the data refuses the change now (stale version, no free place, illegal
    transition, key in use); nothing was written."""


class TooLarge(DomainError):
    """The body is larger than the service accepts."""


class Invalid(DomainError):
    """The request is readable but breaks a rule; ``errors[].field`` names the field."""


class PreconditionRequired(DomainError):
    """A header the write needs (Idempotency-Key) is missing."""


class TooManyRequests(DomainError):
    """The subject has too many requests in flight, or has used its rate limit; the
    ``Retry-After`` header says when to come back (``api.throttle``)."""


class Unavailable(DomainError):
    """A part the answer needs is down; retry later."""


#: The one table: domain error → (HTTP status, title, FHIR ``issue.code``).
TABLE: dict[type[DomainError], tuple[int, str, str]] = {
    BadRequest: (400, "Bad Request", "invalid"),
    UnsupportedParameter: (400, "Bad Request", "not-supported"),
    Unauthorized: (401, "Unauthorized", "login"),
    Forbidden: (403, "Forbidden", "forbidden"),
    NotFound: (404, "Not Found", "not-found"),
    NotAcceptable: (406, "Not Acceptable", "not-supported"),
    Conflict: (409, "Conflict", "conflict"),
    TooLarge: (413, "Content Too Large", "too-long"),
    Invalid: (422, "Unprocessable Content", "invalid"),
    PreconditionRequired: (428, "Precondition Required", "required"),
    TooManyRequests: (429, "Too Many Requests", "throttled"),
    Unavailable: (503, "Service Unavailable", "transient"),
}
_BY_STATUS = {status: (title, code) for status, title, code in TABLE.values()}
_BY_STATUS.update(
    {
        405: ("Method Not Allowed", "not-supported"),
        415: ("Unsupported Media Type", "not-supported"),
        431: ("Request Header Fields Too Large", "too-long"),
        500: ("Internal Server Error", "exception"),
    }
)


def _row(exc: DomainError) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    return TABLE[BadRequest]


def status_of(exc: DomainError) -> int:
    return _row(exc)[0]


def field_error(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}", errors=[{"field": field, "message": message}])


class ProblemDetails(BaseModel):
    """RFC 9457 problem document, as every error of the API is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="Always about:blank: the status says it.")
    title: str = Field(..., description="The status' standard phrase.")
    status: int
    detail: str = Field(..., description="What went wrong, in French, for the user.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Per field: `{field, message}`; the field uses the request's names."
    )


def problem_body(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _BY_STATUS.get(status, ("Error", ""))[0],
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, errors, **extra),
        status_code=status,
        media_type=PROBLEM,
        headers=headers,
    )


def operation_outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def error_response(
    path: str,
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    fhir_code: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """The one builder of error answers: problem+json, or OperationOutcome under /fhir.
    Used by the handlers below and by the middlewares that refuse before routing."""
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    if path.startswith(FHIR_PREFIX + "/") or path == FHIR_PREFIX:
        code = fhir_code or _BY_STATUS.get(status, ("", "processing"))[1]
        return JSONResponse(
            operation_outcome(code, detail),
            status_code=status,
            media_type=FHIR_JSON,
            headers=headers,
        )
    return problem_response(status, detail, errors, headers, **extra)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        where, rest = parts[0], parts[1:]
        if where == "header":
            return "-".join(w.capitalize() for w in "-".join(rest).split("-")) or "header"
        return ".".join(rest) or where
    return ".".join(parts)


def _validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return error_response(
                request.url.path, 400, "Le corps de la requête n'est pas du JSON valide."
            )
        field = _field_name(err.get("loc", ()))
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "champ inconnu, refusé"
        errors.append({"field": field, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error_response(request.url.path, 422, detail or "invalid request", errors=errors)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status, _, fhir_code = _row(exc)
        return error_response(
            request.url.path, status, exc.detail, exc.errors, exc.headers, fhir_code, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return error_response(request.url.path, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.exceptions.OperatorInterventionError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(ConnectionError)
    async def _database_lost(request: Request, exc: Exception) -> JSONResponse:
        # The connection died under the request (the primary restarting or failing over, a
        # backend terminated): nothing was committed — the write's transaction died with it —
        # so the client may retry, with the same Idempotency-Key (#19, chaos "primary").
        log.warning("database connection lost on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            request.url.path,
            503,
            "La base de données est momentanément indisponible ; rien n'a été enregistré,"
            " réessayez.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
            fhir_code="transient",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The trace goes to the log (no request body, so no personal data); never to the client.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request.url.path, 500, "Erreur interne ; l'incident est journalisé.")

    app.openapi = lambda: document_problems(app)  # type: ignore[method-assign]


# Statuses any operation may answer whatever it does: a refused token, a body too large, an
# unreadable body, an internal error.
_ALWAYS = {
    "400": "The body is not valid JSON; or, as `text/plain` from the server before the app,"
    " a request line and headers larger than PLACES_MAX_HEADER_BYTES.",
    "413": "The body is larger than PLACES_MAX_BODY_BYTES.",
    "431": "The request line and headers are larger than PLACES_MAX_HEADER_BYTES (when they"
    " arrive in more than one read, the server refuses them itself: 400 `text/plain`).",
    "422": "A parameter or a body field is invalid; `errors[].field` names it.",
    "500": "Unexpected error (logged; nothing of the request is echoed).",
    "503": "The database connection was lost under the request (a restart, a failover):"
    " nothing was recorded; retry after `Retry-After` seconds, a write with the same"
    " Idempotency-Key.",
}
_AUTHENTICATED = {
    "401": "Missing, expired or invalid bearer token.",
    "403": "The token's role or scope does not allow this operation.",
}
_THROTTLED = {
    "429": "Too many requests of this person at once, or over its rate limit (searches,"
    " writes): come back after `Retry-After` seconds.",
}


def _operations(schema: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                yield path, operation


def document_problems(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with every error response of every operation described as
    problem+json (OperationOutcome under /fhir), so a schema-driven client or fuzzer finds
    each status it can meet documented with its body."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = ProblemDetails.model_json_schema()
    problem_ref = {"$ref": "#/components/schemas/ProblemDetails"}
    for path, operation in _operations(schema):
        responses = operation.setdefault("responses", {})
        fhir = path.startswith(FHIR_PREFIX)
        defaults = dict(_ALWAYS)
        if operation.get("security") or _needs_token(path):
            defaults.update(_AUTHENTICATED)
        if path.startswith("/v1/"):
            defaults.update(_THROTTLED)
        for status, description in defaults.items():
            responses.setdefault(status, {"description": description})
        for status, response in responses.items():
            if not status.isdigit() or int(status) < 400:
                continue
            media = FHIR_JSON if fhir else PROBLEM
            schema_ref: dict[str, Any] = {"type": "object"} if fhir else problem_ref
            response["content"] = {media: {"schema": schema_ref}}
            if status == "400":
                # h11 refuses an oversized head itself (``places run``: the header limit),
                # with its own plain-text body; no app code runs to make it a problem.
                response["content"]["text/plain"] = {"schema": {"type": "string"}}
    app.openapi_schema = schema
    return schema


def _needs_token(path: str) -> bool:
    """Every /v1 and FHIR operation but the capability statement takes a bearer token, and so
    does the pages' JSON API (``/ui/api/``: the same tokens as /v1)."""
    return path.startswith(("/v1", "/ui/api/")) or (
        path.startswith(FHIR_PREFIX) and path != "/fhir/metadata"
    )
