"""Registering an establishment: FINESS key, commune, location; nothing written on refusal."""

import pytest

from geo.finess import make_finess
from tests.support.factories import bearer, structure_body


async def structure_count(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM structures")


async def test_register_structure(client, pool):
    finess = make_finess("69", 123_456)
    r = await client.post("/v1/structures", json=structure_body(finess), headers=bearer("operator"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["department"] == "69" and created["commune"] == "69266"
    assert abs(created["location"]["lat"] - 45.7719) < 1e-6
    assert created["units"][0]["disability_profiles"] == ["tsa"]
    assert created["units"][0]["capacity"] is None
    r = await client.post("/v1/structures", json=structure_body(finess), headers=bearer("operator"))
    assert r.status_code == 409


def _bad_key(finess: str) -> str:
    return finess[:8] + str((int(finess[8]) + 1) % 10)


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"finess": "bad"}, "finess"),
        ({"finess": _bad_key(make_finess("69", 7))}, "finess"),
        ({"commune": "99999"}, "commune"),
        ({"commune": "6912"}, "commune"),
        ({"location": {"lat": 40.4168, "lon": -3.7038}}, "location"),  # Madrid
        ({"location": {"lat": 0, "lon": 0}}, "location"),
        ({"location": {"lat": 95, "lon": 0}}, "location.lat"),
        ({"category": "101"}, "category"),
        ({"name": ""}, "name"),
        (
            {
                "units": [
                    {
                        "name": "U",
                        "age_min": 12,
                        "age_max": 3,
                        "sexes": ["F"],
                        "care_modes": ["durable"],
                        "installed": 3,
                    }
                ]
            },
            "units.0.age_min",
        ),
        (
            {
                "units": [
                    {
                        "name": "U",
                        "age_min": 1,
                        "age_max": 3,
                        "sexes": ["X"],
                        "care_modes": ["durable"],
                        "installed": 3,
                    }
                ]
            },
            "units.0.sexes.0",
        ),
        (
            {
                "units": [
                    {
                        "name": "U",
                        "age_min": 1,
                        "age_max": 3,
                        "sexes": ["F"],
                        "care_modes": ["pension"],
                        "installed": 3,
                    }
                ]
            },
            "units.0.care_modes.0",
        ),
        ({"director_name": "M. Dupont"}, "director_name"),
    ],
)
async def test_bad_input_is_422_naming_field(client, pool, over, field):
    before = await structure_count(pool)
    payload = {**structure_body(make_finess("69", 654_321)), **over}
    r = await client.post("/v1/structures", json=payload, headers=bearer("operator"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await structure_count(pool) == before


async def test_only_the_operator_registers(client):
    for headers in (
        bearer("department", authority="69M"),
        bearer("authority_admin", authority="69M"),
        bearer("national"),
        bearer("structure", finess=make_finess("69", 1)),
    ):
        r = await client.post(
            "/v1/structures", json=structure_body(make_finess("69", 2)), headers=headers
        )
        assert r.status_code == 403


async def test_overseas_location_accepted(client):
    r = await client.post(
        "/v1/structures",
        json=structure_body(
            make_finess("974", 11), commune="97411", location={"lat": -20.90, "lon": 55.48}
        ),
        headers=bearer("operator"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["department"] == "974"
