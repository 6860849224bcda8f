"""The steering pages of #18 in a real headless Chromium against a real server (``places run``)
on its own database and Redis, as tests/test_ui_browser.py runs them.

The national dashboard shows the indicators of children (secrecy applied: « < 5 »), their
12-month trends (an SVG and its data table), the origin → host matrix of placements outside
the authority as an accessible table, and downloads of the existing exports; the authority's
dashboard shows its own exact indicators with a drill-down to its requests, cancels a request
and records a child's exit with a coded reason. Every state checked: 0 axe-core violation of
any impact at 1366×900 and 390×844, nothing wider than a 320 px screen, reached by keyboard;
screenshots ``ui-pilotage-*.png`` in the artefacts folder.
"""

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
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
from tests.support.factories import idem, new_unit
from tests.test_ui_browser import Tab, api, lyon_request, open_tab

pytestmark = [
    pytest.mark.database,
    pytest.mark.server,
    pytest.mark.browser,
    pytest.mark.timeout(240),
]

AUTHORITY = "69M"
DASHBOARD = f"/ui/autorites/{AUTHORITY}"
SIZES = {"ordinateur": (1366, 900), "telephone": (390, 844)}
PHONE = 320


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with page_stack("ui_steering") as running:
        yield running


@pytest.fixture(scope="module")
def server(stack: Stack) -> str:
    return stack.base


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(stack.dsn, min_size=1, max_size=3)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


async def audit(tab: Tab, name: str) -> None:
    """At 1366×900 and 390×844: no axe-core violation of any impact, no sideways scrolling
    (nor at 320 px), and a full-page screenshot ``ui-pilotage-<name>-<size>.png``."""
    page = tab.page
    for size, (width, height) in SIZES.items():
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(150)
        assert await axe_violations(page) == [], (name, size)
        assert await horizontal_overflow(page) == 0, (name, size)
        shot = ARTIFACTS / f"ui-pilotage-{name}-{size}.png"
        await page.screenshot(path=str(shot), full_page=True)
    await page.set_viewport_size({"width": PHONE, "height": 800})
    await page.wait_for_timeout(150)
    assert await horizontal_overflow(page) == 0, (name, PHONE)
    await page.set_viewport_size({"width": 1366, "height": 900})


async def tab_to(page: Page, selector: str, presses: int = 400) -> None:
    """Move the focus with the Tab key only until ``selector`` has it (a keyboard user's
    way); fails when it never does."""
    for _ in range(presses):
        if await page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never reached with the Tab key")


def published(value: int | None) -> str:
    """A count as the pages write it: « < 5 » when hidden by secrecy."""
    return "< 5" if value is None else f"{value:,}".replace(",", "\u202f")


def months_back(k: int) -> datetime:
    today = local_today(None)
    year, month = divmod(today.year * 12 + today.month - 1 - k, 12)
    return datetime(year, month + 1, 5, 12, tzinfo=UTC)


async def ask(server: str, tag: str, days_ago: int, n: int = 1, **over: Any) -> dict[str, Any]:
    """A request of the Métropole decided ``days_ago`` days ago for ``n`` children."""
    body = lyon_request(8, "F", tag)
    body["children"] = body["children"] * n
    body["measure"]["decided_on"] = (local_today("69") - timedelta(days=days_ago)).isoformat()
    body.update(over)
    async with api(server, issue_token("department", authority=AUTHORITY)) as client:
        r = await client.post("/v1/requests", json=body, headers=idem())
        assert r.status_code == 201, r.text
        return r.json()


async def place(server: str, pool: asyncpg.Pool, request: dict[str, Any], **where: str) -> str:
    """The request held and admitted in a new unit (of 69M, or ``department``/``commune``);
    the placement's (hold's) id."""
    async with httpx.AsyncClient(base_url=server) as plain:
        unit = await new_unit(plain, pool, **where)
    async with api(server, issue_token("department", authority=AUTHORITY)) as client:
        r = await client.post(
            "/v1/holds",
            json={"request_id": request["id"], "target": {"kind": "unit", "id": unit["id"]}},
            headers=idem(),
        )
        assert r.status_code == 201, r.text
        hold_id = r.json()["id"]
        r = await client.post(f"/v1/holds/{hold_id}/admit", headers=idem())
        assert r.status_code == 200, r.text
    return str(hold_id)


async def past_waiting(pool: asyncpg.Pool, n: int, months: int) -> None:
    """``n`` siblings of the Métropole waiting since ``months`` months back (written straight
    to the table with its past dates, as the history they stand for)."""
    at = months_back(months)
    children = json.dumps(
        [{"age_months": 100, "sex": "M", "disability_profiles": []} for _ in range(n)]
    )
    await pool.execute(
        "INSERT INTO placement_requests (id, department, authority, reference, children,"
        " origin_commune, origin_location, timing, public, formula, urgency, measure_kind,"
        " decided_on, created_by, created_at, updated_at)"
        " SELECT $1, '69', '69M', $2, $3::text::jsonb, insee, location, 'durable', 'mineur',"
        " 'enfant', 'days', 'judicial', $4, 'test', $5, $5 FROM communes WHERE insee = '69123'",
        uuid.uuid4(),
        f"PASSE-{uuid.uuid4().hex[:8]}",
        children,
        at.date(),
        at,
    )


async def test_the_national_dashboard_shows_children_trends_flows_and_downloads(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    await past_waiting(pool, 6, 3)  # 6 children waiting at the end of the last 3 months
    await ask(server, "NAT-HOPITAL", 40, situation={"code": "hopital"})
    # A child of the Métropole placed in Bourg-en-Bresse (Ain): one flow 69M → 01, "< 5".
    placement = await place(
        server, pool, await ask(server, "NAT-AIN", 12), department="01", commune="01053"
    )
    # Dated yesterday: the national windows end with the last closed day (secrecy, #18).
    await pool.execute(
        "UPDATE request_events SET occurred_at = occurred_at - interval '1 day'"
        " WHERE hold_id = $1 AND event = 'admitted'",
        uuid.UUID(placement),
    )
    national = issue_token("national")
    async with api(server, national) as client:
        children = (await client.get("/v1/stats/children")).json()
        trends = (await client.get("/v1/stats/trends?months=12")).json()
        flows = (await client.get("/v1/stats/flows")).json()
    tab = await open_tab(browser, server, "/ui/national", national, width=1366)
    page = tab.page
    totals = children["totals"]
    await expect(page.locator("#e-attente")).to_have_text(published(totals["children_waiting"]))
    await expect(page.locator("#e-non-executees-30")).to_have_text(
        published(totals["not_executed"]["30"])
    )
    situations = page.locator("#table-situations")
    await expect(situations.locator("tr", has_text="Maintenu à l'hôpital")).to_contain_text(
        published(totals["situations"]["hopital"])
    )
    # The Métropole's row: its counts as the national view publishes them (secrecy applied).
    mine = next(i for i in children["items"] if i["authority"] == AUTHORITY)
    row = page.locator(f"#e-{AUTHORITY}")
    await expect(row).to_contain_text(published(mine["children_waiting"]))
    await expect(row.locator("td").nth(4)).to_have_text(published(mine["situations"]["hopital"]))

    # Trends: twelve closed months, the last ones with the 6 children of the past request.
    fr = [i for i in trends["items"] if i["authority"] == "FR"]
    assert len(fr) == 12 and fr[-1]["children_waiting"] == 6
    table = page.locator("#table-tendances")
    await expect(table.locator("tbody tr")).to_have_count(12)
    await expect(table.locator("tbody tr").last.locator("td").first).to_have_text("6")
    await expect(table.locator("tbody tr").nth(9).locator("td").nth(1)).to_have_text("+6")
    await expect(page.locator("#graphique-tendances svg")).to_have_attribute(
        "aria-label", re.compile("Enfants en attente")
    )

    # Flows: the matrix, its row of the Métropole, the Ain's column, the hidden cell.
    assert {"origin": AUTHORITY, "host": "01", "children": None} in flows["cells"]
    matrix = page.locator("#table-flux")
    await expect(matrix.locator("thead th")).to_have_text(
        ["Origine / accueil", "01", "Total hors autorité"]
    )
    origin = matrix.locator("tbody tr", has_text="69M — Métropole de Lyon")
    await expect(origin.locator("td")).to_have_text(["< 5", "< 5"])
    await expect(matrix.locator("tfoot")).to_contain_text("< 5")

    # The flows' table and the downloads are reached with the Tab key.
    await page.locator("#export-csv").focus()
    await tab_to(page, "[role=region]:has(> #table-flux)")
    await tab_to(page, "[data-export='/v1/opendata/monthly.csv']")
    async with page.expect_download() as download:
        await page.keyboard.press("Enter")
    name = (await download.value).suggested_filename
    assert name.startswith("places-mensuel-") and name.endswith(".csv"), name
    async with page.expect_download() as download:
        await page.locator("[data-export='/v1/opendata/monthly.schema.json']").click()
    assert (await download.value).suggested_filename.endswith(".schema.json")
    await audit(tab, "national")
    tab.check()


async def test_the_authority_dashboard_drills_down_from_its_indicators(
    server: str, browser: Browser
) -> None:
    tag = uuid.uuid4().hex[:6]
    late = await ask(server, f"LATE-{tag}", 40, situation={"code": "hopital"})
    very = await ask(server, f"VERY-{tag}", 100, n=2, situation={"code": "accueil_urgence"})
    fresh = await ask(server, f"FRESH-{tag}", 5)
    token = issue_token("department", authority=AUTHORITY)
    async with api(server, token) as client:
        r = await client.get(f"/v1/stats/children/{AUTHORITY}")
        assert r.status_code == 200, r.text
        mine = r.json()["items"][0]
    tab = await open_tab(browser, server, DASHBOARD, token, width=1366)
    page = tab.page
    await expect(page.locator("#i-attente")).to_have_text(str(mine["children_waiting"]))
    thirty = page.locator("[data-indicateur='days:30']")
    n = mine["not_executed"]["30"]
    await expect(thirty).to_have_text(f"À 30 jours ou plus : {n} enfant{'s' if n > 1 else ''}")
    await audit(tab, "autorite-indicateurs")
    # Keyboard: the indicator opens the list of its requests, the heading takes the focus.
    await tab_to(page, "[data-indicateur='days:30']")
    await page.keyboard.press("Enter")
    await expect(page.locator("#titre-detail-indicateur")).to_be_focused()
    await expect(thirty).to_have_attribute("aria-pressed", "true")
    listed = page.locator("#table-detail-indicateur tbody")
    await expect(listed).to_contain_text(late["reference"])
    await expect(listed).to_contain_text(very["reference"])
    await expect(listed).not_to_contain_text(fresh["reference"])
    await expect(page.locator("#titre-detail-indicateur")).to_contain_text(
        "Mesures non exécutées à 30 jours ou plus"
    )
    await audit(tab, "autorite-detail")
    # Where they wait: the children kept in hospital, the request of LATE only.
    await page.locator("[data-indicateur='situation:hopital']").click()
    await expect(listed).to_contain_text(late["reference"])
    await expect(listed).not_to_contain_text(very["reference"])
    await page.get_by_role("button", name="Fermer la liste").click()
    await expect(page.locator("[data-indicateur='situation:hopital']")).to_be_focused()
    await expect(page.locator("#table-detail-indicateur")).to_have_count(0)
    tab.check()


async def test_a_request_is_cancelled_and_an_exit_recorded_with_coded_reasons(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    tag = uuid.uuid4().hex[:6]
    request = await ask(server, f"CANCEL-{tag}", 3)
    placed = await ask(server, f"EXIT-{tag}", 8)
    placement = await place(server, pool, placed)
    token = issue_token("department", authority=AUTHORITY)
    tab = await open_tab(browser, server, DASHBOARD, token, width=1366)
    page = tab.page
    await page.locator("#filtre-attente").fill(request["reference"])
    cancel = page.get_by_role("button", name=f"Annuler… — la demande {request['reference']}")
    await cancel.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#titre-annulation")).to_be_focused()
    # Without a reason nothing is sent: the error beside the field, the focus on it.
    await page.get_by_role("button", name="Annuler la demande").click()
    await expect(page.locator("#action-attente").get_by_role("alert")).to_contain_text(
        "Choisissez le motif"
    )
    await expect(page.locator("#annulation-code")).to_be_focused()
    await audit(tab, "autorite-annulation")
    await page.keyboard.type("Demande en")  # type-ahead: « Demande en double »
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Précisions (facultatif)")).to_be_focused()
    await page.keyboard.type("saisie deux fois")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("#titre-attente")).to_be_focused()
    await expect(page.locator("#table-attente")).not_to_contain_text(request["reference"])
    event = await pool.fetchrow(
        "SELECT e.reason_code, e.reason, r.status FROM request_events e"
        " JOIN placement_requests r ON r.id = e.request_id"
        " WHERE e.request_id = $1 AND e.event = 'cancelled'",
        uuid.UUID(request["id"]),
    )
    assert dict(event) == {
        "reason_code": "doublon",
        "reason": "saisie deux fois",
        "status": "cancelled",
    }

    # The exit of the child placed: « Sortie… », a coded reason, no text.
    row = page.locator(f"#p-{placed['id']}")
    await expect(row).to_contain_text(placed["reference"])
    await row.get_by_role("button", name=f"Sortie… — {placed['reference']}").click()
    await expect(page.locator("#titre-sortie")).to_be_focused()
    await page.get_by_label("Motif (obligatoire)").select_option(
        label="Majorité ou fin de prise en charge jeune majeur"
    )
    await audit(tab, "autorite-sortie")
    await page.get_by_role("button", name="Enregistrer la sortie").click()
    await expect(page.locator("#titre-accueillis")).to_be_focused()
    await expect(page.locator(f"#p-{placed['id']}")).to_have_count(0)
    exited = await pool.fetchrow(
        "SELECT e.reason_code, e.reason, h.status FROM request_events e"
        " JOIN holds h ON h.id = e.hold_id WHERE e.hold_id = $1 AND e.event = 'exited'",
        uuid.UUID(placement),
    )
    assert dict(exited) == {"reason_code": "majorite", "reason": None, "status": "exited"}
    tab.check()
