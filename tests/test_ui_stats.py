"""Statistics for national steering (GET /v1/stats/…): roles, no child-level field, figures
that agree with the offer tables and the waiting list, and a history that agrees with a
plain replay of the declarations. Against the real database, through the in-process app.

The test database is shared by the whole session, so figures are checked as differences
before/after this module's own changes, in Isère (38), which the other modules leave alone.
"""

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from api.requests.service import local_today
from api.settings import get_settings
from api.stats import repository
from tests.support.factories import bearer, idem, make_carer, make_structure

DEPT = "38"
NATIONAL = bearer("national")
CONTRACT_FIELDS = {
    "department",
    "installed",
    "occupied",
    "reserved",
    "available",
    "carers_active",
    "carer_places_available",
    "requests_waiting",
    "oldest_waiting_days",
    "stale_declarations",
    "tension",
}
ALLOWED_FIELDS = CONTRACT_FIELDS | {
    "name",
    "region_code",
    "units",
    "undeclared_units",
    "closed",
    "additional",
    "available_h24",
    "available_h48",
    "available_d7",
    "carers",
    "children_waiting",
    "measures_not_executed",
    "declarations",
    "open_places",
}


async def stats_of(client: httpx.AsyncClient, code: str = DEPT) -> dict[str, Any]:
    r = await client.get(f"/v1/stats/departments?department={code}", headers=NATIONAL)
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    return item


async def own_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    """Isère's row as Isère's own services read it: exact (38 is one authority)."""
    r = await client.get(
        f"/v1/stats/authorities?authority={DEPT}", headers=bearer("department", authority=DEPT)
    )
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    return item


async def declare(
    client: httpx.AsyncClient, unit_id: Any, finess: str, **counts: int
) -> dict[str, Any]:
    r = await client.put(
        f"/v1/units/{unit_id}/capacity",
        headers={**bearer("structure", finess=finess), **idem()},
        json={"temporality": "current", **counts},
    )
    assert r.status_code == 200, r.text
    return r.json()


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
    for path in ("/v1/stats/departments", "/v1/stats/departments.csv", "/v1/stats/history"):
        r = await client.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)
        if status >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")


async def test_every_department_and_no_child_level_field(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/stats/departments", headers=NATIONAL)
    assert r.status_code == 200
    body = r.json()
    codes = [i["department"] for i in body["items"]]
    assert codes == sorted(codes) and {"69", "01", "38", "75", "974"} <= set(codes)
    assert body["total"] == len(codes)
    assert body["stale_after_days"] == get_settings().stale_after_days
    for item in [*body["items"], body["totals"]]:
        assert CONTRACT_FIELDS <= set(item) <= ALLOWED_FIELDS, set(item) ^ ALLOWED_FIELDS
    text = r.text
    for child_level in ("reference", 'children"', "decided_on", "origin", "sex", 'age"'):
        assert child_level not in text
    totals = body["totals"]
    for name in ("installed", "available", "carer_places_available"):
        assert totals[name] == sum(i[name] for i in body["items"])
    # A national view (statistical secrecy, #18): no figure of requests or children.
    assert body["exact"] is False
    for item in [*body["items"], totals]:
        assert all(item[name] is None for name in repository.WAITING_FIELDS), item


async def test_figures_follow_the_offer_and_the_waiting_list(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    before = await stats_of(client)
    own_before = await own_stats(client)
    s = await make_structure(
        pool,
        department=DEPT,
        commune="38185",
        units=[{"name": "Petits", "installed": 10}, {"name": "Grands", "installed": 5}],
    )
    declared, _never_declared = s["unit_ids"]
    await declare(client, declared, s["finess"], installed=10, occupied=7, available=3)
    carer = await make_carer(pool, department=DEPT, commune="38185", capacity=2)
    r = await client.put(
        f"/v1/foster-carers/{carer}/availability",
        headers={**bearer("carer", carer_id=str(carer)), **idem()},
        json={"available_places": 1, "status": "active", "until": None},
    )
    assert r.status_code == 200, r.text
    decided = local_today(DEPT) - timedelta(days=get_settings().unexecuted_after_days + 10)
    r = await client.post(
        "/v1/requests",
        headers=bearer("department", authority=DEPT),
        json={
            "department": DEPT,
            "children": [
                {"age": 7, "sex": "F", "disability_profiles": []},
                {"age": 9, "sex": "M", "disability_profiles": []},
            ],
            "origin": {"commune": "38185"},
            "care_mode": "durable",
            "urgency": "days",
            "measure": {"kind": "judicial", "decided_on": decided.isoformat()},
            "reference": f"ASE38-{uuid.uuid4().hex[:8]}",
        },
    )
    assert r.status_code == 201, r.text

    after = await stats_of(client)
    own_after = await own_stats(client)
    # The national view publishes the offer; the waiting list only Isère's services read.
    delta = {
        k: (
            own_after[k] - own_before[k] if k in repository.WAITING_FIELDS else after[k] - before[k]
        )
        for k in repository.COUNT_FIELDS
    }
    assert all(after[k] is None for k in repository.WAITING_FIELDS)
    assert delta == {
        **dict.fromkeys(repository.COUNT_FIELDS, 0),
        "units": 2,
        "undeclared_units": 1,
        "installed": 15,
        "occupied": 7,
        "available": 3,
        "available_h24": 3,  # no forecast declared: the current figure
        "available_h48": 3,
        "available_d7": 3,
        "carers": 1,
        "carers_active": 1,
        "carer_places_available": 1,
        "requests_waiting": 1,
        "children_waiting": 2,
        "measures_not_executed": 1,
        "declarations": 2,
        "open_places": 10 + 5 + 2,
    }
    assert own_after["oldest_waiting_days"] >= get_settings().unexecuted_after_days + 10
    free = after["available"] + after["carer_places_available"]
    expected = round(
        (after["open_places"] - free + own_after["children_waiting"]) / after["open_places"], 3
    )
    assert own_after["tension"] == expected
    # Nationally the occupancy alone: with the places published, the full tension would
    # give the children waiting back.
    assert after["tension"] == round((after["open_places"] - free) / after["open_places"], 3)

    # A declaration older than the setting becomes stale.
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE capacity_snapshots SET declared_at = now() - make_interval(days => $2)"
            " WHERE unit_id = $1",
            declared,
            get_settings().stale_after_days + 1,
        )
    assert (await stats_of(client))["stale_declarations"] == before["stale_declarations"] + 1


async def test_an_empty_department_has_zeros_and_no_tension(client: httpx.AsyncClient) -> None:
    item = await stats_of(client, "974")
    if item["open_places"] == 0:  # nobody else put an offer in La Réunion
        assert item["tension"] is None
        assert item["oldest_waiting_days"] is None
        assert item["available"] == item["installed"] == item["carers"] == 0


async def test_without_the_workflow_table_nobody_waits(owner_pool: asyncpg.Pool) -> None:
    """Before migration 0002 the table does not exist: the figures are 0, not an error. The
    rename (DDL: the owner's) happens in a transaction that is rolled back."""
    async with owner_pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("ALTER TABLE placement_requests RENAME TO placement_requests_x")
            assert not await repository.has_requests_table(conn)
            items = await repository.department_stats(conn, 7, 30)
        finally:
            await tx.rollback()
    assert items and all(i["requests_waiting"] == 0 for i in items)
    assert all(i["oldest_waiting_days"] is None for i in items)


async def test_csv_is_the_same_table(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/stats/departments.csv", headers=NATIONAL)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    header, lines = rows[0], rows[1:]
    assert CONTRACT_FIELDS <= set(header)
    json_items = (await client.get("/v1/stats/departments", headers=NATIONAL)).json()["items"]
    assert [line[0] for line in lines] == [i["department"] for i in json_items]
    by_code = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    for item in json_items:
        row = by_code[item["department"]]
        assert int(row["available"]) == item["available"]
        if item["tension"] is not None:
            assert row["tension"] == f"{item['tension']:.3f}".replace(".", ",")


async def test_bad_input(client: httpx.AsyncClient) -> None:
    for path in (
        "/v1/stats/departments?department=XX",
        "/v1/stats/history?department=XX",
        "/v1/stats/history?days=0",
        "/v1/stats/history?days=1000",
    ):
        r = await client.get(path, headers=NATIONAL)
        assert r.status_code == 422, (path, r.text)
    for path in ("/v1/stats/departments?department=95", "/v1/stats/history?department=95"):
        r = await client.get(path, headers=NATIONAL)
        assert r.status_code == 404, (path, r.text)  # a valid code, not in this database


def _replay(
    declarations: list[asyncpg.Record], days: list[date], zone: ZoneInfo, active_only: bool
) -> list[int]:
    """The obvious, slow definition: at each day's end, each key's last value, summed."""
    out = []
    now = datetime.now(UTC)
    for day in days:
        end = min(datetime.combine(day + timedelta(days=1), datetime.min.time(), zone), now)
        last: dict[Any, int] = {}
        for d in sorted(declarations, key=lambda d: (d["declared_at"], d["id"])):
            if d["declared_at"] < end:
                value = d["value"]
                if active_only and d["status"] != "active":
                    value = 0
                last[d["key"]] = value
        out.append(sum(last.values()))
    return out


async def test_history_agrees_with_a_replay_of_the_declarations(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    s = await make_structure(pool, department=DEPT, commune="38185")
    unit = s["unit_ids"][0]
    # Two declarations in the past days (written as history, as an importer would), one now.
    async with pool.acquire() as conn:
        for version, (age_days, available) in enumerate([(2.4, 4), (1.3, 2)], start=1):
            await conn.execute(
                """
                INSERT INTO capacity_declarations
                       (unit_id, temporality, version, declared_at, declared_by, source,
                        installed, occupied, reserved, closed, available, additional,
                        available_gender)
                VALUES ($1, 'current', $2, now() - make_interval(secs => $3), 'test', 'test',
                        10, 10 - $4, 0, 0, $4, 0, 'any')
                """,
                unit,
                version,
                age_days * 86400,
                available,
            )
            await conn.execute(
                """
                INSERT INTO capacity_snapshots
                       (unit_id, temporality, version, declared_at, declared_by, source,
                        installed, occupied, reserved, closed, available, additional,
                        available_gender)
                SELECT unit_id, temporality, version, declared_at, declared_by, source,
                       installed, occupied, reserved, closed, available, additional,
                       available_gender
                  FROM capacity_declarations WHERE unit_id = $1 AND version = $2
                ON CONFLICT (unit_id, temporality) DO UPDATE
                   SET version = EXCLUDED.version, available = EXCLUDED.available,
                       occupied = EXCLUDED.occupied, declared_at = EXCLUDED.declared_at
                """,
                unit,
                version,
            )
    await declare(client, unit, s["finess"], available=5, occupied=5, installed=10)

    r = await client.get(f"/v1/stats/history?department={DEPT}&days=5", headers=NATIONAL)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["department"] == DEPT and body["days"] == 5
    days = [date.fromisoformat(p["day"]) for p in body["items"]]
    today = local_today(DEPT)
    assert days == [today - timedelta(days=4 - i) for i in range(5)]
    zone = ZoneInfo(body["timezone"])
    async with pool.acquire() as conn:
        unit_rows = await conn.fetch(
            """
            SELECT cd.id, cd.unit_id AS key, cd.declared_at, cd.available AS value,
                   'active' AS status
              FROM capacity_declarations cd
              JOIN units u ON u.id = cd.unit_id JOIN structures s ON s.id = u.structure_id
             WHERE s.department = $1 AND cd.temporality = 'current'
            """,
            DEPT,
        )
        carer_rows = await conn.fetch(
            """
            SELECT cd.id, cd.carer_id AS key, cd.declared_at, cd.available_places AS value,
                   cd.status
              FROM carer_declarations cd JOIN foster_carers f ON f.id = cd.carer_id
             WHERE f.department = $1
            """,
            DEPT,
        )
    assert [p["unit_places_available"] for p in body["items"]] == _replay(
        list(unit_rows), days, zone, active_only=False
    )
    assert [p["carer_places_available"] for p in body["items"]] == _replay(
        list(carer_rows), days, zone, active_only=True
    )
    # Today's point is the current figure of the statistics.
    now = await stats_of(client)
    assert body["items"][-1]["unit_places_available"] == now["available"]
    assert body["items"][-1]["carer_places_available"] == now["carer_places_available"]
    assert all(
        p["available"] == p["unit_places_available"] + p["carer_places_available"]
        for p in body["items"]
    )

    national = await client.get("/v1/stats/history?days=2", headers=NATIONAL)
    assert national.status_code == 200 and national.json()["department"] is None
