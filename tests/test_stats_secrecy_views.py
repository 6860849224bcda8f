"""Statistical secrecy across the national views (#18), on hand-computed scenarios:

* a count below 5 hidden by ``/v1/stats/children`` is published by no other national view —
  ``/v1/stats/authorities``, ``/v1/stats/departments`` (JSON and CSV), ``/v1/stats/coverage``
  — neither as a count nor through the tension, while the authority's own services read it
  exact;
* a window that would difference another into a day's count (31 days beside 30) is refused
  in the national views, and free for the authority's own.

Scenarios in the Indre (36) and the Haute-Vienne (87), where no other test puts offer or
requests: their figures are this module's own. Real database, in-process app.
"""

import csv
import io
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from api.requests.service import local_today
from api.stats import repository
from tests.support.factories import bearer, hold, new_unit, request_body

pytestmark = pytest.mark.usefixtures("pool")

NATIONAL = bearer("national")
# The Indre: no other test places anything there (test_stats_opendata_time has the Creuse).
INDRE, CHATEAUROUX = "36", "36044"
HAUTE_VIENNE, LIMOGES = "87", "87085"


async def territory(owner_pool: asyncpg.Pool, code: str, name: str, insee: str, town: str) -> None:
    """The department and one commune (authority: the department), when the test database
    does not have them yet."""
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO departments (code, name, region_code, region_name, location)"
            " VALUES ($1, $2, '75', 'Nouvelle-Aquitaine',"
            " ST_SetSRID(ST_MakePoint(1.5, 46.0), 4326)::geography) ON CONFLICT DO NOTHING",
            code,
            name,
        )
        await conn.execute(
            "INSERT INTO communes (insee, name, department, population, precision, location,"
            " authority) VALUES ($1, $2, $3, 13000, 'geonames',"
            " ST_SetSRID(ST_MakePoint(1.6, 46.1), 4326)::geography, $3)"
            " ON CONFLICT DO NOTHING",
            insee,
            town,
            code,
        )


async def waiting(pool: asyncpg.Pool, days_ago: int) -> None:
    """A waiting request of one child of the Indre, decided ``days_ago`` days ago (no
    child key: its own child)."""
    async with pool.acquire() as conn:
        authority = await conn.fetchval(
            """
            INSERT INTO placement_requests
                   (department, reference, children, origin_commune, origin_location,
                    timing, public, formula, urgency, measure_kind, decided_on, created_by)
            SELECT $1, $2, $3, insee, location, 'durable', 'mineur', 'enfant', 'days',
                   'judicial', $5, 'test'
              FROM communes WHERE insee = $4
            RETURNING authority
            """,
            INDRE,
            f"SV-{uuid.uuid4().hex[:10]}",
            [{"age_months": 96, "sex": "F", "disability_profiles": []}],
            CHATEAUROUX,
            local_today(INDRE) - timedelta(days=days_ago),
        )
    assert authority == INDRE


async def get(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    r = await client.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def row(items: list[dict[str, Any]], key: str, code: str) -> dict[str, Any]:
    return next(i for i in items if i[key] == code)


async def csv_row(client: httpx.AsyncClient, path: str, code: str) -> dict[str, str]:
    r = await client.get(path, headers=NATIONAL)
    assert r.status_code == 200, r.text
    header, *lines = csv.reader(io.StringIO(r.content.decode("utf-8")[1:]), delimiter=";")
    return next(dict(zip(header, line, strict=True)) for line in lines if line[0] == code)


async def national_rows(client: httpx.AsyncClient) -> dict[str, Any]:
    """The Indre as every national view publishes it."""
    return {
        "authorities": row(
            (await get(client, "/v1/stats/authorities", NATIONAL))["items"], "authority", INDRE
        ),
        "departments": row(
            (await get(client, "/v1/stats/departments", NATIONAL))["items"], "department", INDRE
        ),
        "authorities.csv": await csv_row(client, "/v1/stats/authorities.csv", INDRE),
        "departments.csv": await csv_row(client, "/v1/stats/departments.csv", INDRE),
        "coverage": row(
            (await get(client, "/v1/stats/coverage", NATIONAL))["items"], "authority", INDRE
        ),
    }


async def test_a_count_below_5_is_hidden_in_every_national_view(
    client: httpx.AsyncClient, pool: asyncpg.Pool, owner_pool: asyncpg.Pool
) -> None:
    await territory(owner_pool, INDRE, "Indre", CHATEAUROUX, "Châteauroux")
    # The Indre's whole offer: one unit, 10 places open, 4 free.
    await new_unit(client, pool, available=4, installed=10, department=INDRE, commune=CHATEAUROUX)
    before = await national_rows(client)

    # Three children start waiting: decided 40, 10 and 5 days ago.
    for days_ago in (40, 10, 5):
        await waiting(pool, days_ago)

    # The Indre's own services: exact. Tension (10 − 4 + 3) / 10 = 0.9.
    creuse = bearer("department", authority=INDRE)
    own = await get(client, f"/v1/stats/authorities?authority={INDRE}", creuse)
    assert own["exact"] is True
    mine = own["items"][0]
    assert (mine["open_places"], mine["available"], mine["carer_places_available"]) == (10, 4, 0)
    assert {f: mine[f] for f in repository.WAITING_FIELDS} == {
        "requests_waiting": 3,
        "children_waiting": 3,
        "oldest_waiting_days": 40,
        "measures_not_executed": 1,  # 30 days or more: the one of 40 days
    }
    assert mine["tension"] == 0.9
    children = (await get(client, f"/v1/stats/children/{INDRE}", creuse))["items"][0]
    assert children["children_waiting"] == 3
    assert children["not_executed"] == {"15": 1, "30": 1, "90": 0}
    coverage = await get(client, f"/v1/stats/coverage?authority={INDRE}", creuse)
    assert coverage["items"][0]["tension"] == 0.9

    # The national view of children: 3 is "< 5" (and 1 not executed at 15 and 30 days).
    national = await get(client, "/v1/stats/children", NATIONAL)
    ours = row(national["items"], "authority", INDRE)
    assert ours["children_waiting"] is None and "children_waiting" in ours["suppressed"]
    assert ours["not_executed"]["15"] is None and ours["not_executed"]["30"] is None

    # Every other national view: no count, and the tension (10 − 4) / 10 = 0.6 without the
    # waiting list — the same publication as before the three children waited, so no
    # difference of two calls gives them away either.
    after = await national_rows(client)
    assert after == before
    for key in ("authorities", "departments"):
        published = after[key]
        assert {f: published[f] for f in repository.WAITING_FIELDS} == dict.fromkeys(
            repository.WAITING_FIELDS
        )
        assert published["tension"] == 0.6
        free = published["available"] + published["carer_places_available"]
        assert (
            round(published["tension"] * published["open_places"])
            - (published["open_places"] - free)
            == 0
        ), "the tension gives no child back"
    for key in ("authorities.csv", "departments.csv"):
        assert all(after[key][f] == "" for f in repository.WAITING_FIELDS)
        assert after[key]["tension"] == "0,600"
    assert after["coverage"]["tension"] == 0.6


def paris_noon(day: date) -> datetime:
    return datetime.combine(day, time(12), ZoneInfo("Europe/Paris"))


@pytest.mark.parametrize("endpoint", ["children", "flows"])
async def test_a_differencing_window_is_refused_nationally(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    """30 and 31 days side by side would give the 31st day's count: only 30, 90 and 365
    days are published nationally, each up to yesterday; the authority's own services keep
    any window from 7 to 366 days, up to today."""
    yesterday = (local_today(None) - timedelta(days=1)).isoformat()
    for window in (30, 90, 365):
        page = await get(client, f"/v1/stats/{endpoint}?window_days={window}", NATIONAL)
        assert (page["window_days"], page["window_last_day"]) == (window, yesterday)
    for window in (7, 29, 31, 89, 364, 366):
        r = await client.get(f"/v1/stats/{endpoint}?window_days={window}", headers=NATIONAL)
        assert r.status_code == 422, (window, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        (error,) = r.json()["errors"]
        assert error["field"] == "window_days" and error["choices"] == [30, 90, 365]
    # Whoever asks: an authority's services reading the national view too.
    r = await client.get(
        f"/v1/stats/{endpoint}?window_days=31", headers=bearer("department", authority="69M")
    )
    assert r.status_code == 422
    page = await get(
        client,
        f"/v1/stats/{endpoint}/69M?window_days=31",
        bearer("department", authority="69M"),
    )
    assert (page["window_days"], page["window_last_day"]) == (31, local_today(None).isoformat())


async def test_a_day_differenced_out_is_exact_for_its_authority_only(
    client: httpx.AsyncClient, pool: asyncpg.Pool, owner_pool: asyncpg.Pool
) -> None:
    """A child of the Haute-Vienne admitted 30 days before yesterday — in a 31-day national
    window, not in the 30-day one, had it been allowed. Its own services read it (window 31:
    1 admission, window 30: 0); the nation reads "< 5" over 90 days and cannot ask 31."""
    await territory(owner_pool, HAUTE_VIENNE, "Haute-Vienne", LIMOGES, "Limoges")
    limousin = bearer("department", authority=HAUTE_VIENNE)
    unit = await new_unit(client, pool, available=3, department=HAUTE_VIENNE, commune=LIMOGES)
    today = local_today(None)
    body = request_body(
        department=HAUTE_VIENNE,
        origin={"commune": LIMOGES},
        measure={"kind": "judicial", "decided_on": (today - timedelta(days=45)).isoformat()},
    )
    r = await client.post("/v1/requests", json=body, headers=limousin)
    assert r.status_code == 201, r.text
    request = r.json()
    h = await hold(client, request, "unit", unit["id"])
    assert h.status_code == 201, h.text
    r = await client.post(f"/v1/holds/{h.json()['id']}/admit", headers=limousin)
    assert r.status_code == 200, r.text
    admitted_on = today - timedelta(days=31)  # the 31st day before today: yesterday − 30
    async with pool.acquire() as conn:
        moved = await conn.execute(
            "UPDATE request_events SET occurred_at = $2"
            " WHERE request_id = $1 AND event = 'admitted'",
            uuid.UUID(request["id"]),
            paris_noon(admitted_on),
        )
    assert moved == "UPDATE 1"

    def admissions(page: dict[str, Any]) -> Any:
        return page["items"][0]["execution_delay_days"]

    own = f"/v1/stats/children/{HAUTE_VIENNE}"
    # The own window ends today: 31 days reach back to today − 30, 32 to today − 31.
    assert admissions(await get(client, f"{own}?window_days=31", limousin))["admissions"] == 0
    exact = admissions(await get(client, f"{own}?window_days=32", limousin))
    assert exact == {"admissions": 1, "median": 14, "p90": 14}  # decided 45 days ago
    national = await get(client, "/v1/stats/children?window_days=90", NATIONAL)
    ours = row(national["items"], "authority", HAUTE_VIENNE)
    assert ours["execution_delay_days"]["admissions"] is None  # 1 is "< 5"
    assert ours["execution_delay_days"]["median"] is None  # a median of 1 is one child's
    assert "execution_delay_days.admissions" in ours["suppressed"]
    r = await client.get("/v1/stats/children?window_days=31", headers=NATIONAL)
    assert r.status_code == 422
