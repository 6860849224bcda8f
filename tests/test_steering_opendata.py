"""Open data of steering (#18): the monthly CSV per authority with statistical secrecy and
its Table Schema, on a hand-computed last month in Lozère (48), added to the fixture
referential by this test (no other test has it). The month is over, so its rows are written
straight to the tables with their past dates, as the history they stand for."""

import csv
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from api.requests.service import local_today
from tests.support.factories import bearer, make_structure

pytestmark = pytest.mark.usefixtures("pool")

CODE = "48"


def _last_month(day: int) -> datetime:
    """Noon (UTC) of ``day`` of the month before the current one (Paris)."""
    today = local_today(None)
    year, month = divmod(today.year * 12 + today.month - 2, 12)
    return datetime(year, month + 1, day, 12, tzinfo=UTC)


async def _lozere(owner_pool) -> None:
    async with owner_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO departments (code, name, region_code, region_name, location)"
            " VALUES ('48', 'Lozère', '76', 'Occitanie',"
            " ST_SetSRID(ST_MakePoint(3.5, 44.5), 4326)::geography) ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO communes (insee, name, department, population, precision, location,"
            " authority) VALUES ('48095', 'Mende', '48', 12000, 'geonames',"
            " ST_SetSRID(ST_MakePoint(3.5, 44.52), 4326)::geography, '48')"
            " ON CONFLICT DO NOTHING"
        )


async def _request(conn, n: int, decided: date, created: datetime) -> uuid.UUID:
    request_id = uuid.uuid4()
    children = json.dumps(
        [{"age_months": 100 + i, "sex": "F", "disability_profiles": []} for i in range(n)]
    )
    await conn.execute(
        "INSERT INTO placement_requests (id, department, authority, reference, children,"
        " origin_commune, origin_location, timing, public, formula, urgency, measure_kind,"
        " decided_on,"
        " created_by, created_at, updated_at)"
        " SELECT $1, '48', '48', $2, $3::text::jsonb, insee, location, 'durable', 'mineur',"
        " 'enfant', 'days', 'judicial', $4, 'test', $5, $5 FROM communes WHERE insee = '48095'",
        request_id,
        f"OD-{request_id.hex[:8]}",
        children,
        decided,
        created,
    )
    return request_id


async def test_monthly_open_data_with_secrecy_and_its_schema(
    client: httpx.AsyncClient, pool, owner_pool
) -> None:
    await _lozere(owner_pool)
    home = await make_structure(pool, department=CODE, commune="48095")
    alsace = await make_structure(pool, department="67", commune="67482")
    async with pool.acquire() as conn:
        # Waiting at the end of last month: one child decided the month before (not executed
        # at 30 days), two siblings decided last month: 3 children, "< 5".
        await _request(conn, 1, (_last_month(1) - timedelta(days=16)).date(), _last_month(1))
        await _request(conn, 2, _last_month(4).date(), _last_month(5))
        # Five children admitted last month in Alsace, 10, 12, 14, 20 and 30 days after
        # their decisions: median 14, five placements outside (published: 5 is not < 5).
        for delay in (10, 12, 14, 20, 30):
            admitted = _last_month(25)
            request_id = await _request(
                conn, 1, (admitted - timedelta(days=delay)).date(), admitted - timedelta(days=2)
            )
            hold_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO holds (id, request_id, target_kind, unit_id, places, status,"
                " expires_at, created_by, created_at, updated_at)"
                " VALUES ($1, $2, 'unit', $3, 1, 'admitted', $4, 'test', $4, $4)",
                hold_id,
                request_id,
                alsace["unit_ids"][0],
                admitted,
            )
            await conn.execute(
                "UPDATE placement_requests SET status = 'placed' WHERE id = $1", request_id
            )
            await conn.execute(
                "INSERT INTO request_events (request_id, occurred_at, event, from_status,"
                " to_status, hold_id, actor, role) VALUES ($1, $2, 'admitted', 'held',"
                " 'placed', $3, 'test', 'department')",
                request_id,
                admitted,
                hold_id,
            )
        # The MECS of Mende declared 3 free places of 10 on the 20th.
        await conn.execute(
            "INSERT INTO capacity_declarations (unit_id, temporality, installed, occupied,"
            " reserved, closed, available, additional, available_gender, version, declared_at,"
            " declared_by, source) VALUES ($1, 'current', 10, 7, 0, 0, 3, 0, 'any', 1, $2,"
            " 'test', 'test')",
            home["unit_ids"][0],
            _last_month(20),
        )

    r = await client.get("/v1/opendata/monthly.csv?months=2", headers=bearer("national"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    today = local_today(None).isoformat()
    assert f"places-mensuel-{today}.csv" in r.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(r.text)))
    months = sorted({line["month"] for line in lines})
    assert len(months) == 2 and months[-1] == _last_month(1).strftime("%Y-%m")
    assert {line["extracted_on"] for line in lines} == {today}
    ours = next(x for x in lines if x["month"] == months[-1] and x["authority"] == CODE)
    assert ours["children_waiting"] == "< 5"  # 3
    assert ours["not_executed_30"] == "< 5"  # 1
    assert ours["placements_outside"] == "5"
    assert ours["execution_delay_median"] == "14"
    assert ours["free_places_177"] == "3"
    column = [x["children_waiting"] for x in lines if x["month"] == months[-1]]
    assert column.count("< 5") >= 2, "one hidden cell would be the national total minus the rest"
    national = next(x for x in lines if x["month"] == months[-1] and x["authority"] == "FR")
    assert national["placements_outside"] == "5"
    r = await client.get("/v1/opendata/monthly.csv?months=0", headers=bearer("national"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "months"

    r = await client.get("/v1/opendata/monthly.schema.json", headers=bearer("national"))
    assert r.status_code == 200
    schema = r.json()
    assert [f["name"] for f in schema["fields"]] == list(lines[0])
    assert "< 5" in schema["missingValues"] and schema["primaryKey"] == ["month", "authority"]
    types = {"string", "integer", "number", "date", "yearmonth"}
    assert all(f["type"] in types and f["description"] for f in schema["fields"])
