"""The carer's own part and their employer (#15): free places, leave and preferences within
the agrément; the employer's openness to other authorities; a placement service (FINESS 236)
managing its carers; holds by another authority seen by the employer. Real database, app,
Redis feeds.
"""

import asyncio
import json
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from api.settings import get_settings
from tests.support.factories import (
    AUTHORITY,
    bearer,
    dept,
    hold,
    idem,
    make_carer,
    make_structure,
    new_request,
)

CORSE = "20R"
TODAY = date.today()


def availability(carer_id: Any) -> str:
    return f"/v1/foster-carers/{carer_id}/availability"


def _prefs(low: int, high: int, **over: Any) -> dict[str, Any]:
    """Preferences in the needs vocabulary: ages in months, durable / mineur / enfant."""
    return {
        "age_min_months": low,
        "age_max_months": high,
        "timings": ["durable"],
        "publics": ["mineur"],
        "formulas": ["enfant"],
        **over,
    }


async def declare(client, carer_id: Any, headers: dict[str, str], **body: Any):
    return await client.put(availability(carer_id), headers=headers, json=body)


async def search(client, authority: str = AUTHORITY, age: int = 10) -> set[str]:
    body = {
        "children": [{"age": age, "sex": "F", "disability_profiles": []}],
        "origin": {"commune": "69123"},
        "care_mode": "durable",
        "max_distance_km": 30,
        "limit": 50,
    }
    r = await client.post("/v1/search", json=body, headers=dept(authority))
    assert r.status_code == 200, r.text
    return {p["target"]["id"] for p in r.json()["proposals"] if p["target"]["kind"] == "carer"}


async def corsican_request(client) -> dict[str, Any]:
    """A waiting request of Corse (20R), from Ajaccio."""
    return await new_request(client, authority=CORSE, origin={"commune": "2A004"}, department="2A")


async def test_the_carers_part_within_the_agrement(client, pool):
    """Preferences outside the agrément: 422 naming the field, nothing written; omitted
    preferences keep the current ones; the answer carries the contract's fields."""
    carer_id = await make_carer(pool, capacity=3)
    carer = bearer("carer", carer_id=str(carer_id))
    await pool.execute(
        "UPDATE foster_carers SET age_min_months = 36, age_max_months = 155,"
        " timings = '{durable,urgence}', preferred_age_min_months = 36,"
        " preferred_age_max_months = 155, preferred_timings = '{durable,urgence}' WHERE id = $1",
        carer_id,
    )
    bad = [
        (_prefs(24, 131), "preferences.age_min_months"),
        (_prefs(48, 167), "preferences.age_max_months"),
        (_prefs(108, 60), "preferences.age_min_months"),
        (_prefs(48, 131, publics=["mna"]), "preferences.publics"),
        (_prefs(48, 131, timings=[]), "preferences.timings"),
        (_prefs(48, 131, timings=["pension"]), "preferences.timings.0"),
        # The deprecated years and care modes, still accepted, are checked once mapped.
        ({"age_min": 2, "age_max": 10, "care_modes": ["durable"]}, "preferences.age_min_months"),
        ({"age_min": 4, "age_max": 10, "care_modes": ["mna"]}, "preferences.publics"),
    ]
    for prefs, field in bad:
        r = await declare(
            client, carer_id, carer, available_places=1, status="active", preferences=prefs
        )
        assert r.status_code == 422, (prefs, r.text)
        assert r.json()["errors"][0]["field"] == field, (prefs, r.text)
    for body, field in (
        ({"status": "active", "leave_from": TODAY.isoformat()}, "leave_from"),
        (
            {
                "status": "leave",
                "leave_from": (TODAY + timedelta(days=5)).isoformat(),
                "until": (TODAY + timedelta(days=2)).isoformat(),
            },
            "until",
        ),
    ):
        r = await declare(client, carer_id, carer, available_places=0, **body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    assert await pool.fetchval("SELECT version FROM foster_carers WHERE id = $1", carer_id) == 1

    prefs = _prefs(48, 131, timings=["urgence"])
    r = await declare(
        client, carer_id, carer, available_places=2, status="active", preferences=prefs
    )
    assert r.status_code == 200, r.text
    out = r.json()
    # The new fields as sent, and the deprecated ones derived (years: completed).
    assert out["preferences"] == {
        **prefs,
        "age_min": 4,
        "age_max": 10,
        "care_modes": ["urgence"],
    }
    assert (out["age_min_months"], out["age_max_months"]) == (36, 155)  # the agrément's
    assert (out["age_min"], out["age_max"]) == (3, 12)
    assert out["agrement_state"] == "valid" and out["valid_until"]
    assert out["employing_authority"] == AUTHORITY
    assert out["open_to_other_authorities"] is False  # an authority's employee: closed
    leave = {"leave_from": (TODAY + timedelta(days=3)).isoformat(), "until": None}
    r = await declare(client, carer_id, carer, available_places=1, status="leave", **leave)
    assert r.status_code == 200, r.text
    assert r.json()["preferences"]["timings"] == ["urgence"], "omitted preferences are kept"
    assert r.json()["leave_from"] == leave["leave_from"] and r.json()["status"] == "leave"
    # The history keeps what it kept: places, status, until.
    history = await pool.fetch(
        "SELECT available_places, status FROM carer_declarations WHERE carer_id = $1 ORDER BY id",
        carer_id,
    )
    assert [tuple(h) for h in history] == [(2, "active"), (1, "leave")]


async def test_preferences_narrow_search(client, pool):
    carer_id = await make_carer(pool, capacity=2)
    carer = bearer("carer", carer_id=str(carer_id))
    r = await declare(client, carer_id, carer, available_places=1, status="active")
    assert r.status_code == 200, r.text
    assert str(carer_id) in await search(client, age=10)
    prefs = _prefs(0, 83)  # up to 6 years 11 months
    r = await declare(
        client, carer_id, carer, available_places=1, status="active", preferences=prefs
    )
    assert r.status_code == 200, r.text
    assert str(carer_id) not in await search(client, age=10)
    assert str(carer_id) in await search(client, age=5)


async def feed_entries(feed: str, hold_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events about ``hold_id`` on an authority's Redis stream, once the relay
    published them."""
    redis = aioredis.from_url(get_settings().redis_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            entries = await redis.xrevrange(f"places:feed:{feed}", count=200)
            found = []
            for _, fields in entries:
                raw = fields.get(b"e")
                if raw:
                    message = json.loads(raw)
                    if message["data"].get("id") == hold_id:
                        found.append(message)
            if found or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()


async def test_openness_decides_who_is_proposed_and_who_holds(client, pool):
    """An authority's carer is closed to other authorities by default: not proposed to Corse
    (20R), not holdable by it (403, coded reason). The employer opens them (If-Match on the
    carer's version, audited); then Corse finds and holds them, and the employer (69M) sees
    that hold on its feed and in its holds list."""
    carer_id = await make_carer(pool, capacity=2)
    carer = bearer("carer", carer_id=str(carer_id))
    r = await declare(client, carer_id, carer, available_places=1, status="active")
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert str(carer_id) in await search(client, AUTHORITY)
    assert str(carer_id) not in await search(client, CORSE)
    request = await corsican_request(client)
    r = await hold(client, request, "carer", str(carer_id))
    assert r.status_code == 403 and r.json()["reason"] == "closed_to_other_authorities", r.text

    url = f"/v1/foster-carers/{carer_id}/openness"
    body = {"open_to_other_authorities": True}
    r = await client.put(url, json=body, headers=dept())
    assert r.status_code == 428, r.text  # If-Match required
    for headers in (carer, dept(CORSE), bearer("structure", finess="690000018")):
        r = await client.put(url, json=body, headers={**headers, "If-Match": f'"{version}"'})
        assert r.status_code == 403, r.text
    r = await client.put(url, json=body, headers={**dept(), "If-Match": f'"{version - 1}"'})
    assert r.status_code == 409, r.text
    assert not await pool.fetchval(
        "SELECT open_to_other_authorities FROM foster_carers WHERE id = $1", carer_id
    )
    r = await client.put(url, json=body, headers={**dept(), **idem(), "If-Match": f'"{version}"'})
    assert r.status_code == 200, r.text
    assert r.json()["open_to_other_authorities"] is True and r.json()["version"] == version + 1
    assert r.headers["ETag"] == f'"{version + 1}"'
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_entries WHERE action = 'carer.openness' AND object_id = $1",
        str(carer_id),
    )

    assert str(carer_id) in await search(client, CORSE)
    r = await hold(client, request, "carer", str(carer_id))
    assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    rows = await pool.fetch(
        "SELECT authority, data, national_data FROM outbox_events"
        " WHERE type = 'hold.created' AND data->>'id' = $1 ORDER BY id",
        hold_id,
    )
    assert [r["authority"] for r in rows] == [CORSE, AUTHORITY]
    original, copy = rows
    assert copy["data"]["placing_authority"] == CORSE == original["data"]["authority"]
    # Neither on the national feed (#18: nothing of children nationally).
    assert original["national_data"] == copy["national_data"] == {}
    (on_feed,) = await feed_entries(AUTHORITY, hold_id)
    assert on_feed["type"] == "hold.created"
    assert on_feed["data"]["placing_authority"] == CORSE

    r = await client.get("/v1/holds", params={"status": "held"}, headers=dept())
    assert r.status_code == 200, r.text
    assert hold_id in {h["id"] for h in r.json()["items"]}
    # A third authority sees nothing of it.
    r = await client.get("/v1/holds", params={"status": "held"}, headers=dept("69D"))
    assert hold_id not in {h["id"] for h in r.json()["items"]}


async def structure_carer(pool: asyncpg.Pool) -> tuple[UUID, dict[str, Any]]:
    """A carer employed by a private placement service (FINESS 236) of Lyon."""
    structure = await make_structure(pool, category="236", commune="69123")
    carer_id = await make_carer(pool, capacity=2)
    await pool.execute(
        "UPDATE foster_carers SET employer_authority = NULL, employer_structure = $2,"
        " open_to_other_authorities = true WHERE id = $1",
        carer_id,
        structure["id"],
    )
    return carer_id, structure


async def test_a_placement_service_manages_its_carers_and_sees_their_holds(client, pool):
    carer_id, structure = await structure_carer(pool)
    other_id, other = await structure_carer(pool)
    service = bearer("structure", finess=structure["finess"])
    r = await declare(client, carer_id, service, available_places=2, status="active")
    assert r.status_code == 200, r.text
    assert r.json()["employing_authority"] == AUTHORITY
    assert r.json()["open_to_other_authorities"] is True
    r = await declare(client, other_id, service, available_places=1, status="active")
    assert r.status_code == 403, r.text
    r = await declare(
        client,
        other_id,
        bearer("structure", finess=other["finess"]),
        available_places=1,
        status="active",
    )
    assert r.status_code == 200, r.text
    # Openness is the service's to decide too, not another service's.
    url = f"/v1/foster-carers/{carer_id}/openness"
    version = await pool.fetchval("SELECT version FROM foster_carers WHERE id = $1", carer_id)
    r = await client.put(
        url,
        json={"open_to_other_authorities": True},
        headers={**bearer("structure", finess=other["finess"]), "If-Match": str(version)},
    )
    assert r.status_code == 403, r.text

    request = await new_request(client)
    mine = await hold(client, request, "carer", str(carer_id))
    assert mine.status_code == 201, mine.text
    other_request = await new_request(client)
    theirs = await hold(client, other_request, "carer", str(other_id))
    assert theirs.status_code == 201, theirs.text
    r = await client.get("/v1/holds", params={"status": "held"}, headers=service)
    assert r.status_code == 200, r.text
    seen = {h["id"] for h in r.json()["items"]}
    assert mine.json()["id"] in seen
    assert theirs.json()["id"] not in seen
