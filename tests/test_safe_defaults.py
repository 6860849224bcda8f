"""Safe by default (issue #14): the response headers, the token lifetime cap, CSV cells
escaped against formulas, and the header block bounded by the server itself."""

import csv
import io
import select
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from api.auth import _key_paths, decode_token, issue_token
from api.cli import app as cli_app
from api.csvcells import safe_cell
from api.errors import Unauthorized
from api.main import create_app
from api.settings import get_settings
from loadtests.harness import ServiceProcess
from tests.support.factories import bearer, make_structure

HSTS = "max-age=31536000; includeSubDomains"
NATIONAL = bearer("national")


def assert_api_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store", response.request.url
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["strict-transport-security"] == HSTS


# --- headers ---------------------------------------------------------------------------


async def test_api_answers_and_errors_are_not_stored(client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/departments", headers=NATIONAL)
    assert ok.status_code == 200
    assert_api_headers(ok)
    unauthorized = await client.get("/v1/departments")
    assert unauthorized.status_code == 401
    assert_api_headers(unauthorized)
    fhir = await client.get("/fhir/metadata")
    assert_api_headers(fhir)
    # refused by the middlewares, before routing
    too_big = await client.post(
        "/v1/structures", content=b"x" * (get_settings().max_body_bytes + 1), headers=NATIONAL
    )
    assert too_big.status_code == 413
    assert_api_headers(too_big)
    control = await client.get("/v1/departments?q=%00", headers=NATIONAL)
    assert control.status_code == 422
    assert_api_headers(control)
    # an error outside the API is not stored either
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert_api_headers(missing)


async def test_pages_and_static_files_keep_their_caching(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/connexion")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert "content-security-policy" in page.headers
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["strict-transport-security"] == HSTS
    static = await client.get("/ui/static/common.js")
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("cache-control", "")
    assert static.headers["x-content-type-options"] == "nosniff"
    assert static.headers["strict-transport-security"] == HSTS
    health = await client.get("/healthz")
    assert health.headers["strict-transport-security"] == HSTS


@pytest.mark.pure
async def test_a_500_carries_the_headers_and_hsts_can_be_disabled() -> None:
    app: FastAPI = create_app(get_settings().model_copy(update={"hsts_seconds": 0}))

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://places.test") as c:
        r = await c.get("/v1/boom")
    assert r.status_code == 500
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in r.headers


# --- token lifetime --------------------------------------------------------------------


def signed(**claims: Any) -> str:
    settings = get_settings()
    base = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "x",
        "role": "operator",
    }
    key = _key_paths(settings.keys_dir)[0].read_bytes()
    return jwt.encode({**base, **claims}, key, algorithm=settings.jwt_algorithm)


async def test_a_hundred_year_token_is_refused(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    century = signed(iat=now, exp=now + 100 * 365 * 86400)
    r = await client.get("/v1/departments", headers={"Authorization": f"Bearer {century}"})
    assert r.status_code == 401
    assert "durée" in r.json()["detail"]
    assert_api_headers(r)
    without_iat = signed(exp=now + 13 * 3600)
    r = await client.get("/v1/departments", headers={"Authorization": f"Bearer {without_iat}"})
    assert r.status_code == 401
    within = signed(iat=now, exp=now + 12 * 3600)
    r = await client.get("/v1/departments", headers={"Authorization": f"Bearer {within}"})
    assert r.status_code == 200
    short_without_iat = signed(exp=now + 3600)
    r = await client.get(
        "/v1/departments", headers={"Authorization": f"Bearer {short_without_iat}"}
    )
    assert r.status_code == 200


@pytest.mark.pure
def test_the_cap_is_the_serving_apps_not_the_cached_verdicts() -> None:
    settings = get_settings()
    now = int(time.time())
    day = signed(iat=now, exp=now + 24 * 3600)
    relaxed = settings.model_copy(update={"token_max_lifetime_minutes": 48 * 60})
    assert decode_token(day, relaxed).role == "operator"  # cached as a valid signature
    with pytest.raises(Unauthorized):
        decode_token(day, settings)
    assert decode_token(day, relaxed).role == "operator"


@pytest.mark.pure
def test_the_local_issuer_refuses_to_mint_beyond_the_cap() -> None:
    with pytest.raises(ValueError, match="PLACES_TOKEN_MAX_LIFETIME_MINUTES"):
        issue_token("operator", ttl_minutes=721)
    with pytest.raises(ValueError):
        issue_token("operator", ttl_seconds=100 * 365 * 86400)
    token = issue_token("operator", ttl_minutes=720)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 720 * 60
    result = CliRunner().invoke(
        cli_app, ["token", "--role", "operator", "--ttl-minutes", "52560000"]
    )
    assert result.exit_code == 2
    result = CliRunner().invoke(cli_app, ["token", "--role", "operator"])
    assert result.exit_code == 0, result.output


# --- CSV -------------------------------------------------------------------------------


@pytest.mark.pure
def test_safe_cell() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text
    for value in ("Rhône", "", "1-2", -3, -1.5, 0, None):
        assert safe_cell(value) == value


@pytest.fixture
async def formula_names(pool: Any) -> AsyncIterator[tuple[str, str]]:
    """Paris (75) and its authority renamed to formulas for the test, then restored."""
    await make_structure(pool, department="75", commune="75056", category="238")
    async with pool.acquire() as conn:
        department = await conn.fetchval("SELECT name FROM departments WHERE code = '75'")
        authority = await conn.fetchval("SELECT name FROM authorities WHERE code = '75'")
        await conn.execute(
            """UPDATE departments SET name = '=HYPERLINK("http://evil.test")' WHERE code = '75'"""
        )
        await conn.execute("UPDATE authorities SET name = '@SUM(1+1)' WHERE code = '75'")
    try:
        yield '\'=HYPERLINK("http://evil.test")', "'@SUM(1+1)"
    finally:
        async with pool.acquire() as conn:
            await conn.execute("UPDATE departments SET name = $1 WHERE code = '75'", department)
            await conn.execute("UPDATE authorities SET name = $1 WHERE code = '75'", authority)


async def test_csv_exports_escape_formulas(
    client: httpx.AsyncClient, formula_names: tuple[str, str]
) -> None:
    department, authority = formula_names
    r = await client.get("/v1/opendata/availability.csv", headers=NATIONAL)
    assert r.status_code == 200
    assert_api_headers(r)
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["department"] == "75"]
    assert rows and all(row["department_name"] == department for row in rows)
    assert all(row["authority_name"] == authority for row in rows)

    r = await client.get("/v1/stats/departments.csv", headers=NATIONAL)
    assert r.status_code == 200
    reader = csv.DictReader(io.StringIO(r.content.decode("utf-8")[1:]), delimiter=";")
    paris = next(row for row in reader if row["department"] == "75")
    assert paris["name"] == department
    assert not any(v.startswith("'") for k, v in paris.items() if k != "name")

    r = await client.get("/v1/stats/authorities.csv", headers=NATIONAL)
    assert r.status_code == 200
    reader = csv.DictReader(io.StringIO(r.content.decode("utf-8")[1:]), delimiter=";")
    paris = next(row for row in reader if row["authority"] == "75")
    assert paris["name"] == authority


# --- the header block, bounded by the server -------------------------------------------


def raw_request(port: int, head: bytes) -> bytes:
    """Send ``head`` in pieces, stop as soon as the server answers, return what it said."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(head), 16384):
                sock.sendall(head[start : start + 16384])
                if select.select([sock], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.server
@pytest.mark.timeout(120)
async def test_an_oversized_header_block_is_refused_by_the_server(database: str) -> None:
    server = ServiceProcess(database, "")
    await server.astart()
    try:
        head = (
            b"GET /v1/departments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + b"a" * (1024 * 1024)
            + b"\r\n\r\n"
        )
        answer = raw_request(server.port, head)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500 and status in (400, 431), answer[:200]
        async with httpx.AsyncClient(base_url=server.http) as c:
            # A long query string too (found by the fuzz run): h11's own plain-text 400, which
            # the OpenAPI document lists beside problem+json so a client knows to expect it.
            target = b"/v1/departments?q=" + b"x" * (256 * 1024)
            answer = raw_request(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 400") and b"content-type: text/plain" in head
            documented = (await c.get("/openapi.json")).json()["paths"]["/v1/departments"]
            assert "text/plain" in documented["get"]["responses"]["400"]["content"]
            r = await c.get("/v1/departments", headers=NATIONAL)
            assert r.status_code == 200
            # a header block under the limit still reaches the app
            r = await c.get("/v1/departments", headers={**NATIONAL, "X-Pad": "p" * 8000})
            assert r.status_code == 200
            # one over it that arrives in one read passes h11 (found by the fuzz run): the app
            # refuses it, 431 problem+json, and the document says so
            for headers, target in (
                ({**NATIONAL, "X-Pad": "p" * 20000}, "/v1/departments"),
                (NATIONAL, "/v1/departments?q=" + "x" * 20000),
            ):
                r = await c.get(target, headers=headers)
                assert r.status_code == 431, r.text[:200]
                assert r.headers["content-type"] == "application/problem+json"
                assert "16384" in r.json()["detail"]
            assert "431" in documented["get"]["responses"]
    finally:
        await server.astop()
