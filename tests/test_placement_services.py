"""A service de placement familial (FINESS 236) has no units: its places are its carers'.

The registry refuses to register one with units (422 naming ``units``) or to describe a
unit on one (422 naming ``category``), writing nothing; registered without units it is
accepted. That the FINESS import gives it no default unit (and takes back the one of a
structure recategorised to 236) is tested in tests/test_finess_import.py
(``test_placement_service_gets_no_default_unit``,
``test_recategorised_to_placement_service_loses_its_undeclared_default_unit``).
"""

import pytest

from geo.finess import make_finess
from tests.support.factories import bearer, idem, structure_body

UNIT = {
    "name": "Accueil au siège",
    "age_min": 0,
    "age_max": 18,
    "sexes": ["F", "M"],
    "care_modes": ["durable"],
    "installed": 6,
}


async def written(pool) -> tuple[int, int, int, int]:
    async with pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM structures"),
            await conn.fetchval("SELECT count(*) FROM units"),
            await conn.fetchval("SELECT count(*) FROM outbox_events"),
            await conn.fetchval("SELECT count(*) FROM audit_entries"),
        )


@pytest.mark.database
async def test_placement_service_registered_with_units_is_refused(client, pool):
    before = await written(pool)
    body = structure_body(make_finess("69", 236_001), category="236")
    r = await client.post("/v1/structures", json=body, headers=bearer("operator"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert error["field"] == "units"
    assert "assistants familiaux" in error["message"]
    assert await written(pool) == before


@pytest.mark.database
async def test_no_unit_is_described_on_a_placement_service(client, pool):
    finess = make_finess("69", 236_002)
    body = structure_body(finess, category="236", units=[])
    r = await client.post("/v1/structures", json=body, headers=bearer("operator"))
    assert r.status_code == 201, r.text
    service = r.json()
    assert service["category"] == "236" and service["units"] == []

    before = await written(pool)
    for headers in (bearer("structure", finess=finess), bearer("operator")):
        r = await client.post(
            f"/v1/structures/{service['id']}/units", json=UNIT, headers={**headers, **idem()}
        )
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == "category" and "236" in error["message"]
    assert await written(pool) == before
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM units WHERE structure_id = $1", service["id"])
            == 0
        )
    # Another category still describes its units (the rule is the category's, not a block).
    other = make_finess("69", 236_003)
    r = await client.post("/v1/structures", json=structure_body(other), headers=bearer("operator"))
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/structures/{r.json()['id']}/units",
        json=UNIT,
        headers={**bearer("structure", finess=other), **idem()},
    )
    assert r.status_code == 201, r.text
