"""Production sign-in in a real Chromium: the authorization code flow with PKCE against an
identity provider run here (authorize, token and JWKS endpoints over real sockets), and the
service verifying the provider's tokens through its JWKS — no local issuer, no dev sign-in.
"""

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import Browser, async_playwright, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from api.db import drop_database
from loadtests.harness import ServiceProcess, free_port
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.database import create_fixture_database
from tests.support.env import ADMIN_DSN, TEST_DB

# The first test also starts the module's servers (up to 90 s each on a busy machine).
pytestmark = [
    pytest.mark.database,
    pytest.mark.server,
    pytest.mark.browser,
    pytest.mark.timeout(180),
]

CLIENT_ID = "places-ui"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class IdentityProvider:
    """Just enough of an OIDC provider: one user (department 69's placement service)."""

    port: int = field(default_factory=free_port)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
        back = urllib.parse.urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        self.exchanges.append(form)
        issued = self.codes.pop(form.get("code", ""), None)  # single use
        verifier = form.get("code_verifier", "")
        ok = (
            issued is not None
            and form.get("grant_type") == "authorization_code"
            and form.get("client_id") == CLIENT_ID
            and form.get("redirect_uri") == issued["redirect_uri"]
            and _b64url(hashlib.sha256(verifier.encode()).digest()) == issued["challenge"]
        )
        headers = {"Access-Control-Allow-Origin": "*"}
        if not ok:
            return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=headers)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": "places",
            "sub": "agent-ase-69",
            "role": "department",
            "authority": "69M",
            "iat": now,
            "exp": now + 600,
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 600}
        return JSONResponse(body, headers=headers)

    async def jwks(self, request: Request) -> Response:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return JSONResponse({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "ES256"}]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    idp = IdentityProvider()
    server = uvicorn.Server(
        uvicorn.Config(idp.app(), host="127.0.0.1", port=idp.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "identity provider did not start"
    yield idp
    server.should_exit = True
    thread.join(10)


async def grant(dsn: str, issuer: str, sub: str, function: str, authority: str) -> None:
    """A person and one habilitation, as an authority administrator would grant it."""
    conn = await asyncpg.connect(dsn)
    try:
        person = await conn.fetchval(
            "INSERT INTO persons (issuer, sub) VALUES ($1, $2) RETURNING id", issuer, sub
        )
        await conn.execute(
            "INSERT INTO habilitations (person_id, function, authority, granted_by)"
            " VALUES ($1, $2, $3, 'test')",
            person,
            function,
            authority,
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def service(provider: IdentityProvider) -> Iterator[ServiceProcess]:
    dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{TEST_DB}_oidc"
    asyncio.run(create_fixture_database(dsn))
    # Production: what the agent may do comes from the habilitation table, not the token.
    asyncio.run(grant(dsn, provider.url, "agent-ase-69", "orientation_officer", "69M"))
    server = ServiceProcess(
        dsn,
        "",
        PLACES_JWT_JWKS_URL=f"{provider.url}/jwks",
        PLACES_JWT_ISSUER=provider.url,
        PLACES_OIDC_AUTHORIZE_URL=f"{provider.url}/authorize",
        PLACES_OIDC_TOKEN_URL=f"{provider.url}/token",
        PLACES_OIDC_CLIENT_ID=CLIENT_ID,
        PLACES_DEV_SIGNIN=None,  # production: the session's dev sign-in would refuse to start
        PLACES_LOCAL_ROLES=None,  # and so would its local roles
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        asyncio.run(drop_database(dsn))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


async def test_sign_in_with_the_code_flow_and_pkce(
    service: ServiceProcess, provider: IdentityProvider, browser: Browser
) -> None:
    context = await browser.new_context(base_url=service.http, locale="fr-FR")
    page = await context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda e: errors.append(e))
    r = await page.goto("/ui/connexion?retour=/ui/national")
    assert r is not None
    # Production: no dev sign-in; the page may call the provider's token endpoint, nothing else.
    assert await page.locator("#mode-local").count() == 0
    assert (
        f"connect-src 'self' ws://127.0.0.1:{service.port}" in r.headers["content-security-policy"]
    )
    assert provider.url in r.headers["content-security-policy"]
    await page.get_by_role("link", name="Se connecter avec le fournisseur d'identité").click()
    # Back from the provider, code exchanged, token kept: the ?retour= page, signed in.
    await page.wait_for_url("**/ui/national")
    await expect(page.locator("#session")).to_contain_text("69")
    exchange = provider.exchanges[-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["client_id"] == CLIENT_ID
    assert len(exchange["code_verifier"]) >= 43
    assert provider.codes == {}, "the code was used once"
    token = await page.evaluate("sessionStorage.getItem('places.jeton')")
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == provider.url
    # The service accepts the provider's token (verified through its JWKS)…
    r = await context.request.get(
        "/v1/requests?status=waiting", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status == 200, await r.text()
    # …and refuses a locally signed one: production has no dev issuer.
    r = await context.request.post("/ui/dev-token", data={"role": "national"})
    assert r.status == 404
    assert not errors, errors
    await context.close()


async def test_a_forged_return_is_refused(service: ServiceProcess, browser: Browser) -> None:
    """A ?code= the page did not ask for (no matching state) is never exchanged."""
    context = await browser.new_context(base_url=service.http, locale="fr-FR")
    page = await context.new_page()
    await page.goto("/ui/connexion?code=stolen&state=forged")
    await expect(page.get_by_role("alert")).to_contain_text("ne correspond pas")
    assert await page.evaluate("sessionStorage.getItem('places.jeton')") is None
    assert "code=" not in page.url
    await context.close()
