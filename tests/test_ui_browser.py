"""The pages in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright;
no browser download) against a real server process (``places run``) on the test database and Redis.

What a department would check before dropping its spreadsheet: an establishment signs in,
declares with + / − and sees the new version; a stale form gets the French 409 explanation;
the national page shows the table (one row per competent authority) and the map (per
department, the Métropole de Lyon as its own marker); a declaration made on /ui/declarer
appears on the authority's dashboard and on the national page within 2 s, without reload;
the dashboard says when the live feed is lost and catches up after; a hold's countdown runs;
department 69 asks which of its two authorities. The new and changed pages have no axe-core
violation and fit a 320 px wide screen.
Screenshots are written to ``$PLACES_UI_ARTIFACTS`` (default ``/tmp``) as ``ui-*.png``.
"""

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from api.auth import issue_token
from api.db import create_pool
from api.requests.service import local_today
from tests.support.browser import (
    ARTIFACTS,
    Stack,
    axe_violations,
    chromium,
    horizontal_overflow,
    page_stack,
)
from tests.support.factories import idem, make_carer, make_structure

# The first test also starts the module's servers (up to 90 s each on a busy machine).
pytestmark = [
    pytest.mark.database,
    pytest.mark.server,
    pytest.mark.browser,
    pytest.mark.timeout(180),
]

ROOT = Path(__file__).resolve().parent.parent
DEPT = "69"
AUTHORITY = "69M"  # Lyon (69123), where these tests work, is in the Métropole de Lyon
DASHBOARD = f"/ui/autorites/{AUTHORITY}"
PHONE = 320  # px: the narrowest screen the pages must fit without sideways scrolling
LIVE = 2_000  # ms: the issue's "within 2 s"
PING_MS = 2_000  # the browser tests' servers ping every 2 s (tests/support/browser.py)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with page_stack("ui") as running:
        yield running


@pytest.fixture(scope="module")
def server(stack: Stack) -> str:
    return stack.base


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    """This module's database (shadows the conftest's shared pool)."""
    pool = await create_pool(stack.dsn, min_size=1, max_size=3)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


class Tab:
    """A page with its own sessionStorage token and a record of JavaScript errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def check(self) -> None:
        assert not self.errors, self.errors


async def open_tab(
    browser: Browser, base: str, path: str, token: str | None = None, width: int = 1280
) -> Tab:
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, locale="fr-FR", base_url=base
    )
    page = await context.new_page()
    tab = Tab(page)
    if token:
        await page.add_init_script(f"sessionStorage.setItem('places.jeton', {json.dumps(token)})")
    await page.goto(path)
    return tab


def api(base: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"})


async def shot(tab: Tab, name: str) -> None:
    await tab.page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)


def lyon_request(age: int, sex: str, tag: str) -> dict[str, Any]:
    """A judicial request of the Métropole for one child, from Lyon, referenced by ``tag``."""
    return {
        "department": DEPT,
        "children": [{"age": age, "sex": sex, "disability_profiles": []}],
        "origin": {"commune": "69123"},
        "care_mode": "durable",
        "urgency": "days",
        "measure": {"kind": "judicial", "decided_on": local_today(DEPT).isoformat()},
        "reference": f"ASE69-{tag}-{os.getpid()}",
    }


async def snapshot(pool: asyncpg.Pool, unit_id: Any) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT version, available FROM capacity_snapshots"
        " WHERE unit_id = $1 AND temporality = 'current'",
        unit_id,
    )


@pytest.fixture(scope="module")
async def establishment(pool: asyncpg.Pool) -> dict[str, Any]:
    return await make_structure(
        pool, units=[{"name": "Les Cèdres", "installed": 8}, {"name": "Les Tilleuls"}]
    )


async def test_sign_in_then_declare_with_plus_and_minus(
    server: str, browser: Browser, pool: asyncpg.Pool, establishment: dict[str, Any]
) -> None:
    tab = await open_tab(browser, server, "/ui/connexion", width=390)
    page = tab.page
    await expect(page.locator("#mode-local")).to_contain_text("Mode local")
    assert await axe_violations(page) == []
    await shot(tab, "connexion")
    await page.get_by_role("radio", name=re.compile("^Établissement")).check()
    await page.get_by_label("Numéro FINESS").fill(establishment["finess"])
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url("**/ui/declarer")
    await expect(page.locator("#session")).to_contain_text(establishment["finess"])

    unit = establishment["unit_ids"][0]
    card = page.locator(f"#unite-{unit}")
    await expect(card.get_by_role("heading", name="Les Cèdres")).to_be_visible()
    await expect(card).to_contain_text("ce sera la première")
    plus = card.get_by_role("button", name="+1 libre")
    minus = card.get_by_role("button", name="−1 libre")
    for _ in range(3):
        await plus.click()
    await minus.click()
    await expect(card.locator(f"#dispo-{unit}")).to_have_value("2")
    await card.get_by_role("button", name="Envoyer la déclaration").click()
    await expect(card.locator(".succes")).to_contain_text("version 1")
    await expect(card.locator(".succes")).to_contain_text("2 places disponibles")
    await expect(card.locator(".derniere")).to_contain_text("version 1")
    row = await snapshot(pool, unit)
    assert (row["version"], row["available"]) == (1, 2)
    # Nothing overflows the phone's width.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    assert await axe_violations(page) == []
    await shot(tab, "declarer")
    tab.check()


async def test_a_carer_sees_the_suspension_and_cannot_lift_it(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """A carer offers only their own statuses (available, on leave); once the authority has
    suspended the agrément, the page says so, read-only, and offers no form (#15's first
    rule: suspension is the issuing authority's decision)."""
    carer_id = await make_carer(pool)
    token = issue_token("carer", carer_id=str(carer_id))
    tab = await open_tab(browser, server, "/ui/declarer", token, width=320)
    page = tab.page
    await expect(page.get_by_role("radio", name="En congé")).to_have_count(1)
    await expect(page.get_by_role("radio", name=re.compile("Suspendu"))).to_have_count(0)
    # The issuer suspends the agrément (as its service records it; the decision's own page
    # and endpoint are tests/test_ui_agrements.py's): the carer's status is not the way.
    await pool.execute(
        "UPDATE foster_carers SET agrement_state = 'suspended', suspended_from = current_date,"
        " suspension_reason = 'sante', available_places = 0,"
        " agrement_version = agrement_version + 1 WHERE id = $1",
        carer_id,
    )
    await page.reload()
    await expect(page.locator("#declarant")).to_contain_text("Votre agrément est suspendu")
    await expect(page.get_by_role("button", name="Envoyer la déclaration")).to_have_count(0)
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    tab.check()


async def test_a_stale_form_gets_the_french_409(
    server: str, browser: Browser, pool: asyncpg.Pool, establishment: dict[str, Any]
) -> None:
    token = issue_token("structure", finess=establishment["finess"])
    tab = await open_tab(browser, server, "/ui/declarer", token, width=390)
    unit = establishment["unit_ids"][0]
    card = tab.page.locator(f"#unite-{unit}")
    await expect(card.locator(".derniere")).to_contain_text("version 1")
    # Someone else declares meanwhile (their DUI software, through the API).
    async with api(server, token) as client:
        r = await client.put(
            f"/v1/units/{unit}/capacity",
            headers=idem(),
            json={"temporality": "current", "available": 1},
        )
        assert r.status_code == 200 and r.json()["version"] == 2
    await card.get_by_role("button", name="+1 libre").click()
    await card.get_by_role("button", name="Envoyer la déclaration").click()
    alert = card.get_by_role("alert")
    await expect(alert).to_contain_text("Conflit de version")
    await expect(alert).to_contain_text("version actuelle : 2")
    await expect(alert).to_contain_text("n'ont pas été enregistrés")
    assert (await snapshot(pool, unit))["version"] == 2
    await shot(tab, "declarer-409")
    await alert.get_by_role("button", name="Recharger les chiffres actuels").click()
    await expect(card.locator(".derniere")).to_contain_text("version 2")
    await expect(card.locator(f"#dispo-{unit}")).to_have_value("1")
    # "+1 libre" takes the places not yet counted, then the occupied ones: with none left it
    # is disabled and says why, rather than letting the server refuse.
    plus = card.get_by_role("button", name="+1 libre")
    for _ in range(12):
        if await plus.is_disabled():
            break
        await plus.click()
    await expect(plus).to_be_disabled()
    await expect(card).to_contain_text("Aucune place occupée à libérer")
    # A count that breaks the invariant by hand ("Autres compteurs"): "Envoyer" is disabled
    # with the reason, in plain French.
    await card.locator("summary").click()
    await card.get_by_role("button", name="Places occupées : ajouter une").click()
    await expect(card.get_by_role("button", name="Envoyer la déclaration")).to_be_disabled()
    await expect(card.locator(".controle")).to_contain_text("Envoi impossible")
    assert await axe_violations(tab.page) == []
    await shot(tab, "declarer-refusee")
    tab.check()


async def test_a_child_left_a_full_unit_one_gesture_by_keyboard(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """L'Arche, 11 occupied and 1 closed of 12: a child leaves. Keyboard only, on a phone: Tab
    to "+1 libre", Enter, Tab to "Envoyer", Enter; the place moved from occupied to available
    (the invariant kept by construction), and focus lands on the outcome."""
    arche = await make_structure(pool, units=[{"name": "L'Arche", "installed": 12}])
    unit = arche["unit_ids"][0]
    token = issue_token("structure", finess=arche["finess"])
    async with api(server, token) as client:
        r = await client.put(
            f"/v1/units/{unit}/capacity",
            headers=idem(),
            json={"temporality": "current", "available": 0, "occupied": 11, "closed": 1},
        )
        assert r.status_code == 200, r.text
    tab = await open_tab(browser, server, "/ui/declarer", token, width=390)
    page = tab.page
    await page.set_viewport_size({"width": 390, "height": 844})
    card = page.locator(f"#unite-{unit}")
    plus = card.get_by_role("button", name="+1 libre")
    await expect(plus).to_be_enabled()
    # The first counter is on the first screen.
    box = await card.locator(f"#dispo-{unit}").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 844, box
    assert "structure-" not in await card.locator(".derniere").inner_text()
    await tab_to(page, "+1 libre")
    await page.keyboard.press("Enter")
    await expect(card.locator(f"#dispo-{unit}")).to_have_value("1")
    await tab_to(page, "Envoyer la déclaration")
    await page.keyboard.press("Enter")
    await expect(card.locator(".succes")).to_contain_text("1 place disponible")
    assert await page.evaluate("document.activeElement.classList.contains('succes')")
    row = await pool.fetchrow(
        "SELECT available, occupied, closed FROM capacity_snapshots"
        " WHERE unit_id = $1 AND temporality = 'current'",
        unit,
    )
    assert (row["available"], row["occupied"], row["closed"]) == (1, 10, 1)
    assert await axe_violations(page) == []
    await shot(tab, "declarer-clavier-390")
    tab.check()


async def tab_to(page: Page, name: str, limit: int = 60) -> None:
    """Press Tab until the focused element's accessible text is ``name`` (keyboard only)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        text = await page.evaluate(
            "(() => { const e = document.activeElement;"
            " return (e.getAttribute('aria-label') || e.textContent || '').trim(); })()"
        )
        if text == name:
            return
    raise AssertionError(f"{name!r} not reached in {limit} Tab presses")


async def test_the_national_feed_starts_after_the_snapshot_the_page_drew(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """#19: the national figures may come from a standby a little behind; the page reads the
    feed position its snapshot is consistent with (``Places-Feed-Position``) and subscribes
    from there, so the events between the snapshot and the subscription are replayed."""
    home = await make_structure(pool, units=[{"name": "Les Cèdres", "installed": 4}])
    async with api(server, issue_token("structure", finess=home["finess"])) as client:
        r = await client.put(
            f"/v1/units/{home['unit_ids'][0]}/capacity",
            json={"temporality": "current", "available": 1},
            headers=idem(),
        )
        assert r.status_code == 200, r.text
    for _ in range(100):  # the relay has published it and recorded the national feed's head
        if await pool.fetchval("SELECT entry_id FROM feed_positions WHERE feed = 'national'"):
            break
        await asyncio.sleep(0.05)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    page = await context.new_page()
    token = issue_token("national")
    await page.add_init_script(f"sessionStorage.setItem('places.jeton', {json.dumps(token)})")
    said: list[str] = []
    sockets: list[str] = []
    page.on(
        "response",
        lambda r: (
            said.append(r.headers.get("places-feed-position", ""))
            if r.url.endswith("/v1/stats/departments")
            else None
        ),
    )
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.goto("/ui/national")
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    national = dict(part.strip().split("=") for part in said[0].split(","))["national"]
    assert sockets and f"last_event_id={national}" in sockets[0], (said, sockets)
    await context.close()


async def test_national_page_shows_table_map_and_chart(server: str, browser: Browser) -> None:
    tab = await open_tab(browser, server, "/ui/national", issue_token("national"))
    page = tab.page
    table = page.locator("#table-autorites")
    # One row per competent authority: Lyon apart from the Rhône, Corse and Alsace one each.
    for code, name in [
        ("69M", "Métropole de Lyon"),
        ("69D", "Département du Rhône"),
        ("20R", "Collectivité de Corse (2A, 2B)"),
        ("6AE", "Collectivité européenne d'Alsace (67, 68)"),
        ("01", "Département de l'Ain"),
        ("38", "Département de l'Isère"),
        ("75", "Ville de Paris"),
    ]:
        await expect(table.locator(f"#a-{code}")).to_have_count(1)
        await expect(table.locator(f"#a-{code}")).to_contain_text(f"{code} — {name}")
    await expect(page.locator("#a-974")).to_contain_text("La Réunion")
    await expect(table.locator("tbody tr")).to_have_count(100)
    for code in ("69", "2A", "2B", "67", "68"):  # departments that are no authority's code
        await expect(table.locator(f"#a-{code}")).to_have_count(0)
    await expect(table.locator("tfoot")).to_contain_text("France entière")
    rhone = page.locator("#dep-69")
    await expect(rhone).to_have_attribute(
        "aria-label",
        re.compile(
            r"Rhône \(69, département entier : Métropole de Lyon et Département du Rhône\)"
            r" : tension .* places? libres?"
        ),
    )
    assert await rhone.evaluate("p => p.style.fill") != ""
    # The Métropole de Lyon has its own marker, with its own figures, right after the Rhône.
    # The map is for the mouse, out of the Tab order (101 shapes to cross otherwise); the
    # table is its keyboard equivalent: its row's button opens the same panel.
    lyon = page.locator("#marqueur-69M")
    await expect(lyon).to_be_visible()
    await expect(lyon).not_to_have_attribute("tabindex", "0")
    await expect(rhone).not_to_have_attribute("tabindex", "0")
    await expect(lyon).to_have_attribute("aria-label", re.compile("places? libres?"))
    assert await lyon.evaluate("g => g.previousElementSibling.id") == "dep-69"
    assert await lyon.evaluate("g => g.querySelector('.pastille-autorite').style.fill") != ""
    row_button = page.locator("#a-69M").get_by_role("button")
    await row_button.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#graphique-portee")).to_have_text("Métropole de Lyon (69M)")
    await expect(page.locator("#a-69M")).to_have_class(re.compile(r"\bchoisie\b"))
    await expect(page.locator("#detail-departement")).to_contain_text("Métropole de Lyon (69M)")
    # A national analyst gets no link to a dashboard that would refuse them.
    await expect(page.locator("#detail-departement").get_by_role("link")).to_have_count(0)
    assert await axe_violations(page) == []
    await shot(tab, "national-panneau")
    await page.keyboard.press("Enter")  # unselect: back to the whole country
    await expect(page.locator("#graphique-portee")).to_have_text("France entière")
    # "Exporter" is a few Tabs away, not 114.
    await page.locator("#export-csv").focus()
    # Switch the choropleth; sort the table.
    await expect(page.locator("#legende-titre")).to_contain_text("Tension")
    await page.get_by_role("radio", name="Places libres").check()
    await expect(page.locator("#legende-titre")).to_contain_text("Places libres")
    header = table.locator("th[data-cle=available]")
    await header.get_by_role("button").click()
    await expect(header).to_have_attribute("aria-sort", "descending")
    await expect(page.locator("#graphique svg")).to_be_visible()
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Exporter en CSV").click()
    name = (await download.value).suggested_filename
    assert name.startswith("places-autorites-") and name.endswith(".csv"), name
    await page.get_by_role("radio", name="Tension").check()
    assert await axe_violations(page) == []
    await shot(tab, "national")
    tab.check()


async def test_a_declaration_appears_live_on_the_department_and_national_pages(
    server: str, browser: Browser, pool: asyncpg.Pool, establishment: dict[str, Any]
) -> None:
    department = await open_tab(
        browser, server, DASHBOARD, issue_token("department", authority=AUTHORITY)
    )
    national = await open_tab(browser, server, "/ui/national", issue_token("national"))
    declarer = await open_tab(
        browser,
        server,
        "/ui/declarer",
        issue_token("structure", finess=establishment["finess"]),
        width=390,
    )
    unit = establishment["unit_ids"][1]
    cell = department.page.locator(f"#u-{unit} td[data-champ=libres]")
    await expect(cell).to_have_text("0")
    for tab in (department, national):
        await expect(tab.page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    rhone = national.page.locator("#dep-69")
    await expect(rhone).to_have_attribute("aria-label", re.compile("places? libres?"))
    before = await national.page.locator(f"#a-{AUTHORITY} td").nth(0).inner_text()

    card = declarer.page.locator(f"#unite-{unit}")
    for _ in range(4):
        await card.get_by_role("button", name="+1 libre").click()
    await card.get_by_role("button", name="Envoyer la déclaration").click()
    await expect(card.locator(".succes")).to_contain_text("version 1")

    await expect(cell).to_have_text("4", timeout=LIVE)
    await expect(department.page.locator("#annonces")).to_contain_text("Les Tilleuls", timeout=LIVE)
    row = national.page.locator(f"#a-{AUTHORITY} td").nth(0)
    await expect(row).not_to_have_text(before, timeout=LIVE)
    await expect(rhone).to_have_class(re.compile(r"\bmaj\b"), timeout=LIVE)
    assert int(await row.inner_text()) == int(before) + 4

    # The feed drops: the page says so, reconnects with last_event_id and catches up.
    await department.page.evaluate("window.placesFeed.socket.close()")
    status = department.page.locator("#etat-direct")
    await expect(status).to_have_attribute("data-etat", "deconnecte")
    await expect(status).to_contain_text("Hors ligne")
    async with api(server, issue_token("structure", finess=establishment["finess"])) as client:
        r = await client.put(
            f"/v1/units/{unit}/capacity",
            headers=idem(),
            json={"temporality": "current", "available": 3},
        )
        assert r.status_code == 200, r.text
    await expect(status).to_have_attribute("data-etat", "direct", timeout=5_000)
    await expect(cell).to_have_text("3", timeout=LIVE)

    # The network goes (no close reaches the page): "Hors ligne" within a missed ping (the
    # test server pings every PING_SECONDS), "En direct" again once it is back.
    await department.page.context.set_offline(True)
    await expect(status).to_have_attribute("data-etat", "deconnecte", timeout=PING_MS * 2 + 1_000)
    await expect(status).to_contain_text("Hors ligne")
    await department.page.context.set_offline(False)
    await expect(status).to_have_attribute("data-etat", "direct", timeout=20_000)
    await expect(status).to_contain_text("En direct")
    for tab in (department, national, declarer):
        tab.check()


async def test_a_hold_countdown_runs(
    server: str, browser: Browser, pool: asyncpg.Pool, establishment: dict[str, Any]
) -> None:
    token = issue_token("department", authority=AUTHORITY)
    async with api(server, token) as client:
        decided = local_today(DEPT) - timedelta(days=45)
        requests = []
        for n in range(2):
            r = await client.post(
                "/v1/requests",
                json={
                    "department": DEPT,
                    "children": [{"age": 8, "sex": "F", "disability_profiles": []}],
                    "origin": {"commune": "69123"},
                    "care_mode": "durable",
                    "urgency": "immediate",
                    "measure": {"kind": "judicial", "decided_on": decided.isoformat()},
                    "reference": f"ASE69-UI-{n}-{os.getpid()}",
                },
            )
            assert r.status_code == 201, r.text
            requests.append(r.json())
        r = await client.post(
            "/v1/holds",
            json={
                "request_id": requests[0]["id"],
                "target": {"kind": "unit", "id": str(establishment["unit_ids"][1])},
                "expires_in_minutes": 90,
            },
        )
        assert r.status_code == 201, r.text
        hold = r.json()
    tab = await open_tab(browser, server, DASHBOARD, token)
    page = tab.page
    row = page.locator(f"#h-{hold['id']}")
    await expect(row).to_contain_text(requests[0]["reference"])
    await expect(row).to_contain_text("Les Tilleuls")
    timer = row.get_by_role("timer")
    await expect(timer).to_have_text(re.compile(r"1 h (29|30) min \d\d s"))
    first = await timer.inner_text()
    await asyncio.sleep(1.2)
    assert await timer.inner_text() != first
    # The other request waits past the threshold: a measure not executed, highlighted.
    waiting = page.locator("#table-attente tr", has_text=requests[1]["reference"])
    await expect(waiting).to_have_class(re.compile("non-executee"))
    await expect(waiting).to_contain_text("non exécutée")
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    await shot(tab, "departement")
    # Keyboard only: « Libérer… » asks a coded reason (required) and optional precisions.
    await row.get_by_role(
        "button", name=f"Libérer… — réservation de {requests[0]['reference']}"
    ).focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#titre-liberation")).to_be_focused()
    await page.locator("#action-reservation").get_by_role("button", name="Libérer").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#action-reservation").get_by_role("alert")).to_contain_text("motif")
    await expect(page.get_by_label("Motif (obligatoire)")).to_be_focused()
    await audit(tab, "autorite-liberation")
    await page.keyboard.type("Autre solution")  # type-ahead: « Autre solution retenue… »
    await page.keyboard.press("Tab")
    await page.keyboard.type("Accueil chez un tiers digne de confiance")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("#titre-reservations")).to_be_focused()
    await expect(page.locator("#table-reservations")).not_to_contain_text(requests[0]["reference"])
    released = await pool.fetchrow(
        "SELECT status, reason, reason_code FROM holds WHERE id = $1", hold["id"]
    )
    assert released["status"] == "released"
    assert released["reason_code"] == "autre_solution_retenue"
    assert released["reason"] == "Accueil chez un tiers digne de confiance"
    tab.check()


async def test_an_establishment_sees_and_refuses_an_orientation(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    home = await make_structure(pool, units=[{"name": "Le Verger", "installed": 6}])
    unit = str(home["unit_ids"][0])
    structure = issue_token("structure", finess=home["finess"])
    async with api(server, structure) as client:
        r = await client.put(
            f"/v1/units/{unit}/capacity",
            json={"temporality": "current", "available": 2},
            headers=idem(),
        )
        assert r.status_code == 200, r.text
    async with api(server, issue_token("department", authority=AUTHORITY)) as client:
        r = await client.post(
            "/v1/requests",
            json=lyon_request(9, "M", "REFUS"),
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            "/v1/holds",
            json={
                "request_id": r.json()["id"],
                "target": {"kind": "unit", "id": unit},
                "expires_in_minutes": 120,
            },
        )
        assert r.status_code == 201, r.text
        hold = r.json()
    held = await snapshot(pool, unit)
    assert held["available"] == 1
    # The placement service watches its dashboard meanwhile.
    dashboard = await open_tab(
        browser, server, DASHBOARD, issue_token("department", authority=AUTHORITY)
    )
    await expect(dashboard.page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")

    tab = await open_tab(browser, server, "/ui/declarer", structure, width=390)
    page = tab.page
    item = page.locator(f"#orientation-{hold['id']}")
    await expect(item).to_contain_text("Le Verger")
    await expect(item).to_contain_text("1 place gardée")
    await expect(item.get_by_role("timer")).to_have_text(re.compile(r"reste 1 h 59 min"))
    await item.get_by_role("button", name="Refuser…").click()
    await item.get_by_role("button", name="Confirmer le refus").click()
    await expect(item.get_by_role("alert")).to_contain_text("motif")  # a coded reason is required
    await item.get_by_label("Motif du refus").select_option(label="Pas de place réellement libre")
    await item.get_by_label("Précisions").fill("Pas de place adaptée cette semaine")
    await shot(tab, "orientation")
    await item.get_by_role("button", name="Confirmer le refus").click()
    orientations = page.locator("#orientations")
    await expect(orientations).to_contain_text("Orientation refusée (Le Verger)")
    await expect(orientations).to_contain_text("Aucune place n'est gardée")
    # The place is free again and the form starts from the new version.
    after = await snapshot(pool, unit)
    assert after["available"] == 2 and after["version"] > held["version"]
    await expect(page.locator(f"#dispo-{unit}")).to_have_value("2")
    refused = await pool.fetchrow(
        "SELECT status, reason, reason_code FROM holds WHERE id = $1", hold["id"]
    )
    assert refused["status"] == "refused"
    assert refused["reason_code"] == "pas_de_place_reelle"
    assert refused["reason"] == "Pas de place adaptée cette semaine"
    tab.check()
    # The department learns it live, with the reason, and the child is waiting again.
    notice = dashboard.page.locator("#avis-refus")
    await expect(notice).to_contain_text(f"ASE69-REFUS-{os.getpid()}")
    await expect(notice).to_contain_text(
        "Pas de place réellement libre — « Pas de place adaptée cette semaine »"
    )
    await shot(dashboard, "refus-departement")
    dashboard.check()


async def test_an_empty_department_and_a_foreign_one_say_so_in_french(
    server: str, browser: Browser
) -> None:
    """La Réunion has no establishment and no carer in this database; the page must not
    break, and a placement service looking at another authority's dashboard is told so, in
    French."""
    tab = await open_tab(
        browser, server, "/ui/autorites/974", issue_token("department", authority="974")
    )
    page = tab.page
    await expect(page.locator("#table-unites")).to_contain_text("Aucun établissement enregistré")
    await expect(page.locator("#table-af")).to_contain_text("Aucun assistant familial")
    await expect(page.locator("#table-attente")).to_contain_text("Aucune demande en attente")
    await expect(page.locator("#k-libres")).to_have_text("0")
    await expect(page.locator("#carte svg")).to_be_visible()  # overseas: a local frame
    await page.goto(DASHBOARD)
    await expect(page.get_by_role("alert")).to_contain_text(
        "votre compte est celui de l'autorité 974"
    )
    tab.check()


async def test_a_placement_service_signs_in_as_its_authority(server: str, browser: Browser) -> None:
    """The sign-in lists competent authorities; the Métropole de Lyon lands on its own
    dashboard and sees its own waiting list, not the Rhône's."""
    references = {}
    for authority, commune in (("69M", "69123"), ("69D", "69264")):
        async with api(server, issue_token("department", authority=authority)) as client:
            r = await client.post(
                "/v1/requests",
                json={
                    "children": [{"age": 10, "sex": "F", "disability_profiles": []}],
                    "origin": {"commune": commune},
                    "care_mode": "durable",
                    "urgency": "days",
                    "measure": {"kind": "judicial", "decided_on": local_today(DEPT).isoformat()},
                    "reference": f"ASE-{authority}-{os.getpid()}",
                },
            )
            assert r.status_code == 201, r.text
            assert r.json()["authority"] == authority
            references[authority] = r.json()["reference"]
    tab = await open_tab(browser, server, "/ui/connexion")
    page = tab.page
    await page.get_by_role("radio", name=re.compile("^Département")).check()
    await page.get_by_label("Autorité compétente").select_option("69M")
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(f"**{DASHBOARD}")
    await expect(page.locator("#session")).to_contain_text("69M")
    waiting = page.locator("#table-attente")
    await expect(waiting).to_contain_text(references["69M"])
    await expect(waiting).not_to_contain_text(references["69D"])
    await expect(page.get_by_role("alert")).to_have_count(0)
    tab.check()


async def test_department_69_offers_its_two_authorities(server: str, browser: Browser) -> None:
    """The Rhône has two placement services: the page asks which, accessibly, at phone width."""
    tab = await open_tab(browser, server, "/ui/departements/69", width=PHONE)
    page = tab.page
    await expect(page.get_by_role("heading", level=1)).to_contain_text("deux autorités")
    choices = page.locator(".choix-autorites").get_by_role("link")
    await expect(choices).to_have_count(2)
    await expect(choices.nth(0)).to_have_accessible_name("Métropole de Lyon (69M)")
    await expect(choices.nth(1)).to_have_accessible_name("Département du Rhône (69D)")
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    await shot(tab, "departement-69")
    await choices.nth(1).click()
    await page.wait_for_url("**/ui/autorites/69D")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Département du Rhône")
    tab.check()


async def test_a_department_of_one_authority_leads_to_its_dashboard(
    server: str, browser: Browser
) -> None:
    tab = await open_tab(
        browser, server, "/ui/departements/38", issue_token("department", authority="38")
    )
    page = tab.page
    assert page.url.endswith("/ui/autorites/38"), page.url
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Département de l'Isère")
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    # Corse: both departments lead to the Collectivité, whose map shows both.
    await page.goto("/ui/departements/2B")
    assert page.url.endswith("/ui/autorites/20R"), page.url
    await expect(page.locator("#alerte-page")).to_contain_text("votre compte est celui de")
    tab.check()


async def test_the_authorities_are_listed(server: str, browser: Browser) -> None:
    tab = await open_tab(browser, server, "/ui/autorites", issue_token("national"), width=PHONE)
    page = tab.page
    links = page.locator(".liste-departements").get_by_role("link")
    await expect(links).to_have_count(100)
    for code, name in [
        ("69M", "Métropole de Lyon"),
        ("69D", "Département du Rhône"),
        ("20R", "Collectivité de Corse"),
        ("6AE", "Collectivité européenne d'Alsace"),
    ]:
        await expect(page.locator(f'a[href="/ui/autorites/{code}"]')).to_contain_text(name)
    # The national analyst's menu: their home only, no link to a dashboard that would refuse.
    menu = page.locator("#menu-role")
    # (in the phone's menu, closed: the links are there, not shown)
    await expect(menu.locator("a", has_text="Pilotage national")).to_have_count(1)
    await expect(menu.locator("a", has_text="Tableau de bord")).to_have_count(0)
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    tab.check()


async def test_the_authority_dashboard_is_accessible_and_fits_a_phone(
    server: str, browser: Browser, establishment: dict[str, Any]
) -> None:
    """The Métropole de Lyon's dashboard, loaded and live: key figures as national steering
    counts them, the map on the Rhône's shape with the Métropole's communes, no axe-core
    violation, nothing wider than a 320 px screen."""
    token = issue_token("department", authority=AUTHORITY)
    tab = await open_tab(browser, server, DASHBOARD, token, width=PHONE)
    page = tab.page
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    unit = establishment["unit_ids"][1]
    await expect(page.locator(f"#u-{unit}")).to_contain_text("Les Tilleuls")
    async with api(server, token) as client:
        r = await client.get(f"/v1/stats/authorities?authority={AUTHORITY}")
        assert r.status_code == 200, r.text
        figures = r.json()["items"][0]
    await expect(page.locator("#k-libres")).to_have_text(str(figures["available"]))
    await expect(page.locator("#k-attente")).to_have_text(str(figures["requests_waiting"]))
    await expect(page.locator("#chiffres-source")).to_contain_text("pilotage national")
    # The map: the Rhône's shape, the Métropole's communes on it.
    await expect(page.locator("#dep-69")).to_have_class(re.compile(r"\bcourant\b"))
    assert await page.locator("#couche-communes circle").count() == 58
    await expect(page.locator("#territoire")).to_contain_text("Département du Rhône")
    # The first screen's reads, started by amorce.js before the modules, were all taken by
    # the page (the same paths on both sides: none was asked twice, none left waiting).
    assert await page.evaluate("window.placesEarly instanceof Map && window.placesEarly.size") == 0
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    # Filters of the offer: the offer's figures follow what is shown, and say so.
    await page.get_by_label("Seulement avec des places libres").check()
    await expect(page.locator("#chiffres-filtres")).to_be_visible()
    await shot(tab, "autorite-telephone")
    tab.check()


async def test_the_national_page_fits_a_phone(server: str, browser: Browser) -> None:
    tab = await open_tab(browser, server, "/ui/national", issue_token("national"), width=PHONE)
    page = tab.page
    await expect(page.locator("#a-69M")).to_be_visible()
    await expect(page.locator("#marqueur-69M")).to_have_attribute("aria-label", re.compile(":"))
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    await shot(tab, "national-telephone")
    tab.check()


async def test_collectivite_de_corse_shows_both_departments(server: str, browser: Browser) -> None:
    tab = await open_tab(
        browser, server, "/ui/autorites/20R", issue_token("authority_admin", authority="20R")
    )
    page = tab.page
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Collectivité de Corse")
    for code in ("2A", "2B"):
        await expect(page.locator(f"#dep-{code}")).to_have_class(re.compile(r"\bcourant\b"))
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    await expect(page.locator("#table-attente")).not_to_contain_text("Chargement")
    assert await axe_violations(page) == []
    tab.check()


async def test_who_read_our_childrens_data(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """The Métropole's placement service sees, on "Qui a consulté nos données", an
    establishment's read of the hold it placed there, not its own reads; accessible, fits a
    phone."""
    reader = f"directeur-ui-{os.getpid()}"
    structure = await make_structure(pool)
    unit_id = str(structure["unit_ids"][0])
    own = issue_token("structure", finess=structure["finess"], sub=reader)
    async with api(server, own) as client:
        r = await client.put(
            f"/v1/units/{unit_id}/capacity",
            headers=idem(),
            json={"temporality": "current", "installed": 10, "occupied": 8, "available": 2},
        )
        assert r.status_code == 200, r.text
    async with api(server, issue_token("department", authority=AUTHORITY)) as client:
        r = await client.post(
            "/v1/requests",
            json=lyon_request(7, "F", "ACCES"),
        )
        assert r.status_code == 201, r.text
        request_id = r.json()["id"]
        assert (await client.get(f"/v1/requests/{request_id}")).status_code == 200
        r = await client.post(
            "/v1/holds",
            headers=idem(),
            json={"request_id": request_id, "target": {"kind": "unit", "id": unit_id}},
        )
        assert r.status_code == 201, r.text
    async with api(server, own) as client:
        assert (await client.get("/v1/holds")).status_code == 200
    token = issue_token("department", authority=AUTHORITY)
    tab = await open_tab(browser, server, f"/ui/autorites/{AUTHORITY}/acces", token, width=PHONE)
    table = tab.page.locator("#table-acces tbody")
    row = table.locator("tr", has_text=reader)
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Établissement")
    await expect(row).to_contain_text("a listé des réservations")
    await expect(table).not_to_contain_text("Département")  # its own reads are not there
    assert await horizontal_overflow(tab.page) == 0
    assert await axe_violations(tab.page) == []
    await shot(tab, "acces")
    tab.check()
    # Another authority's service is told the page is not its own.
    other = await open_tab(
        browser,
        server,
        f"/ui/autorites/{AUTHORITY}/acces",
        issue_token("department", authority="38"),
    )
    await expect(other.page.locator("#alerte-page")).to_contain_text("Cette page est celle de")
    other.check()


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".opblock"), ("/redoc", "h1")])
async def test_api_docs_render_from_this_origin_only(
    server: str, browser: Browser, path: str, rendered: str
) -> None:
    """/docs and /redoc render with their packaged assets: nothing leaves the origin (no
    CDN, no font, no validator), and the page's policy blocks nothing it needs (#14). Redoc
    shows Redocly's logo from its CDN: the policy refuses it (the image hides itself), so
    that request never leaves the browser."""
    context = await browser.new_context(base_url=server)
    page = await context.new_page()
    requests: list[str] = []
    blocked: dict[str, str | None] = {}
    refused: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: blocked.__setitem__(r.url, r.failure))
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(path)
    await expect(page.locator(rendered).first).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("/v1/search").first).to_be_attached()
    await page.wait_for_load_state("networkidle")
    own = (server + "/", "blob:" + server + "/")
    outside = [u for u in requests if not u.startswith(own)]
    assert f"{server}/openapi.json" in requests
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert outside == ([logo] if path == "/redoc" else []), outside
    for url in outside:
        assert "csp" in (blocked.get(url) or "").lower(), (url, blocked.get(url))
    assert all(logo in m for m in refused), refused
    assert errors == []
    await page.screenshot(path=str(ARTIFACTS / f"ui-docs{path.replace('/', '-')}.png"))
    await context.close()


async def test_an_authority_administrator_grants_and_revokes_on_the_page(
    server: str, browser: Browser
) -> None:
    """The habilitations page: grant a function to a person by their sub, see it listed,
    revoke it (the person is refused at once); no axe-core violation."""
    admin = issue_token("authority_admin", authority=AUTHORITY)
    tab = await open_tab(browser, server, f"/ui/autorites/{AUTHORITY}/habilitations", admin)
    page = tab.page
    sub = f"agent-{uuid.uuid4().hex[:8]}"
    await page.get_by_label("Identifiant de la personne (sub)").fill(sub)
    await page.get_by_label("Nom (facultatif)").fill("Camille Martin")
    await page.get_by_label("Fonction", exact=True).select_option("ase_manager")
    await page.get_by_role("button", name="Accorder").click()
    row = page.locator("#table-habilitations tbody tr", has_text="Camille Martin")
    await expect(row).to_contain_text("cadre ASE")
    await expect(row).to_contain_text(f"Autorité {AUTHORITY}")
    assert await axe_violations(page) == []
    person = issue_token(None, sub=sub)
    async with api(server, person) as client:
        assert (await client.get("/v1/audit")).status_code == 200
        await row.get_by_role("button", name="Retirer").click()
        await expect(row).to_have_count(0)
        assert (await client.get("/v1/audit")).status_code == 403
    # A placement service's token is refused by the API, and the page says so.
    tab2 = await open_tab(
        browser,
        server,
        f"/ui/autorites/{AUTHORITY}/habilitations",
        issue_token("department", authority=AUTHORITY),
    )
    await expect(tab2.page.locator("#alerte-page")).to_contain_text("réservée")
    await shot(tab, "habilitations")
    tab.check()


SIZES = {"ordinateur": (1366, 900), "telephone": (390, 844)}


async def audit(tab: Tab, name: str) -> None:
    """At both sizes: 0 axe-core violations of any impact, no sideways scrolling, and a
    full-page screenshot ``ui-etat-<name>-<size>.png`` in the artefacts folder."""
    page = tab.page
    for size, (width, height) in SIZES.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(150)
        assert await axe_violations(page) == [], (name, size)
        assert await horizontal_overflow(page) == 0, (name, size)
        await page.screenshot(path=str(ARTIFACTS / f"ui-etat-{name}-{size}.png"), full_page=True)


async def test_every_page_and_state_is_accessible_at_both_sizes(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """The issue's list of pages and states, each at 1366×900 and 390×844: axe-core finds no
    violation of any impact, nothing overflows, and a screenshot of each is kept."""
    # Signed out: sign-in (empty, then refused), the footer's pages, a page not found.
    tab = await open_tab(browser, server, "/ui/connexion")
    await expect(tab.page.locator("#mode-local")).to_be_visible()
    await audit(tab, "connexion")
    await tab.page.get_by_label("Numéro FINESS").fill("690000019")
    await tab.page.get_by_role("button", name="Se connecter").click()
    await expect(tab.page.locator("#erreur-connexion")).to_contain_text("Connexion refusée")
    await audit(tab, "connexion-erreur")
    for path, name in [
        ("/ui/accessibilite", "accessibilite"),
        ("/ui/mentions-legales", "mentions-legales"),
        ("/ui/donnees-personnelles", "donnees-personnelles"),
        ("/ui/departements/99", "introuvable"),
    ]:
        await tab.page.goto(path)
        await expect(tab.page.locator("h1")).to_be_visible()
        await audit(tab, name)
    tab.check()

    # National: default, then an authority's panel open.
    national = await open_tab(browser, server, "/ui/national", issue_token("national"))
    await expect(national.page.locator("#a-69M")).to_be_visible()
    await audit(national, "national")
    await national.page.locator("#a-69M").get_by_role("button").click()
    await expect(national.page.locator("#detail-departement")).to_contain_text("69M")
    await audit(national, "national-panneau")
    national.check()

    # Declaration: an establishment, a carer.
    home = await make_structure(pool, units=[{"name": "Les Saules", "installed": 4}])
    structure = issue_token("structure", finess=home["finess"])
    declare = await open_tab(browser, server, "/ui/declarer", structure)
    await expect(declare.page.get_by_role("button", name="+1 libre")).to_be_visible()
    await audit(declare, "declarer-etablissement")
    declare.check()
    carer = await make_carer(pool)
    mine = await open_tab(
        browser, server, "/ui/declarer", issue_token("carer", carer_id=str(carer))
    )
    await expect(mine.page.locator("#disponibilites")).to_be_visible()
    await audit(mine, "declarer-assistant-familial")
    mine.check()

    # The authority's dashboard: empty of requests of this test, then a waiting list, a
    # search (keyboard only), a hold, the feed lost.
    token = issue_token("department", authority=AUTHORITY)
    async with api(server, structure) as client:
        r = await client.put(
            f"/v1/units/{home['unit_ids'][0]}/capacity",
            json={"temporality": "current", "available": 2},
            headers=idem(),
        )
        assert r.status_code == 200, r.text
    dashboard = await open_tab(browser, server, DASHBOARD, token)
    page = dashboard.page
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    await audit(dashboard, "autorite")
    async with api(server, token) as client:
        r = await client.post("/v1/requests", json=lyon_request(9, "F", "A11Y"))
        assert r.status_code == 201, r.text
        reference = r.json()["reference"]
    await page.reload()
    row = page.locator("#table-attente tr", has_text=reference)
    await expect(row).to_be_visible()
    await audit(dashboard, "autorite-attente")
    # Keyboard only: "Chercher" for the request, then the search, then "Réserver".
    await page.set_viewport_size({"width": 1366, "height": 900})
    await row.get_by_role("button", name=f"Chercher une place pour {reference}").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#demande-choisie")).to_contain_text(reference)
    await page.locator("#form-recherche button[type=submit]").focus()
    await page.keyboard.press("Enter")
    summary = page.locator("#resume-resultats")
    await expect(summary).to_be_focused()
    await audit(dashboard, "autorite-resultats")
    offer = page.locator(".proposition", has_text="Les Saules")
    # Told apart by its ages too (the factory's unit takes 6 to 12 years), as the API says.
    await expect(offer.locator(".faits")).to_contain_text("6–12 ans")
    reserve = offer.get_by_role("button", name=re.compile(r"^Réserver — .*Les Saules"))
    await reserve.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#table-reservations")).to_contain_text(reference)
    await expect(page.locator("#titre-reservations")).to_be_focused()
    await audit(dashboard, "autorite-reservation")
    await page.context.set_offline(True)
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "deconnecte")
    await audit(dashboard, "autorite-deconnecte")
    await page.context.set_offline(False)
    dashboard.check()

    # The establishment's page with that orientation pending, then refused by keyboard.
    await declare.page.reload()
    item = declare.page.locator(".orientation", has_text="Les Saules")
    await expect(item).to_be_visible()
    await audit(declare, "declarer-orientation")
    await item.get_by_role("button", name="Refuser…").focus()
    await declare.page.keyboard.press("Enter")
    await expect(item.get_by_label("Motif du refus")).to_be_focused()
    await declare.page.keyboard.press("ArrowDown")  # the first reason of the list
    await declare.page.keyboard.press("Tab")
    await declare.page.keyboard.type("Pas de place adaptée à son âge")
    await declare.page.keyboard.press("Tab")
    await declare.page.keyboard.press("Enter")
    await expect(declare.page.locator("#orientations")).to_contain_text("Orientation refusée")
    await audit(declare, "declarer-orientation-refusee")
    declare.check()


async def test_a_child_s_disability_in_the_search_by_keyboard(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """The search form asks a child's MDPH notification and disability service once a profile
    is chosen (not before: the API refuses them without one), sends them as the API reads them,
    and each proposal says the offer's word on the profile: « handicap : spécialisé », or the
    relaxation disability_unstated for an offer silent on it. Keyboard only; axe 0 and no
    overflow at both sizes with the fields shown and the results."""
    home = await make_structure(
        pool,
        units=[
            {"name": "Pôle autisme", "installed": 6, "disability_specialised": ["tsa"]},
            {"name": "Sans mot sur le handicap", "installed": 6},
        ],
    )
    async with api(server, issue_token("structure", finess=home["finess"])) as client:
        for unit in home["unit_ids"]:
            r = await client.put(
                f"/v1/units/{unit}/capacity",
                json={"temporality": "current", "available": 1},
                headers=idem(),
            )
            assert r.status_code == 200, r.text
    tab = await open_tab(browser, server, DASHBOARD, issue_token("department", authority=AUTHORITY))
    page = tab.page
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    child = page.locator("#liste-enfants .enfant").first
    notified = child.get_by_label("Notification MDPH")
    await expect(notified).to_be_hidden()
    # Keyboard: open the profiles, check « Troubles du spectre autistique » with Space.
    await child.locator("summary").focus()
    await page.keyboard.press("Enter")
    await child.get_by_label("Troubles du spectre autistique").focus()
    await page.keyboard.press("Space")
    await expect(notified).to_be_visible()
    await notified.focus()
    await page.keyboard.type("Oui")  # the select's type-ahead: « Oui, notifiée »
    await page.keyboard.press("Tab")
    await expect(child.get_by_label("Service qui suit l'enfant")).to_be_focused()
    await page.keyboard.type("SESSAD")
    await page.keyboard.press("Tab")
    await expect(child.get_by_label("Commune du service")).to_be_focused()
    await page.keyboard.type("69266")  # Villeurbanne
    await page.locator("#form-recherche button[type=submit]").focus()
    async with page.expect_request("**/v1/search") as sent:
        await page.keyboard.press("Enter")
    body = (await sent.value).post_data_json
    assert body["children"][0]["disability_profiles"] == ["tsa"]
    assert body["children"][0]["mdph_notified"] is True
    assert body["children"][0]["disability_service"] == {"kind": "SESSAD", "commune": "69266"}
    await expect(page.locator("#resume-resultats")).to_be_focused()
    stated = page.locator(".proposition", has_text="Pôle autisme")
    await expect(stated.locator(".badges")).to_contain_text("handicap : spécialisé")
    silent = page.locator(".proposition", has_text="Sans mot sur le handicap").locator(".badges")
    await expect(silent).to_contain_text("ne s'étant pas prononcé sur le profil de handicap")
    await expect(silent).not_to_contain_text("handicap : ")
    await audit(tab, "autorite-recherche-handicap")
    # Without a profile the fields go, and nothing of them is sent.
    await child.get_by_label("Troubles du spectre autistique").uncheck()
    await expect(notified).to_be_hidden()
    async with page.expect_request("**/v1/search") as sent:
        await page.locator("#form-recherche button[type=submit]").click()
    assert set((await sent.value).post_data_json["children"][0]) == {
        "age",
        "sex",
        "disability_profiles",
    }
    tab.check()


async def test_the_waiting_situation_is_edited_from_the_waiting_list(
    server: str, browser: Browser
) -> None:
    """Where a child lives while the measure waits (#18), recorded from the waiting list by
    keyboard (PUT /v1/requests/{id}/situation, If-Match the version the list showed); a
    colleague's change in between is not overwritten: the page says so and reloads."""
    token = issue_token("department", authority=AUTHORITY)
    async with api(server, token) as client:
        r = await client.post("/v1/requests", json=lyon_request(7, "F", "SITUATION"))
        assert r.status_code == 201, r.text
        request = r.json()
    tab = await open_tab(browser, server, DASHBOARD, token)
    page = tab.page
    await page.locator("#filtre-attente").fill(request["reference"])
    button = page.get_by_role(
        "button", name=f"Situation : Non renseigné — {request['reference']}, modifier"
    )
    await button.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#titre-situation")).to_be_focused()
    await audit(tab, "autorite-situation")
    await page.get_by_label("Situation", exact=True).focus()
    await page.keyboard.type("En accueil")  # type-ahead: « En accueil d'urgence »
    await page.get_by_role("button", name="Enregistrer la situation").focus()
    await page.keyboard.press("Enter")
    changed = page.get_by_role(
        "button", name=f"Situation : En accueil d'urgence — {request['reference']}, modifier"
    )
    await expect(changed).to_be_focused()
    async with api(server, token) as client:
        r = await client.get(f"/v1/requests/{request['id']}")
        assert r.json()["situation"]["code"] == "accueil_urgence"
        version = r.json()["version"]
        # A colleague records another situation meanwhile.
        r = await client.put(
            f"/v1/requests/{request['id']}/situation",
            json={"code": "hopital"},
            headers={"If-Match": f'"{version}"'},
        )
        assert r.status_code == 200, r.text
    await changed.click()
    await page.get_by_role("button", name="Enregistrer la situation").click()
    await expect(page.locator("#action-attente").get_by_role("alert")).to_contain_text(
        "a changé entre-temps"
    )
    await expect(
        page.get_by_role(
            "button",
            name=f"Situation : Maintenu à l'hôpital faute de place — {request['reference']},"
            " modifier",
        )
    ).to_be_visible()
    async with api(server, token) as client:
        r = await client.get(f"/v1/requests/{request['id']}")
        assert r.json()["situation"]["code"] == "hopital"
    tab.check()
