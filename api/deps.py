"""Shared FastAPI dependencies: the request's pool and the application's settings.

Code behind a route reaches the configuration through ``AppSettings`` (the ``Settings`` the
app was created with), never through the process-wide ``get_settings()``, so that an app
built by a test with its own settings behaves by them.
"""

from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Query, Request

from api.authorities import AUTHORITY_MAX_LENGTH, DEPARTMENT_PATTERN, resolve_authority
from api.changes import Idempotency
from api.errors import Invalid, PreconditionRequired, field_error
from api.settings import Settings


async def get_pool(request: Request) -> asyncpg.Pool:
    """Async on purpose: a sync dependency would run in the threadpool on every request."""
    return request.app.state.pool


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]

MAX_IDEMPOTENCY_KEY_LENGTH = 200


async def authority_filter(
    authority: Annotated[
        str | None,
        Query(
            max_length=AUTHORITY_MAX_LENGTH,
            examples=["69M"],
            description="Competent authority (`69M`, `69D`, `20R`, `6AE`, `13`…; see "
            "GET /v1/authorities). A placement service reads its own by default.",
        ),
    ] = None,
    department: Annotated[
        str | None,
        Query(
            pattern=DEPARTMENT_PATTERN,
            examples=["13"],
            deprecated=True,
            description="Former filter: accepted when the department has exactly one "
            "authority (`2A` → `20R`, `67` → `6AE`); `69` is refused (422) with the choices "
            "`69D`, `69M`.",
        ),
    ] = None,
) -> str | None:
    """The ``authority`` (or the unambiguous ``department``) query parameter of a list,
    resolved by ``api.authorities.resolve_authority``: a 422 names the field and the choices."""
    return resolve_authority(authority, department)


AuthorityFilter = Annotated[str | None, Depends(authority_filter)]
DepartmentCode = Annotated[str | None, Query(pattern=DEPARTMENT_PATTERN, examples=["69"])]
"""A department as geography (maps, FINESS, statistics per department): optional filter."""


def idempotency(request: Request, key: str | None, *, required: bool) -> Idempotency | None:
    """The write's ``Idempotency-Key`` header, checked, with the operation it is for (this
    request's method and path). Called by the route after the body is validated, so that a
    bad body is reported before a missing key."""
    if key is None or key == "":
        if required:
            missing = PreconditionRequired if key is None else Invalid
            raise missing(
                "Idempotency-Key: en-tête requis pour cette écriture.",
                errors=[{"field": "Idempotency-Key", "message": "required"}],
            )
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise Invalid(
            f"Idempotency-Key: au plus {MAX_IDEMPOTENCY_KEY_LENGTH} caractères imprimables.",
            errors=[{"field": "Idempotency-Key", "message": "invalid"}],
        )
    return Idempotency(key, f"{request.method} {request.url.path}")


IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]
IfMatchHeader = Annotated[str | None, Header(alias="If-Match")]


def if_match_version(value: str | None) -> int | None:
    """Accept ``3``, ``"3"`` and ``W/"3"``: the snapshot version is the entity tag."""
    if value is None:
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit():
        raise field_error("If-Match", 'attendu : le numéro de version, par ex. "3"')
    return int(raw)
