"""The offer over time and the coverage of declarations (#18), on an authority of its own:
Hautes-Alpes (05), added to the fixture referential by this test (no other test has it), with
one MECS unit and one assistant familial whose declarations are dated by hand."""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.requests.service import local_today
from tests.support.factories import bearer, make_carer, new_unit

pytestmark = pytest.mark.usefixtures("pool")

CODE = "05"


async def _hautes_alpes(owner_pool) -> None:
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO departments (code, name, region_code, region_name, location)"
            " VALUES ('05', 'Hautes-Alpes', '93', 'Provence-Alpes-Côte d''Azur',"
            " ST_SetSRID(ST_MakePoint(6.26, 44.66), 4326)::geography) ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO communes (insee, name, department, population, precision, location,"
            " authority) VALUES ('05061', 'Gap', '05', 40000, 'geonames',"
            " ST_SetSRID(ST_MakePoint(6.08, 44.56), 4326)::geography, '05')"
            " ON CONFLICT DO NOTHING"
        )


def _day(months_ago: int, day: int) -> datetime:
    today = local_today(None)
    year, month = divmod(today.year * 12 + today.month - 1 - months_ago, 12)
    return datetime.combine(date(year, month + 1, day), datetime.min.time(), UTC) + timedelta(
        hours=10
    )


async def test_offer_by_category_month_by_month_and_coverage(
    client: httpx.AsyncClient, pool, owner_pool
) -> None:
    await _hautes_alpes(owner_pool)
    unit: dict[str, Any] = await new_unit(
        client, pool, available=2, installed=10, department=CODE, commune="05061"
    )
    carer = await make_carer(pool, department=CODE, commune="05061", capacity=3)
    async with pool.acquire() as conn:
        # Two months ago: 4 free of 10 (MECS), the carer active with 2 free of 3; last month
        # 1 free, the carer full. Now: 2 free (the API declaration above), the carer full.
        for when, available in ((_day(2, 10), 4), (_day(1, 10), 1)):
            await conn.execute(
                "INSERT INTO capacity_declarations (unit_id, temporality, installed, occupied,"
                " reserved, closed, available, additional, version, declared_at, declared_by,"
                " source, available_gender)"
                " VALUES ($1, 'current', 10, $2, 0, 0, $3, 0, 1, $4, 'test', 'test', 'any')",
                uuid.UUID(unit["id"]),
                10 - available,
                available,
                when,
            )
        for when, available in ((_day(2, 5), 2), (_day(1, 5), 0)):
            await conn.execute(
                "INSERT INTO carer_declarations (carer_id, available_places, status, version,"
                " declared_at, declared_by, source) VALUES ($1, $2, 'active', 1, $3, 'test',"
                " 'test')",
                carer,
                available,
                when,
            )
    national = bearer("national")
    r = await client.get(f"/v1/stats/offer?months=3&authority={CODE}", headers=national)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["current"] for i in items] == [False, False, True]
    assert [i["categories"]["177"] for i in items] == [
        {"free": 4, "open": 10, "tension": 0.6},
        {"free": 1, "open": 10, "tension": 0.9},
        {"free": 2, "open": 10, "tension": 0.8},
    ]
    assert [i["categories"]["carer"] for i in items] == [
        {"free": 2, "open": 3, "tension": 0.333},
        {"free": 0, "open": 3, "tension": 1.0},
        {"free": 0, "open": 3, "tension": 1.0},
    ]
    r = await client.get("/v1/stats/offer?months=0", headers=national)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "months"
    r = await client.get("/v1/stats/offer?authority=ZZ", headers=national)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "authority"

    # Coverage: both declared today → tension (10 + 3 open, 2 free, nobody waits) = 11/13.
    r = await client.get(f"/v1/stats/coverage?authority={CODE}", headers=national)
    assert r.status_code == 200, r.text
    (mine,) = r.json()["items"]
    assert mine["coverage"] == 1.0 and mine["latest_age_days"] == 0
    assert mine["tension"] == 0.846 and mine["tension_reason"] is None
    # Stale: both last declared 30 days ago → no tension, and why.
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE capacity_snapshots SET declared_at = now() - interval '30 days'"
            " WHERE unit_id = $1",
            uuid.UUID(unit["id"]),
        )
        await conn.execute(
            "UPDATE foster_carers SET declared_at = now() - interval '30 days' WHERE id = $1",
            carer,
        )
    r = await client.get(f"/v1/stats/coverage?authority={CODE}&days=7", headers=national)
    (mine,) = r.json()["items"]
    assert mine["coverage"] == 0.0 and mine["latest_age_days"] == 30
    assert mine["tension"] is None and mine["tension_reason"] == "declarations_stale"
    r = await client.get("/v1/stats/coverage?min_coverage=2", headers=national)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "min_coverage"
    # An authority without any offer has no tension either, for another reason.
    r = await client.get("/v1/stats/coverage?authority=06", headers=national)
    assert r.json()["items"][0]["tension_reason"] == "no_offer"
