"""POST /v1/structures/{id}/units: an establishment describes its own units; the first one
replaces the default unit a FINESS import gave it."""

import uuid

import asyncpg
import pytest

from tests.support.factories import bearer, idem, make_structure

UNIT = {
    "name": "Les Petits",
    "age_min": 3,
    "age_max": 10,
    "sexes": ["F", "M"],
    "care_modes": ["durable", "urgence"],
    "disability_profiles": ["tsa"],
    "installed": 8,
}


async def imported(pool: asyncpg.Pool) -> dict:
    """A structure as a FINESS import leaves it: one default unit, 0 places, never declared."""
    s = await make_structure(pool, units=[{"name": "Unité (catégorie 177)", "installed": 0}])
    await pool.execute("UPDATE units SET is_default = true WHERE id = $1", s["unit_ids"][0])
    return s


async def unit_ids(pool: asyncpg.Pool, structure_id) -> set[str]:
    rows = await pool.fetch("SELECT id FROM units WHERE structure_id = $1", structure_id)
    return {str(r["id"]) for r in rows}


async def test_first_own_unit_replaces_the_default_one(client, pool):
    s = await imported(pool)
    own = bearer("structure", finess=s["finess"])
    headers = {**own, **idem()}
    r = await client.post(f"/v1/structures/{s['id']}/units", json=UNIT, headers=headers)
    assert r.status_code == 201, r.text
    unit = r.json()
    assert unit["name"] == "Les Petits" and unit["installed"] == 8
    assert unit["care_modes"] == ["durable", "urgence"] and unit["capacity"] is None
    assert await unit_ids(pool, s["id"]) == {unit["id"]}  # the default unit is gone

    # Same key, same body: the same answer, nothing written twice.
    again = await client.post(f"/v1/structures/{s['id']}/units", json=UNIT, headers=headers)
    assert again.status_code == 201 and again.json() == unit
    assert await unit_ids(pool, s["id"]) == {unit["id"]}

    # A second unit is added beside the first; the registry lists both.
    r = await client.post(
        f"/v1/structures/{s['id']}/units",
        json={**UNIT, "name": "Les Grands", "age_min": 11, "age_max": 17},
        headers={**own, **idem()},
    )
    assert r.status_code == 201, r.text
    mine = None
    for offset in range(0, 100_000, 500):
        page = await client.get(
            f"/v1/structures?department=69&limit=500&offset={offset}", headers=own
        )
        mine = next((x for x in page.json()["items"] if x["id"] == str(s["id"])), None)
        if mine is not None or not page.json()["items"]:
            break
    assert mine is not None
    assert sorted(u["name"] for u in mine["units"]) == ["Les Grands", "Les Petits"]

    event = await pool.fetchrow(
        "SELECT data FROM outbox_events"
        " WHERE type = 'structure.updated' AND data->>'unit_added' = $1",
        unit["id"],
    )
    assert event["data"]["units_retired"] == [str(s["unit_ids"][0])]
    audit = await pool.fetchval(
        "SELECT count(*) FROM audit_entries WHERE action = 'unit.create' AND object_id = $1",
        unit["id"],
    )
    assert audit == 1


async def test_a_declared_default_unit_stays(client, pool):
    s = await imported(pool)
    default = s["unit_ids"][0]
    own = bearer("structure", finess=s["finess"])
    await pool.execute("UPDATE units SET installed = 4 WHERE id = $1", default)
    r = await client.put(
        f"/v1/units/{default}/capacity",
        json={"temporality": "current", "available": 1},
        headers={**own, **idem()},
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/structures/{s['id']}/units", json=UNIT, headers={**own, **idem()})
    assert r.status_code == 201, r.text
    assert await unit_ids(pool, s["id"]) == {str(default), r.json()["id"]}


async def test_only_the_establishment_itself_or_the_operator(client, pool):
    s = await imported(pool)
    other = await make_structure(pool)
    path = f"/v1/structures/{s['id']}/units"
    before = await unit_ids(pool, s["id"])
    for headers, status in [
        (bearer("structure", finess=other["finess"]), 403),
        (bearer("department", authority="69M"), 403),
        (bearer("national"), 403),
        (bearer("carer", carer_id=str(uuid.uuid4())), 403),
    ]:
        r = await client.post(path, json=UNIT, headers={**headers, **idem()})
        assert r.status_code == status, r.text
    assert await unit_ids(pool, s["id"]) == before
    r = await client.post(path, json=UNIT, headers={**bearer("operator"), **idem()})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**UNIT, "age_min": 12, "age_max": 5}, "age_min"),
        ({**UNIT, "age_max": 22}, "age_max"),
        ({**UNIT, "care_modes": ["internat"]}, "care_modes"),
        ({**UNIT, "disability_profiles": ["inconnu"]}, "disability_profiles"),
        ({**UNIT, "installed": -1}, "installed"),
        ({**UNIT, "sexes": []}, "sexes"),
        ({**UNIT, "colour": "blue"}, "colour"),
    ],
)
async def test_bad_input_is_422_naming_the_field(client, pool, body, field):
    s = await imported(pool)
    headers = {**bearer("structure", finess=s["finess"]), **idem()}
    r = await client.post(f"/v1/structures/{s['id']}/units", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"].split(".")[0] == field for e in r.json()["errors"]), r.json()
    assert await unit_ids(pool, s["id"]) == {str(s["unit_ids"][0])}


async def test_missing_key_and_unknown_structure(client, pool):
    s = await imported(pool)
    own = bearer("structure", finess=s["finess"])
    r = await client.post(f"/v1/structures/{s['id']}/units", json=UNIT, headers=own)
    assert r.status_code == 428
    r = await client.post(
        f"/v1/structures/{uuid.uuid4()}/units", json=UNIT, headers={**bearer("operator"), **idem()}
    )
    assert r.status_code == 404
    assert await unit_ids(pool, s["id"]) == {str(s["unit_ids"][0])}
