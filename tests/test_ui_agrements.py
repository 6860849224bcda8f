"""The agrément pages of #15 in a real headless Chromium against a real server (``places run``)
on its own database and Redis, as tests/test_ui_browser.py runs them.

What the issue's seventh deliverable promises, checked the way a user meets it: a carer reads
their agrément on their page — number, issuer, dates, capacity and derogation, ages, care
modes, state with its reason and dates, the renewal requested — and has nothing there to edit;
a suspended carer reads the decision and is offered no form; the authority's agrément service
(PMI) sees its agréments expiring within six months first, suspends one with a coded reason
that the page requires before anything is sent (the error beside the field, nothing written),
and the list — on its tab and on a colleague's, live — follows; a function without
``agrement.manage`` sees the list without any decision button. Every page state checked has
no axe-core violation and fits a 320 px screen, and the decision is taken with the keyboard
only.

The data is written with SQL (the columns of migration 0012 are on main); nothing is stubbed:
the pages call ``GET /v1/agrements…``, ``POST /v1/agrements/{id}/suspend`` and
``GET /v1/placements/to-review`` (helper A of #15) and read the carer's part from
``FosterCarerOut`` (helper B).
"""

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from api.auth import issue_token
from api.db import create_pool
from tests.support.browser import (
    Stack,
    axe_violations,
    chromium,
    horizontal_overflow,
    page_stack,
)
from tests.support.factories import idem, make_carer
from tests.test_ui_browser import api, lyon_request, open_tab, shot

pytestmark = [
    pytest.mark.database,
    pytest.mark.server,
    pytest.mark.browser,
    pytest.mark.timeout(180),
]

AUTHORITY = "69M"  # Villeurbanne (69266), make_carer's default commune, is in the Métropole
DASHBOARD = f"/ui/autorites/{AUTHORITY}"
PHONE = 320
LIVE = 2_000  # ms


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with page_stack("ui_agrements") as running:
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


def fr(day: date) -> str:
    """A day as the pages write it (01/05/2026)."""
    return day.strftime("%d/%m/%Y")


async def agrement_carer(
    pool: asyncpg.Pool,
    *,
    valid_until: date,
    capacity: int = 2,
    **columns: Any,
) -> tuple[uuid.UUID, str]:
    """A carer of the Métropole whose agrément ends on ``valid_until`` (issued five years
    before), with ``columns`` set as the issuer recorded them; its id and number."""
    carer = await make_carer(pool, capacity=min(capacity, 3))
    number = f"AF-69-{uuid.uuid4().hex[:8].upper()}"
    sets = ["agrement_number = $2", "issued_on = $3", "valid_until = $4", "agrement_capacity = $5"]
    args: list[Any] = [carer, number, valid_until - timedelta(days=5 * 365), valid_until, capacity]
    for name, value in columns.items():
        args.append(value)
        sets.append(f"{name} = ${len(args)}")
    await pool.execute(f"UPDATE foster_carers SET {', '.join(sets)} WHERE id = $1", *args)
    return carer, number


async def agrement_row(pool: asyncpg.Pool, carer: uuid.UUID) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT agrement_state, suspension_reason, suspended_from, agrement_version,"
        " available_places FROM foster_carers WHERE id = $1",
        carer,
    )


async def tab_to(page: Page, selector: str, presses: int = 80) -> None:
    """Move the focus with the Tab key only until ``selector`` has it (a keyboard user's
    way); fails when it never does."""
    for _ in range(presses):
        if await page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never reached with the Tab key")


async def grant(server: str, sub: str, function: str) -> str:
    """A person of the Métropole holding ``function`` (granted by its administrator); their
    token."""
    async with api(server, issue_token("authority_admin", authority=AUTHORITY)) as client:
        r = await client.post(
            f"/v1/authorities/{AUTHORITY}/habilitations",
            json={"sub": sub, "function": function, "display_name": f"Agent {function}"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code in (200, 201), r.text
    return issue_token(None, sub=sub)


# --- the carer's page ----------------------------------------------------------------------


async def test_a_carer_reads_their_agrement_and_cannot_edit_it(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """Awaits ``GET /v1/agrements/{id}`` (A) for the agrément, and the carer's part of
    ``FosterCarerOut`` (B) for the preferences. The agrément is a description list — no
    field of it is an input — and the carer's form offers only their own part: free places up
    to the agrément's capacity, available or on leave (never suspended), preferences among
    the agrément's care modes only; the API refuses the carer an edit of the agrément."""
    until = date.today() + timedelta(days=400)
    renewal = date.today() - timedelta(days=3)
    carer, number = await agrement_carer(
        pool,
        valid_until=until,
        capacity=5,
        derogation_children=5,
        derogation_reason="fratrie",
        derogation_until=until,
        renewal_requested_on=renewal,
        timings=["durable", "urgence"],
        preferred_timings=["durable"],
    )
    token = issue_token("carer", carer_id=str(carer))
    tab = await open_tab(browser, server, "/ui/declarer", token, width=PHONE)
    page = tab.page
    card = page.locator("#agrement")
    await expect(card.get_by_role("heading", name="Mon agrément")).to_be_visible()
    for text in (
        number,
        "Métropole de Lyon (69M)",
        fr(until - timedelta(days=5 * 365)),
        fr(until),
        "5 enfants — dérogation pour 5 enfants (Accueil d'une fratrie",
        "0–18 ans",
        "Accueil durable",
        "Urgence",
        "Valide",
        f"demandé le {fr(renewal)}",
        "pas modifiable ici",
    ):
        await expect(card).to_contain_text(text)
    # Read-only: nothing of the agrément can be typed into or chosen.
    await expect(card.locator("input, select, textarea, button")).to_have_count(0)
    # The carer's own part.
    form = page.locator("#disponibilites")
    await expect(form.get_by_role("radio", name="Disponible pour accueillir")).to_have_count(1)
    await expect(form.get_by_role("radio", name="En congé")).to_have_count(1)
    await expect(form.get_by_role("radio", name=re.compile("Suspendu"))).to_have_count(0)
    await expect(form.locator("#af-places")).to_have_attribute("max", "5")
    modes = form.locator("input[name=af-pref-mode]")
    await expect(modes).to_have_count(2)  # the agrément's two modes, nothing else
    await expect(form.get_by_role("checkbox", name="Accueil durable")).to_be_checked()
    await expect(form.get_by_role("checkbox", name="Urgence")).not_to_be_checked()
    # Leave: its dates appear only when on leave.
    await expect(page.locator("#af-conge")).to_be_hidden()
    # A radio group is one Tab stop (the checked radio); the arrows choose within it.
    await tab_to(page, "input[name=af-statut][value=active]")
    await page.keyboard.press("ArrowRight")
    await expect(page.locator("input[name=af-statut][value=leave]")).to_be_checked()
    await expect(page.locator("#af-conge")).to_be_visible()
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    await shot(tab, "agrement-af")
    # The API, whatever a page shows: a carer never edits nor suspends their agrément.
    async with api(server, token) as client:
        r = await client.post(
            f"/v1/agrements/{carer}/suspend",
            json={"reason": "sante"},
            headers={"If-Match": '"1"', "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 403, r.text
    assert (await agrement_row(pool, carer))["agrement_state"] == "valid"
    tab.check()


async def test_a_suspended_carer_reads_the_decision_and_gets_no_form(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """Awaits ``GET /v1/agrements/{id}`` (A). The suspension (as the issuer records it: SQL
    here) is on the carer's page with its dates and its coded reason in French, and there is
    no declaration to send (CASF L421-6: the issuer's decision; the carer cannot lift it)."""
    since = date.today() - timedelta(days=2)
    back = date.today() + timedelta(days=60)
    carer, _ = await agrement_carer(
        pool,
        valid_until=date.today() + timedelta(days=900),
        agrement_state="suspended",
        suspended_from=since,
        suspended_until=back,
        suspension_reason="enquete_administrative",
    )
    tab = await open_tab(
        browser, server, "/ui/declarer", issue_token("carer", carer_id=str(carer)), width=PHONE
    )
    page = tab.page
    decision = page.locator("#decision-agrement")
    await expect(decision).to_contain_text(
        f"Votre agrément est suspendu depuis le {fr(since)} jusqu'au {fr(back)}"
    )
    await expect(decision).to_contain_text("Enquête administrative en cours")
    await expect(page.locator("#agrement [data-etat=suspended]")).to_have_text("Suspendu")
    await expect(page.get_by_role("button", name="Envoyer la déclaration")).to_have_count(0)
    await expect(page.get_by_role("radio")).to_have_count(0)
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    tab.check()


# --- the authority's dashboard -------------------------------------------------------------


async def test_the_agrement_service_suspends_with_a_required_coded_reason(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """Awaits ``GET /v1/agrements`` (its ``expiring_within_days``, ``state``, ``derogation``
    filters, ordered by ``valid_until``), ``POST /v1/agrements/{id}/suspend`` and the
    ``carer.agrement_updated`` event on the authority's feed (A).

    The Métropole's agrément service, with the keyboard only on a 320 px screen: the
    agréments expiring within six months come first, the nearest end first; "Suspendre…"
    opens the decision; sent without a reason, the page says so beside the reason and nothing
    is written; with one, the agrément is suspended (free places gone), the list shows it at
    once, and a colleague's dashboard shows it live."""
    soon = date.today() + timedelta(days=20)
    later = date.today() + timedelta(days=150)
    far = date.today() + timedelta(days=1200)
    first, first_number = await agrement_carer(pool, valid_until=soon)
    second, second_number = await agrement_carer(pool, valid_until=later)
    _, far_number = await agrement_carer(pool, valid_until=far)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE foster_carers SET available_places = 1 WHERE id = $1", first)
    token = issue_token("department", authority=AUTHORITY)
    colleague = await open_tab(browser, server, DASHBOARD, token)
    tab = await open_tab(browser, server, DASHBOARD, token, width=PHONE)
    page = tab.page
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    table = page.locator("#table-agrements")
    await expect(
        page.get_by_role("radio", name=re.compile("Expirent dans les 6 mois"))
    ).to_be_checked()
    await expect(table.locator(f"#agrement-{first}")).to_contain_text(first_number)
    await expect(table.locator(f"#agrement-{second}")).to_contain_text(second_number)
    await expect(table).not_to_contain_text(far_number)  # beyond six months: not in this list
    ids = await table.locator("tbody tr").evaluate_all("(rows) => rows.map((r) => r.id)")
    assert ids.index(f"agrement-{first}") < ids.index(f"agrement-{second}"), ids
    await expect(table.locator(f"#agrement-{first}")).to_contain_text("dans 20 jours")
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []

    # Keyboard only: reach the row's "Suspendre…" with Tab, open it with Enter.
    await tab_to(page, f"#agrement-{first} button[data-action=suspend]", presses=200)
    await page.keyboard.press("Enter")
    form = page.locator("form[data-action=suspend]")
    await expect(form.get_by_role("heading")).to_contain_text(
        f"Suspendre l'agrément {first_number}"
    )
    await expect(form.get_by_role("heading")).to_be_focused()
    before = await agrement_row(pool, first)
    # Sent without a reason: the error is beside the field, the field is marked, nothing sent.
    await tab_to(page, "form[data-action=suspend] button[type=submit]")
    await page.keyboard.press("Enter")
    error = page.locator("#ag-reason-erreur")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(
        "Motif : choisissez un motif dans la liste, il est obligatoire"
    )
    await expect(page.locator("#ag-reason")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#ag-reason")).to_be_focused()
    assert await agrement_row(pool, first) == before
    assert await axe_violations(page) == []
    await shot(tab, "agrement-motif-requis")
    # The coded reasons are the law's, in French; the migration's historical one is not offered.
    options = await page.locator("#ag-reason option").all_inner_texts()
    assert "Enquête administrative en cours" in options
    assert not any("antérieure" in o for o in options), options
    # Choose with the keyboard (the select has the focus), then send with Enter.
    await page.keyboard.press("ArrowDown")  # first coded reason: situation de danger
    await expect(page.locator("#ag-reason")).to_have_value("situation_de_danger")
    await tab_to(page, "form[data-action=suspend] button[type=submit]")
    await page.keyboard.press("Enter")
    await expect(form).to_have_count(0)
    row = table.locator(f"#agrement-{first}")
    await expect(row).to_contain_text("Suspendu")
    await expect(row).to_contain_text("Situation de danger pour les enfants accueillis")
    await expect(page.locator("#resume-agrements")).to_contain_text(
        f"Agrément suspendu : {first_number}"
    )
    after = await agrement_row(pool, first)
    assert after["agrement_state"] == "suspended"
    assert after["suspension_reason"] == "situation_de_danger"
    assert after["suspended_from"] == date.today()
    assert after["available_places"] == 0
    assert after["agrement_version"] == before["agrement_version"] + 1
    # The suspended list has it now; a reinstatement is offered there, not a suspension.
    await page.get_by_role("radio", name=re.compile("^Suspendus")).check()
    await expect(row).to_contain_text(first_number)
    await expect(row.locator("button[data-action=reinstate]")).to_have_count(1)
    await expect(row.locator("button[data-action=suspend]")).to_have_count(0)
    # The colleague's tab, untouched, follows live.
    await expect(colleague.page.locator(f"#agrement-{first}")).to_contain_text(
        "Suspendu", timeout=LIVE + 2_000
    )
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    await shot(tab, "agrements-suspendus")
    tab.check()
    colleague.check()


async def test_the_lists_of_suspended_and_derogations(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """Awaits ``GET /v1/agrements?state=suspended`` and ``?derogation=true`` (A): each list
    has the agréments it names, with the decision's reason and the derogation in French."""
    suspended, suspended_number = await agrement_carer(
        pool,
        valid_until=date.today() + timedelta(days=800),
        agrement_state="suspended",
        suspended_from=date.today() - timedelta(days=1),
        suspension_reason="sante",
    )
    derogation, derogation_number = await agrement_carer(
        pool,
        valid_until=date.today() + timedelta(days=700),
        capacity=4,
        derogation_children=4,
        derogation_reason="continuite_parcours",
    )
    tab = await open_tab(browser, server, DASHBOARD, issue_token("department", authority=AUTHORITY))
    page = tab.page
    table = page.locator("#table-agrements")
    await expect(page.locator("#compte-suspended")).to_have_text(re.compile(r"\(\d+\)"))
    await page.get_by_role("radio", name=re.compile("^Suspendus")).check()
    await expect(table.locator(f"#agrement-{suspended}")).to_contain_text("Raison de santé")
    await expect(table).not_to_contain_text(derogation_number)
    await page.get_by_role("radio", name=re.compile("^Avec dérogation")).check()
    await expect(table.locator(f"#agrement-{derogation}")).to_contain_text("4 (dérogation : 4)")
    await expect(table).not_to_contain_text(suspended_number)
    assert await axe_violations(page) == []
    tab.check()


async def test_a_function_without_the_agrement_service_sees_no_decision(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """Awaits ``GET /v1/agrements`` (A). An orientation officer reads the carers
    (``carers.read``) but decides nothing on an agrément (no ``agrement.manage``): the list
    is there, without a single decision button. The agrément service's own function
    (``pmi_agrement``: no children's data) gets the list and the buttons, and a dashboard
    that does not fail on what it may not read."""
    carer, number = await agrement_carer(pool, valid_until=date.today() + timedelta(days=40))
    officer = await grant(server, f"orientation-{uuid.uuid4().hex[:8]}", "orientation_officer")
    tab = await open_tab(browser, server, DASHBOARD, officer)
    page = tab.page
    row = page.locator(f"#agrement-{carer}")
    await expect(row).to_contain_text(number)
    await expect(page.locator("#agrements button[data-action]")).to_have_count(0)
    tab.check()

    pmi = await grant(server, f"pmi-{uuid.uuid4().hex[:8]}", "pmi_agrement")
    tab = await open_tab(browser, server, DASHBOARD, pmi, width=PHONE)
    page = tab.page
    row = page.locator(f"#agrement-{carer}")
    await expect(row.locator("button[data-action=suspend]")).to_have_count(1)
    await expect(page.locator("#recherche")).to_be_hidden()
    await expect(page.locator("#alerte-page")).to_be_hidden()
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    tab.check()


async def test_a_placement_to_review_appears_live(
    server: str, browser: Browser, pool: asyncpg.Pool
) -> None:
    """Awaits ``POST /v1/agrements/{id}/suspend``, ``GET /v1/placements/to-review`` and the
    ``placement.to_review`` (or ``carer.agrement_updated``) event on the feed (A). A child
    of the Métropole placed with a carer of the Métropole; the agrément is suspended: the
    placement appears on the dashboard's "to review" list, without reload, with the request's
    reference and the reason in French."""
    carer, _ = await agrement_carer(pool, valid_until=date.today() + timedelta(days=900))
    await pool.execute("UPDATE foster_carers SET available_places = 1 WHERE id = $1", carer)
    token = issue_token("department", authority=AUTHORITY)
    async with api(server, token) as client:
        r = await client.post("/v1/requests", json=lyon_request(7, "F", "REVOIR"), headers=idem())
        assert r.status_code == 201, r.text
        reference = r.json()["reference"]
        r = await client.post(
            "/v1/holds",
            json={
                "request_id": r.json()["id"],
                "target": {"kind": "carer", "id": str(carer)},
                "expires_in_minutes": 120,
            },
            headers=idem(),
        )
        assert r.status_code == 201, r.text
        r = await client.post(f"/v1/holds/{r.json()['id']}/admit", headers=idem())
        assert r.status_code in (200, 201), r.text
    tab = await open_tab(browser, server, DASHBOARD, token, width=PHONE)
    page = tab.page
    await expect(page.locator("#etat-direct")).to_have_attribute("data-etat", "direct")
    body = page.locator("#table-a-revoir tbody")
    await expect(body).not_to_contain_text(reference)
    version = (await agrement_row(pool, carer))["agrement_version"]
    async with api(server, token) as client:
        r = await client.post(
            f"/v1/agrements/{carer}/suspend",
            json={"reason": "procedure_penale"},
            headers={"If-Match": f'"{version}"', **idem()},
        )
        assert r.status_code == 200, r.text
    row = body.locator("tr", has_text=reference)
    await expect(row).to_contain_text("Procédure pénale en cours", timeout=LIVE + 2_000)
    await expect(row).to_contain_text("Suspendu")
    await expect(row).to_contain_text("a placé l'enfant")
    assert await horizontal_overflow(page) == 0
    assert await axe_violations(page) == []
    tab.check()
