"""Never proposed unless valid (#15): a carer whose agrément is not valid today, or who is
on leave today, is not proposed by search nor the optimiser, cannot be held (API and a
direct INSERT), gives no place back, and is not counted as free in statistics, FHIR or open
data. Against the real database and app.

A row "not valid with free places" is what the calendar makes of a row the trigger of
migration 0012 accepted: places declared while the agrément was valid, read the day after it
expired, or after a suspension recorded ahead began. Tests cannot move ``current_date``, so
``age_agrement`` writes that later row as the table's owner, the validity trigger disabled
inside the one transaction (DDL is transactional and takes the table's lock: nobody else
ever sees it disabled).
"""

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from api.capacity.repository import carer_free_sql
from tests.support.factories import (
    AUTHORITY,
    bearer,
    dept,
    hold,
    idem,
    make_carer,
    new_request,
)

NATIONAL = bearer("national")
TODAY = date.today()

#: state → the columns that make the agrément so today.
NOT_VALID: dict[str, dict[str, Any]] = {
    "suspended": {
        "agrement_state": "suspended",
        "suspended_from": TODAY - timedelta(days=1),
        "suspension_reason": "enquete_administrative",
    },
    "withdrawn": {
        "agrement_state": "withdrawn",
        "withdrawn_on": TODAY - timedelta(days=1),
        "withdrawal_reason": "conditions_non_remplies",
    },
    "expired": {
        "issued_on": TODAY - timedelta(days=5 * 365 + 2),
        "valid_until": TODAY - timedelta(days=1),
    },
}


async def free_carer(client, pool: asyncpg.Pool, places: int = 1, capacity: int = 2) -> UUID:
    """A valid carer of 69M (Villeurbanne) who declared ``places`` free through the API."""
    carer_id = await make_carer(pool, capacity=capacity)
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=bearer("carer", carer_id=str(carer_id)),
        json={"available_places": places, "status": "active"},
    )
    assert r.status_code == 200, r.text
    return carer_id


async def age_agrement(owner_pool: asyncpg.Pool, carer_id: UUID, **columns: Any) -> None:
    """The carer's row as a later day finds it (see the module's docstring)."""
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    async with owner_pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE foster_carers DISABLE TRIGGER foster_carers_validity")
        await conn.execute(
            f"UPDATE foster_carers SET {sets} WHERE id = $1", carer_id, *columns.values()
        )
        await conn.execute("ALTER TABLE foster_carers ENABLE TRIGGER foster_carers_validity")


async def proposed(client, headers: dict[str, str] | None = None, **over: Any) -> set[str]:
    body: dict[str, Any] = {
        "children": [{"age": 10, "sex": "M", "disability_profiles": []}],
        "origin": {"commune": "69123"},
        "care_mode": "durable",
        "max_distance_km": 30,
        "limit": 50,
    }
    body.update(over)
    r = await client.post("/v1/search", json=body, headers=headers or dept())
    assert r.status_code == 200, r.text
    return {p["target"]["id"] for p in r.json()["proposals"] if p["target"]["kind"] == "carer"}


async def carer_stats(client) -> dict[str, int]:
    r = await client.get("/v1/stats/authorities", headers=NATIONAL)
    assert r.status_code == 200, r.text
    (row,) = [i for i in r.json()["items"] if i["authority"] == AUTHORITY]
    return {k: row[k] for k in ("carers_active", "carer_places_available", "open_places")}


async def open_data(client) -> str:
    r = await client.get("/v1/opendata/availability.csv", headers=NATIONAL)
    assert r.status_code == 200, r.text
    return r.text


async def fhir(client) -> tuple[int, list[str]]:
    """The FHIR Locations of 69: their total and ids (the Bundle's own timestamp aside)."""
    r = await client.get(
        "/fhir/Location", params={"address-state": "69", "_count": 500}, headers=NATIONAL
    )
    assert r.status_code == 200, r.text
    bundle = r.json()
    return bundle["total"], sorted(e["resource"]["id"] for e in bundle.get("entry", []))


@pytest.mark.parametrize("state", sorted(NOT_VALID))
async def test_a_carer_not_valid_today_is_never_proposed_held_nor_counted(
    client, pool, owner_pool, state
):
    carer_id = await free_carer(client, pool)
    assert str(carer_id) in await proposed(client)
    stats_valid, data_valid = await carer_stats(client), await open_data(client)
    fhir_valid = await fhir(client)

    await age_agrement(owner_pool, carer_id, **NOT_VALID[state])
    assert (
        await pool.fetchval("SELECT available_places FROM foster_carers WHERE id = $1", carer_id)
        == 1
    ), "free places kept: only the reading decides"

    assert str(carer_id) not in await proposed(client)
    # Statistics: one carer and one free place less, its agrément capacity out of the open.
    stats = await carer_stats(client)
    assert stats["carers_active"] == stats_valid["carers_active"] - 1
    assert stats["carer_places_available"] == stats_valid["carer_places_available"] - 1
    assert stats["open_places"] == stats_valid["open_places"] - 2
    # FHIR and open data never read carers: unchanged, and the carer is nowhere in them.
    assert await open_data(client) == data_valid
    assert await fhir(client) == fhir_valid and str(carer_id) not in fhir_valid[1]

    # The hold ledger: 409 with a coded reason, nothing written.
    request = await new_request(client)
    r = await hold(client, request, "carer", str(carer_id))
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "agrement_not_valid"
    assert r.json()["agrement_state"] == state
    assert not await pool.fetchval("SELECT count(*) FROM holds WHERE carer_id = $1", carer_id)
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept())
    assert r.json()["status"] == "waiting"
    # …and a direct write is refused by the database.
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await pool.execute(
            "INSERT INTO holds (request_id, target_kind, carer_id, places, expires_at,"
            " created_by) VALUES ($1, 'carer', $2, 1, now() + interval '1 hour', 'sql')",
            UUID(request["id"]),
            carer_id,
        )
    assert refused.value.constraint_name == "holds_agrement_valid"


async def test_releasing_a_hold_on_a_carer_no_longer_valid_gives_no_place_back(
    client, pool, owner_pool
):
    """Held while valid, then the agrément expires: the release frees the request, but the
    place is not free (and the trigger would refuse it)."""
    carer_id = await free_carer(client, pool, places=1)
    request = await new_request(client)
    r = await hold(client, request, "carer", str(carer_id))
    assert r.status_code == 201, r.text
    await age_agrement(owner_pool, carer_id, **NOT_VALID["expired"])
    r = await client.post(
        f"/v1/holds/{r.json()['id']}/release", json={"reason": "x"}, headers=dept()
    )
    assert r.status_code == 200, r.text
    assert r.json()["request_status"] == "waiting"
    assert (
        await pool.fetchval("SELECT available_places FROM foster_carers WHERE id = $1", carer_id)
        == 0
    )


async def test_the_optimiser_leaves_out_carers_not_valid_today(client, pool, owner_pool):
    carer_id = await free_carer(client, pool, places=2)
    await age_agrement(owner_pool, carer_id, **NOT_VALID["withdrawn"])
    async with pool.acquire() as conn:
        from api.assignments.service import CARERS_SQL

        rows = await conn.fetch(CARERS_SQL, ["84"], AUTHORITY)
    assert str(carer_id) not in {r["id"] for r in rows}
    valid = await free_carer(client, pool, places=1)
    async with pool.acquire() as conn:
        rows = await conn.fetch(CARERS_SQL, ["84"], AUTHORITY)
    assert str(valid) in {r["id"] for r in rows}


async def test_leave_today_is_not_proposed_leave_planned_or_ended_is(client, pool):
    """Not on leave today: ``active``, a leave that starts later, or one already ended."""
    url = "/v1/foster-carers/{}/availability"
    planned, now, ended = [await free_carer(client, pool) for _ in range(3)]
    tomorrow, next_week = TODAY + timedelta(days=1), TODAY + timedelta(days=7)
    for carer_id, body in (
        (planned, {"leave_from": tomorrow.isoformat(), "until": next_week.isoformat()}),
        (now, {"until": next_week.isoformat()}),
    ):
        r = await client.put(
            url.format(carer_id),
            headers=bearer("carer", carer_id=str(carer_id)),
            json={"available_places": 1, "status": "leave", **body},
        )
        assert r.status_code == 200, r.text
    assert r.json()["leave_from"] is None and r.json()["status_until"] == next_week.isoformat()
    # A leave that ended yesterday (written as yesterday's declaration left it).
    await pool.execute(
        "UPDATE foster_carers SET status = 'leave', leave_from = $2, status_until = $3"
        " WHERE id = $1",
        ended,
        TODAY - timedelta(days=10),
        TODAY - timedelta(days=1),
    )
    found = await proposed(client)
    assert str(planned) in found and str(ended) in found
    assert str(now) not in found
    # Holdable likewise.
    request = await new_request(client)
    r = await hold(client, request, "carer", str(now))
    assert r.status_code == 409 and r.json()["reason"] == "carer_on_leave", r.text
    r = await hold(client, request, "carer", str(planned))
    assert r.status_code == 201, r.text
    # The one predicate (statistics, optimiser) counts the planned leave's place as free,
    # not the current one's.
    row = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE c.id = $1) AS planned,"
        " count(*) FILTER (WHERE c.id = $2) AS now"
        f" FROM foster_carers c WHERE {carer_free_sql('c')}",
        planned,
        now,
    )
    assert (row["planned"], row["now"]) == (1, 0)


async def test_declaring_places_refused_on_an_agrement_not_valid(client, pool, owner_pool):
    """409 with the derived state, ``available_places`` named, nothing written; zero places
    are still the carer's to declare."""
    carer_id = await free_carer(client, pool, places=0)
    await age_agrement(owner_pool, carer_id, **NOT_VALID["expired"])
    url = f"/v1/foster-carers/{carer_id}/availability"
    carer = bearer("carer", carer_id=str(carer_id))
    r = await client.put(url, headers=carer, json={"available_places": 1, "status": "active"})
    assert r.status_code == 409, r.text
    assert r.json()["agrement_state"] == "expired"
    assert r.json()["errors"][0]["field"] == "available_places"
    assert await pool.fetchval("SELECT version FROM foster_carers WHERE id = $1", carer_id) == 2
    r = await client.put(
        url, headers={**carer, **idem()}, json={"available_places": 0, "status": "active"}
    )
    assert r.status_code == 200 and r.json()["agrement_state"] == "expired", r.text
