"""The monthly open data and the trends over time (#18): a change from the month before is
published only between two published values (the previous-month case), and the national
execution delay (median and 90th percentile) of each month on the FR line — on hand-computed
months in Creuse (23) and Corrèze (19), added to the fixture referential here (no other test
has them), three and four months back (no other test writes there). The months are over, so
their rows are written straight to the tables with their past dates."""

import csv
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest

from api.requests.service import local_today
from tests.support.factories import bearer, make_structure

pytestmark = pytest.mark.usefixtures("pool")

PLACES = {
    "23": ("Creuse", "75", "Nouvelle-Aquitaine", "23096", "Guéret", 46.17, 1.87),
    "19": ("Corrèze", "75", "Nouvelle-Aquitaine", "19272", "Tulle", 45.27, 1.77),
}


def month_back(k: int, day: int) -> datetime:
    """Noon (UTC) of ``day`` of the month ``k`` months before the current one (Paris)."""
    today = local_today(None)
    year, month = divmod(today.year * 12 + today.month - 1 - k, 12)
    return datetime(year, month + 1, day, 12, tzinfo=UTC)


def label(k: int) -> str:
    return month_back(k, 1).strftime("%Y-%m")


async def _places(owner_pool: asyncpg.Pool) -> None:
    async with owner_pool.acquire() as conn:
        for code, (name, region, region_name, insee, town, lat, lon) in PLACES.items():
            await conn.execute(
                "INSERT INTO departments (code, name, region_code, region_name, location)"
                " VALUES ($1, $2, $3, $4, ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography)"
                " ON CONFLICT DO NOTHING",
                code,
                name,
                region,
                region_name,
                lat,
                lon,
            )
            await conn.execute(
                "INSERT INTO communes (insee, name, department, population, precision,"
                " location, authority) VALUES ($1, $2, $3, 15000, 'geonames',"
                " ST_SetSRID(ST_MakePoint($5, $4), 4326)::geography, $3)"
                " ON CONFLICT DO NOTHING",
                insee,
                town,
                code,
                lat,
                lon,
            )


async def _request(conn: asyncpg.Connection, code: str, n: int, decided: date, at: datetime):
    request_id = uuid.uuid4()
    children = json.dumps(
        [{"age_months": 100 + i, "sex": "M", "disability_profiles": []} for i in range(n)]
    )
    await conn.execute(
        "INSERT INTO placement_requests (id, department, authority, reference, children,"
        " origin_commune, origin_location, timing, public, formula, urgency, measure_kind,"
        " decided_on, created_by, created_at, updated_at)"
        " SELECT $1, $2, $2, $3, $4::text::jsonb, insee, location, 'durable', 'mineur',"
        " 'enfant', 'days', 'judicial', $5, 'test', $6, $6 FROM communes WHERE insee = $7",
        request_id,
        code,
        f"T-{request_id.hex[:8]}",
        children,
        decided,
        at,
        PLACES[code][3],
    )
    return request_id


async def _event(conn, request_id, event: str, at: datetime, to: str, **extra) -> None:
    await conn.execute("UPDATE placement_requests SET status = $2 WHERE id = $1", request_id, to)
    await conn.execute(
        "INSERT INTO request_events (request_id, occurred_at, event, from_status, to_status,"
        " hold_id, reason_code, actor, role) VALUES ($1, $2, $3, 'waiting', $4, $5, $6,"
        " 'test', 'department')",
        request_id,
        at,
        event,
        to,
        extra.get("hold_id"),
        extra.get("reason_code"),
    )


async def test_changes_and_the_national_delays_month_by_month(
    client: httpx.AsyncClient, pool: asyncpg.Pool, owner_pool: asyncpg.Pool
) -> None:
    await _places(owner_pool)
    home = await make_structure(pool, department="23", commune="23096")
    async with pool.acquire() as conn:
        # Creuse: 3 siblings waiting since four months back, and 4 more cancelled three
        # months back: 7 waiting at the end of month −4, 3 ("< 5") at the end of month −3.
        start = month_back(4, 3)
        await _request(conn, "23", 3, start.date(), start)
        cancelled = await _request(conn, "23", 4, start.date(), start)
        await _event(
            conn, cancelled, "cancelled", month_back(3, 10), "cancelled", reason_code="doublon"
        )
        # Corrèze: 9 siblings waiting all along.
        await _request(conn, "19", 9, start.date(), start)
        # Ten children of Creuse admitted in Creuse on the 20th of month −3, 1 to 10 days
        # after their decisions: median 5.5, p90 1 + 0.9 × 9 = 9.1.
        admitted = month_back(3, 20)
        for delay in range(1, 11):
            decided = (admitted - timedelta(days=delay)).date()
            request_id = await _request(conn, "23", 1, decided, admitted - timedelta(hours=1))
            hold_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO holds (id, request_id, target_kind, unit_id, places, status,"
                " expires_at, created_by, created_at, updated_at)"
                " VALUES ($1, $2, 'unit', $3, 1, 'admitted', $4, 'test', $4, $4)",
                hold_id,
                request_id,
                home["unit_ids"][0],
                admitted,
            )
            await _event(conn, request_id, "admitted", admitted, "placed", hold_id=hold_id)

    r = await client.get("/v1/opendata/monthly.csv?months=4", headers=bearer("national"))
    assert r.status_code == 200, r.text
    lines = {(x["month"], x["authority"]): x for x in csv.DictReader(io.StringIO(r.text))}
    m4, m3 = label(4), label(3)
    assert sorted({m for m, _ in lines})[0] == m4  # four closed months, −4 the first
    # Month −4: nothing below 5, everything published; its changes are from month −5 (0).
    assert [lines[(m4, c)]["children_waiting"] for c in ("23", "19", "FR")] == ["7", "9", "16"]
    assert [lines[(m4, c)]["children_waiting_change"] for c in ("23", "19", "FR")] == [
        "7",
        "9",
        "16",
    ]
    # Month −3: Creuse's 3 is "< 5"; its column's complement is the smallest other count,
    # a 0 — Ain's (01), the first authority in code order. The change of each is secret:
    # beside Creuse's published 7 of month −4, "−4" would say 3.
    assert lines[(m3, "23")]["children_waiting"] == "< 5"
    assert lines[(m3, "01")]["children_waiting"] == "< 5"
    assert lines[(m3, "19")]["children_waiting"] == "9"
    assert lines[(m3, "FR")]["children_waiting"] == "12"
    assert lines[(m3, "23")]["children_waiting_change"] == "s"
    assert lines[(m3, "01")]["children_waiting_change"] == "s"
    assert lines[(m3, "19")]["children_waiting_change"] == "0"
    assert lines[(m3, "FR")]["children_waiting_change"] == "-4"
    # The delays of month −3: Creuse's ten admissions, which are also the whole country's.
    for code in ("23", "FR"):
        assert lines[(m3, code)]["execution_delay_median"] == "5.5"
        assert lines[(m3, code)]["execution_delay_p90"] == "9.1"
    # Month −4 had no admission: no delay, nationally either.
    assert lines[(m4, "FR")]["execution_delay_median"] == ""
    assert lines[(m4, "FR")]["execution_delay_p90"] == ""

    schema = await client.get("/v1/opendata/monthly.schema.json", headers=bearer("national"))
    fields = {f["name"]: f for f in schema.json()["fields"]}
    assert list(fields) == list(next(iter(lines.values())))
    assert {"execution_delay_p90", "children_waiting_change", "not_executed_30_change"} <= set(
        fields
    )
    assert "FR" in fields["execution_delay_median"]["description"]
    assert "s" in schema.json()["missingValues"]

    # The same lines as JSON for the dashboards' trends: FR, and Creuse's when asked.
    r = await client.get("/v1/stats/trends?months=4&authority=23", headers=bearer("national"))
    assert r.status_code == 200, r.text
    items = {(i["month"], i["authority"]): i for i in r.json()["items"]}
    assert {a for _, a in items} == {"23", "FR"} and len(items) == 8
    assert items[(m3, "23")]["children_waiting"] is None
    assert items[(m3, "23")]["children_waiting_change"] is None
    assert items[(m3, "FR")]["children_waiting_change"] == -4
    assert items[(m3, "FR")]["execution_delay_p90"] == pytest.approx(9.1)
    assert items[(m3, "23")]["free_places"]["177"] == 0
    r = await client.get("/v1/stats/trends?months=4", headers=bearer("national"))
    assert {i["authority"] for i in r.json()["items"]} == {"FR"}
    r = await client.get("/v1/stats/trends?authority=XX", headers=bearer("national"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "authority"
    r = await client.get("/v1/stats/trends", headers=bearer("structure", finess="690000018"))
    assert r.status_code == 403
