"""Statistics per competent authority (issue 13): GET /v1/stats/authorities (and .csv), the
history of one authority, and the rule that ties the two views: each unit, carer and request
is counted exactly once per department (geography) and once per authority, so the two tables
have the same national totals; the Métropole de Lyon (69M) and the Rhône (69D) split 69, Corse
(20R) is 2A + 2B and Alsace (6AE) is 67 + 68. Real database, in-process app.

The session database is shared, so figures are checked as differences before/after this
module's own rows, which are the only ones in 69D, 2A, 2B, 67 and 68.
"""

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.requests.service import local_today
from api.settings import get_settings
from api.stats import repository
from api.stats.schemas import AuthorityStats
from geo.referential import load_authorities
from tests.support.factories import bearer, idem, make_carer, make_structure

NATIONAL = bearer("national")
KEY_FIELDS = ("authority", "name", "kind", "departments")
# (department, commune, authority) where this module puts offer and demand.
PLACES = [
    ("69", "69123", "69M"),  # Lyon
    ("69", "69264", "69D"),  # Villefranche-sur-Saône
    ("2A", "2A004", "20R"),  # Ajaccio
    ("2B", "2B033", "20R"),  # Bastia
    ("67", "67482", "6AE"),  # Strasbourg
    ("68", "68224", "6AE"),  # Mulhouse
]
SPLITS = {"69": ("69M", "69D"), "20R": ("2A", "2B"), "6AE": ("67", "68")}


async def page(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    r = await client.get(path, headers=NATIONAL)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def both_views(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    departments = await page(client, "/v1/stats/departments")
    authorities = await page(client, "/v1/stats/authorities")
    return departments, authorities


PUBLISHED = tuple(f for f in repository.COUNT_FIELDS if f not in repository.WAITING_FIELDS)
"""The counts a national view publishes (no figure of requests or children: secrecy)."""
WAITING = tuple(f for f in repository.COUNT_FIELDS if f in repository.WAITING_FIELDS)


def by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, int]]:
    return {i[key]: {f: i[f] for f in PUBLISHED} for i in items}


def minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {f: after[f] - before[f] for f in after}


def plus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {f: a[f] + b[f] for f in a}


async def own(client: httpx.AsyncClient, authority: str) -> dict[str, Any]:
    """The authority's own row, exact, as its services read it."""
    r = await client.get(
        f"/v1/stats/authorities?authority={authority}",
        headers=bearer("department", authority=authority),
    )
    assert r.status_code == 200, r.text
    assert r.json()["exact"] is True
    row: dict[str, Any] = r.json()["items"][0]
    return row


def occupancy(row: dict[str, Any]) -> float | None:
    if row["open_places"] <= 0:
        return None
    free = row["available"] + row["carer_places_available"]
    return round((row["open_places"] - free) / row["open_places"], 3)


async def declare(client: httpx.AsyncClient, unit_id: Any, finess: str, available: int) -> None:
    r = await client.put(
        f"/v1/units/{unit_id}/capacity",
        headers={**bearer("structure", finess=finess), **idem()},
        json={
            "temporality": "current",
            "installed": 10,
            "occupied": 10 - available,
            "available": available,
        },
    )
    assert r.status_code == 200, r.text


async def carer_with_places(
    client: httpx.AsyncClient, pool: asyncpg.Pool, department: str, commune: str, places: int
) -> uuid.UUID:
    carer = await make_carer(pool, department=department, commune=commune, capacity=3)
    r = await client.put(
        f"/v1/foster-carers/{carer}/availability",
        headers={**bearer("carer", carer_id=str(carer)), **idem()},
        json={"available_places": places, "status": "active", "until": None},
    )
    assert r.status_code == 200, r.text
    return carer


async def waiting_request(
    pool: asyncpg.Pool, department: str, commune: str, children: int, days_ago: int
) -> str:
    """A waiting request, straight in the table: only the row matters here. Its authority
    comes from the trigger (the origin commune's)."""
    decided = local_today(department) - timedelta(days=days_ago)
    async with pool.acquire() as conn:
        authority: str = await conn.fetchval(
            """
            INSERT INTO placement_requests
                   (department, reference, children, origin_commune, origin_location,
                    timing, public, formula, urgency, measure_kind, decided_on, created_by)
            SELECT $1, $2, $3, insee, location, 'durable', 'mineur', 'enfant', 'days',
                   'judicial', $5, 'test'
              FROM communes WHERE insee = $4
            RETURNING authority
            """,
            department,
            f"T-{uuid.uuid4().hex[:10]}",
            [
                {"age_months": (6 + i) * 12, "sex": "F", "disability_profiles": []}
                for i in range(children)
            ],
            commune,
            decided,
        )
    return authority


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (bearer("national"), 200),
        (bearer("department", authority="69M"), 200),
        (bearer("operator"), 200),
        (bearer("structure", finess="690000018"), 403),
        (bearer("carer", carer_id=str(uuid.uuid4())), 403),
        ({}, 401),
    ],
)
async def test_roles(client: httpx.AsyncClient, headers: dict[str, str], status: int) -> None:
    for path in (
        "/v1/stats/authorities",
        "/v1/stats/authorities.csv",
        "/v1/stats/history?authority=69M",
    ):
        r = await client.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)
        if status >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")


async def test_every_authority_in_the_referentials_order(client: httpx.AsyncClient) -> None:
    body = await page(client, "/v1/stats/authorities")
    referential = load_authorities()
    assert [i["authority"] for i in body["items"]] == list(referential)
    assert body["total"] == len(referential) == 100
    for item in body["items"]:
        authority = referential[item["authority"]]
        assert (item["name"], item["kind"], tuple(item["departments"])) == (
            authority.name,
            authority.kind,
            authority.departments,
        )
        assert list(item) == list(AuthorityStats.model_fields)  # key first, then the figures
    totals = body["totals"]
    assert (totals["authority"], totals["kind"], totals["departments"]) == ("FR", "", [])
    for name in PUBLISHED:
        assert totals[name] == sum(i[name] for i in body["items"]), name
    # A national view: no figure of requests or children, the tension without the waiting list.
    assert body["exact"] is False
    for item in (*body["items"], totals):
        assert all(item[name] is None for name in repository.WAITING_FIELDS), item
        assert item["tension"] == occupancy(item), item
    for child_level in ("reference", 'children"', "decided_on", "origin", "sex", 'age"'):
        assert child_level not in str(body)


async def test_each_row_is_counted_once_in_each_view(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    departments_before, authorities_before = await both_views(client)
    d_before = by(departments_before["items"], "department")
    a_before = by(authorities_before["items"], "authority")
    mine = sorted({authority for _, _, authority in PLACES})
    own_before = {code: await own(client, code) for code in mine}

    old = get_settings().unexecuted_after_days + 5
    for n, (department, commune, authority) in enumerate(PLACES, start=1):
        s = await make_structure(
            pool,
            department=department,
            commune=commune,
            units=[{"name": "Déclarée", "installed": 10}, {"name": "Muette", "installed": 4}],
        )
        await declare(client, s["unit_ids"][0], s["finess"], available=n)
        await carer_with_places(client, pool, department, commune, places=1)
        await make_carer(pool, department=department, commune=commune)  # active, no place
        assert await waiting_request(pool, department, commune, n, old + n) == authority
    # A request of the Rhône's department service (69) placed in Villefranche is the Rhône's.
    assert await waiting_request(pool, "69", "69264", 1, 1) == "69D"

    departments_after, authorities_after = await both_views(client)
    d = {k: minus(v, d_before[k]) for k, v in by(departments_after["items"], "department").items()}
    a = {k: minus(v, a_before[k]) for k, v in by(authorities_after["items"], "authority").items()}
    # The figures of requests and children: exact for each authority's own services only.
    own_after = {code: await own(client, code) for code in mine}
    for code in mine:
        a[code].update(
            {f: own_after[code][f] - own_before[code][f] for f in WAITING},
        )

    # Each place's own rows, in its authority.
    def own_rows(n: int) -> dict[str, int]:
        return {
            **dict.fromkeys(repository.COUNT_FIELDS, 0),
            "units": 2,
            "undeclared_units": 1,
            "installed": 14,
            "occupied": 10 - n,
            "available": n,
            "available_h24": n,  # no forecast declared: the current figure
            "available_h48": n,
            "available_d7": n,
            "carers": 2,
            "carers_active": 2,
            "carer_places_available": 1,
            "requests_waiting": 1,
            "children_waiting": n,
            "measures_not_executed": 1,
            "declarations": 3,  # the declared unit, the two active carers
            "open_places": 10 + 4 + 3 + 2,
        }

    expected: dict[str, dict[str, int]] = {}
    for n, (_department, _commune, authority) in enumerate(PLACES, start=1):
        expected[authority] = plus(
            expected.get(authority, dict.fromkeys(repository.COUNT_FIELDS, 0)), own_rows(n)
        )
    expected["69D"]["requests_waiting"] += 1  # the Rhône's recent request
    expected["69D"]["children_waiting"] += 1
    for authority, figures in expected.items():
        assert a[authority] == figures, authority

    # The splits: 69 = 69M + 69D, 20R = 2A + 2B, 6AE = 67 + 68, in this module's rows (the
    # published counts: the departments' table is a national view).
    def published(row: dict[str, int]) -> dict[str, int]:
        return {f: row[f] for f in PUBLISHED}

    assert d["69"] == plus(published(a["69M"]), published(a["69D"]))
    assert published(a["20R"]) == plus(d["2A"], d["2B"]) and d["2A"] != d["2B"]
    assert published(a["6AE"]) == plus(d["67"], d["68"]) and d["67"] != d["68"]
    assert a["69M"] != a["69D"]

    # Over the whole database: the same national totals, nothing counted twice or lost.
    for name in (*PUBLISHED, "tension"):
        assert departments_after["totals"][name] == authorities_after["totals"][name], name
    assert own_after["20R"]["oldest_waiting_days"] >= old + 4  # Bastia's, the older of the two
    # Its own services' tension counts the waiting list; the national view's does not.
    corse = own_after["20R"]
    assert corse["tension"] == repository.tension(corse) != occupancy(corse)
    national_corse = next(i for i in authorities_after["items"] if i["authority"] == "20R")
    assert national_corse["tension"] == occupancy(corse)


async def test_one_authority_and_the_csv(client: httpx.AsyncClient) -> None:
    everything = await page(client, "/v1/stats/authorities")
    lyon = next(i for i in everything["items"] if i["authority"] == "69M")
    one = await page(client, "/v1/stats/authorities?authority=69M")
    assert one["total"] == 1 and one["items"][0] == lyon
    assert {k: one["totals"][k] for k in repository.COUNT_FIELDS} == {
        k: lyon[k] for k in repository.COUNT_FIELDS
    }

    r = await client.get("/v1/stats/authorities.csv", headers=NATIONAL)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="places-autorites-' in r.headers["content-disposition"]
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    header, lines = rows[0], rows[1:]
    assert header == list(AuthorityStats.model_fields) and tuple(header[:4]) == KEY_FIELDS
    assert [line[0] for line in lines] == [i["authority"] for i in everything["items"]]
    csv_rows = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    assert csv_rows["20R"]["departments"] == "2A,2B"
    assert csv_rows["69M"]["name"] == "Métropole de Lyon"
    for item in everything["items"]:
        row = csv_rows[item["authority"]]
        assert int(row["available"]) == item["available"]
        if item["tension"] is not None:
            assert row["tension"] == f"{item['tension']:.3f}".replace(".", ",")
        assert all(row[f] == "" for f in repository.WAITING_FIELDS), row  # not published


async def test_exact_figures_for_the_authoritys_own_services_only(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """Lyon's services read Lyon's waiting figures exact (JSON and CSV); the Rhône's
    services, a national analyst, or Lyon's services without naming Lyon read the national
    view of the same row."""
    await waiting_request(pool, "69", "69123", 2, 3)
    lyon = bearer("department", authority="69M")
    exact = await own(client, "69M")
    assert exact["children_waiting"] >= 2 and exact["requests_waiting"] >= 1
    assert exact["tension"] == repository.tension(exact)
    for headers, path in (
        (NATIONAL, "/v1/stats/authorities?authority=69M"),
        (bearer("department", authority="69D"), "/v1/stats/authorities?authority=69M"),
        (lyon, "/v1/stats/authorities"),
    ):
        r = await client.get(path, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["exact"] is False
        row = next(i for i in body["items"] if i["authority"] == "69M")
        assert {f: row[f] for f in repository.WAITING_FIELDS} == dict.fromkeys(
            repository.WAITING_FIELDS
        )
        assert row["tension"] == occupancy(exact)
        assert {f: row[f] for f in PUBLISHED} == {f: exact[f] for f in PUBLISHED}

    r = await client.get("/v1/stats/authorities.csv?authority=69M", headers=lyon)
    header, line = list(csv.reader(io.StringIO(r.content.decode("utf-8")[1:]), delimiter=";"))
    cells = dict(zip(header, line, strict=True))
    assert int(cells["children_waiting"]) == exact["children_waiting"]
    assert int(cells["measures_not_executed"]) == exact["measures_not_executed"]
    r = await client.get("/v1/stats/authorities.csv?authority=69M", headers=NATIONAL)
    header, line = list(csv.reader(io.StringIO(r.content.decode("utf-8")[1:]), delimiter=";"))
    assert dict(zip(header, line, strict=True))["children_waiting"] == ""

    # The departments' table is a national view for everybody, Lyon's services included.
    r = await client.get("/v1/stats/departments?department=69", headers=lyon)
    assert r.status_code == 200 and r.json()["exact"] is False
    assert r.json()["items"][0]["children_waiting"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/stats/authorities?authority=69",  # a department, shared by two authorities
        "/v1/stats/authorities?authority=2A",
        "/v1/stats/authorities?authority=69m",
        "/v1/stats/authorities?authority=XXXX",
        "/v1/stats/authorities.csv?authority=67",
        "/v1/stats/history?authority=68",
        "/v1/stats/history?authority=69M&department=69",
    ],
)
async def test_unknown_authority_is_refused_with_the_choices(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path, headers=NATIONAL)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert [e["field"] for e in body["errors"]] == ["authority"]
    if "department=" not in path:
        assert {"69M", "69D", "6AE", "20R"} <= set(body["errors"][0]["choices"])


async def test_history_of_an_authority(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    """Corse's history sums 2A and 2B; today's point is the authority's current figure."""
    for department, commune in (("2A", "2A004"), ("2B", "2B033")):
        s = await make_structure(pool, department=department, commune=commune)
        await declare(client, s["unit_ids"][0], s["finess"], available=2)
        await carer_with_places(client, pool, department, commune, places=2)

    body = await page(client, "/v1/stats/history?authority=20R&days=3")
    assert body["authority"] == "20R" and body["department"] is None
    assert body["timezone"] == "Europe/Paris" and len(body["items"]) == 3
    now = (await page(client, "/v1/stats/authorities?authority=20R"))["items"][0]
    last = body["items"][-1]
    assert last["unit_places_available"] == now["available"] >= 4
    assert last["carer_places_available"] == now["carer_places_available"] >= 4
    corsica = [
        (await page(client, f"/v1/stats/history?department={code}&days=3"))["items"][-1]
        for code in ("2A", "2B")
    ]
    assert last["available"] == sum(p["available"] for p in corsica)

    reunion = await page(client, "/v1/stats/history?authority=974&days=2")
    assert reunion["timezone"] == "Indian/Reunion"
    assert reunion["items"][-1]["day"] == local_today("974").isoformat()
