"""Production sign-in in a real Chromium: the authorization code flow with PKCE against an
identity provider run here (``tests/support/identity.py``: authorize, token and JWKS endpoints
over real sockets), and the service verifying the provider's tokens through its JWKS — no
local issuer, no dev sign-in, no role in the tokens.

What a person then sees (#14): the pages learn what the session may do from ``GET /v1/me``
(the token names a person, their habilitations decide); a person holding several chooses one
(by keyboard, at 320 px, axe-clean), and every call of the pages — the live feed too — acts
under it; "Se déconnecter partout" ends every session of the person, the token in hand too.
"""

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from api.db import drop_database
from api.persons import repository
from loadtests.harness import ROOT, ServiceProcess
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, axe_violations, horizontal_overflow
from tests.support.database import create_fixture_database
from tests.support.env import ADMIN_DSN, TEST_DB
from tests.support.identity import CLIENT_ID, IdentityProvider, running

# The first test also starts the module's servers (up to 90 s each on a busy machine).
pytestmark = [
    pytest.mark.database,
    pytest.mark.server,
    pytest.mark.browser,
    pytest.mark.timeout(180),
]

ARTIFACTS = Path(os.environ.get("PLACES_UI_ARTIFACTS", tempfile.gettempdir()))
PHONE = 320  # px: the narrowest screen the pages must fit without sideways scrolling
DSN = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{TEST_DB}_oidc"


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with running(IdentityProvider()) as idp:
        yield idp


def grant(service: ServiceProcess, sub: str, function: str, authority: str) -> None:
    """``places grant``: a habilitation made from the command line, as an operator would
    (effective at once on the running server: NOTIFY)."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "api.cli", "grant", "--sub", sub),
            *("--function", function, "--authority", authority),
        ],
        cwd=ROOT,
        env={**service.env, "PLACES_DATABASE_URL": DSN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def service(provider: IdentityProvider) -> Iterator[ServiceProcess]:
    asyncio.run(create_fixture_database(DSN))
    server = ServiceProcess(
        DSN,
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
        # Production: what the agent may do comes from the habilitation table, not the token.
        grant(server, "agent-ase-69", "orientation_officer", "69M")
        yield server
    finally:
        server.stop()
        asyncio.run(drop_database(DSN))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


async def test_sign_in_with_the_code_flow_and_pkce(
    service: ServiceProcess, provider: IdentityProvider, browser: Browser
) -> None:
    # The provider's token names the agent and still carries role claims: meaningless here.
    provider.signs_in = ("agent-ase-69", {"role": "national"})
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
    # What the session may do comes from its habilitation (GET /v1/me), not the token's claims.
    await expect(page.locator("#session")).to_contain_text("chargé·e d'orientation 69M")
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


# --- persons: /v1/me, habilitations to choose, sign out everywhere ----------------------------


class Person:
    """A person at a browser: their sub at the provider, their tab, its JavaScript errors and
    the ``/v1`` calls it made (with their headers)."""

    def __init__(self, context: BrowserContext, page: Page, sub: str) -> None:
        self.context, self.page, self.sub = context, page, sub
        self.errors: list[str] = []
        self.calls: list[tuple[str, dict[str, str]]] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "request",
            lambda r: self.calls.append((r.url, r.headers)) if "/v1/" in r.url else None,
        )

    async def token(self) -> str | None:
        token: str | None = await self.page.evaluate("sessionStorage.getItem('places.jeton')")
        return token


async def signed_in(
    browser: Browser,
    service: ServiceProcess,
    provider: IdentityProvider,
    given: str,
    functions: list[tuple[str, str]],
    width: int = 1280,
) -> Person:
    """A new person (ProConnect's claims) granted ``functions`` (function, authority) with
    ``places grant``, signed in through the provider from the sign-in page."""
    sub = f"{given.lower()}-{uuid.uuid4().hex[:8]}"
    for function, authority in functions:
        grant(service, sub, function, authority)
    provider.signs_in = (sub, IdentityProvider.proconnect_claims(sub, given, "Martin"))
    context = await browser.new_context(
        base_url=service.http, locale="fr-FR", viewport={"width": width, "height": 900}
    )
    person = Person(context, await context.new_page(), sub)
    await person.page.goto("/ui/connexion")
    await person.page.get_by_role(
        "link", name="Se connecter avec le fournisseur d'identité"
    ).click()
    return person


async def test_a_person_signs_in_and_sees_their_dashboard(
    service: ServiceProcess, provider: IdentityProvider, browser: Browser
) -> None:
    """One habilitation: straight to their authority's dashboard, which loads and goes live;
    the header names the person and their function, from /v1/me (the token has no role)."""
    person = await signed_in(
        browser, service, provider, "Camille", [("orientation_officer", "69M")], width=PHONE
    )
    page = person.page
    await page.wait_for_url("**/ui/autorites/69M")
    await expect(page.locator("#session")).to_contain_text(
        "Camille Martin — chargé·e d'orientation 69M"
    )
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    await expect(page.locator("#k-attente")).to_have_text("0")
    assert await page.locator("#alerte-page").is_hidden()
    assert await page.get_by_role("link", name="Changer d'habilitation").count() == 0
    token = await person.token()
    assert token is not None and "role" not in jwt.decode(
        token, options={"verify_signature": False}
    )
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    assert not person.errors, person.errors
    await person.context.close()


async def test_a_person_with_two_habilitations_chooses_one(
    service: ServiceProcess, provider: IdentityProvider, browser: Browser
) -> None:
    """Two habilitations: a chooser after sign-in (keyboard, 320 px, axe), then every call —
    the live feed too — acts under the one chosen; the header changes it."""
    person = await signed_in(
        browser,
        service,
        provider,
        "Dominique",
        [("orientation_officer", "69M"), ("ase_manager", "13")],
        width=PHONE,
    )
    page = person.page
    chooser = page.locator("#choix-habilitation")
    await expect(chooser.get_by_role("heading", name="Choisir une habilitation")).to_be_focused()
    assert "/ui/connexion" in page.url
    await expect(page.locator("#session")).to_contain_text("habilitation à choisir")
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "ui-choix-habilitation.png"), full_page=True)
    # By keyboard: into the group (the first is checked), down to the second, then continue.
    first = chooser.get_by_role("radio", name=re.compile("^chargé·e d'orientation"))
    second = chooser.get_by_role("radio", name=re.compile("^cadre ASE"))
    await page.keyboard.press("Tab")
    await expect(first).to_be_focused()
    await expect(first).to_be_checked()
    await page.keyboard.press("ArrowDown")
    await expect(second).to_be_checked()
    await page.keyboard.press("Tab")
    await expect(chooser.get_by_role("button", name="Continuer")).to_be_focused()
    before = len(person.calls)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/autorites/13")
    await expect(page.locator("#session")).to_contain_text("Dominique Martin — cadre ASE 13")
    # The live feed needs the choice too (?habilitation=: a browser sets no WebSocket header).
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    await expect(page.locator("#k-attente")).to_have_text("0")
    assert await page.locator("#alerte-page").is_hidden()
    chosen = await page.evaluate("sessionStorage.getItem('places.habilitation')")
    # Every call since the choice (/v1/me, the dashboard's reads) named it.
    since = person.calls[before:]
    assert since and {h.get("x-places-habilitation") for _, h in since} == {chosen}, since
    assert await horizontal_overflow(page) == 0
    await page.screenshot(path=str(ARTIFACTS / "ui-habilitation-choisie.png"))
    # From the header: the other habilitation, its dashboard (on a phone, in the DSFR menu).
    await page.get_by_role("button", name="Menu").click()
    await page.locator("#menu").get_by_role("link", name="Changer d'habilitation").click()
    await expect(chooser.get_by_role("heading", name="Choisir une habilitation")).to_be_focused()
    await expect(second).to_be_checked()  # the current one
    await first.check()
    await chooser.get_by_role("button", name="Continuer").click()
    await page.wait_for_url("**/ui/autorites/69M")
    await expect(page.locator("#session")).to_contain_text("chargé·e d'orientation 69M")
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    assert await page.locator("#alerte-page").is_hidden()
    # The habilitation in use is revoked: the next page forgets the choice, acts under the
    # one left, and says that this dashboard is not its authority's.
    in_use = await page.evaluate("sessionStorage.getItem('places.habilitation')")
    conn = await asyncpg.connect(DSN)
    try:
        async with conn.transaction():
            await repository.revoke(conn, int(in_use), "test")
            await repository.notify(conn)
    finally:
        await conn.close()
    token = await person.token()
    headers = {"Authorization": f"Bearer {token}", "X-Places-Habilitation": in_use}
    for _ in range(50):  # the server hears the NOTIFY within milliseconds
        if (await person.context.request.get("/v1/me", headers=headers)).status == 403:
            break
        await asyncio.sleep(0.1)
    await page.reload()
    await expect(page.locator("#session")).to_contain_text("Dominique Martin — cadre ASE 13")
    await expect(page.locator("#alerte-page")).to_contain_text("celui de l'autorité 13")
    assert await page.evaluate("sessionStorage.getItem('places.habilitation')") is None
    assert await page.get_by_role("link", name="Changer d'habilitation").count() == 0
    assert not person.errors, person.errors
    await person.context.close()


async def test_sign_out_everywhere_refuses_the_old_token(
    service: ServiceProcess, provider: IdentityProvider, browser: Browser
) -> None:
    """ "Se déconnecter partout" from the header (by keyboard): back to the sign-in page, which
    says so; the token of this tab and of another device are refused from then on."""
    person = await signed_in(browser, service, provider, "Sacha", [("ase_manager", "69M")])
    page = person.page
    await page.wait_for_url("**/ui/autorites/69M")
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    token = await person.token()
    assert token is not None
    # Another device, the same person's session.
    other = await browser.new_context(base_url=service.http, locale="fr-FR")
    elsewhere = await other.new_page()
    await elsewhere.add_init_script(f"sessionStorage.setItem('places.jeton', '{token}')")
    await elsewhere.goto("/ui/autorites/69M/acces")
    await expect(elsewhere.locator("#session")).to_contain_text("cadre ASE 69M")
    assert await axe_violations(page, exclude=["main"]) == []  # the header and its buttons

    button = page.get_by_role("button", name="Se déconnecter partout")
    await button.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/connexion?deconnexion=partout")
    await expect(page.get_by_role("status")).to_contain_text("déconnecté partout")
    assert await person.token() is None
    assert await axe_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "ui-deconnexion-partout.png"))
    r = await other.request.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401, await r.text()
    # The other device's next page: its token refused, it is signed out.
    await elsewhere.reload()
    await expect(elsewhere.locator("#alerte-page")).to_contain_text("Vous n'êtes pas connecté")
    assert await elsewhere.evaluate("sessionStorage.getItem('places.jeton')") is None
    assert not person.errors, person.errors
    await other.close()
    await person.context.close()


async def test_a_person_without_habilitation_is_told_their_sub(
    service: ServiceProcess, provider: IdentityProvider, browser: Browser
) -> None:
    """No habilitation yet: the sign-in page says so and shows the ``sub`` to give to the
    authority's administrator; a page of the service says why it shows nothing."""
    person = await signed_in(browser, service, provider, "Alex", [])
    page = person.page
    await expect(page.locator("#mon-sub")).to_have_text(person.sub)
    await expect(page.locator("#session-courante")).to_contain_text(
        "Alex Martin — sans habilitation"
    )
    assert await axe_violations(page) == []
    await page.goto("/ui/national")
    await expect(page.locator("#alerte-page")).to_contain_text("Aucune habilitation active")
    await expect(page.locator("#alerte-page")).to_contain_text(person.sub)
    assert not person.errors, person.errors
    await person.context.close()
