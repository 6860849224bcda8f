"""Lieux de vie et d'accueil (FINESS 462) at commune precision (#14): the registry, FHIR and
search show their commune's point — and search a distance to the commune, rounded — to
every caller but the LVA itself, its authority's roles and the platform operator. Other
categories keep their exact point. Against the real database."""

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.factories import bearer, idem, make_structure

COMMUNE = "69264"  # Villefranche-sur-Saône: authority 69D (Rhône)
AUTHORITY = "69D"
OFFSET = (0.031, 0.027)  # the LVA's door, ~4 km from the commune's point
ADDRESS = "12 chemin des Lilas"


async def commune_point(pool: asyncpg.Pool, insee: str) -> tuple[float, float]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon"
            " FROM communes WHERE insee = $1",
            insee,
        )
    return row["lat"], row["lon"]


async def make_lva(client: httpx.AsyncClient, pool: asyncpg.Pool, category: str = "462") -> Any:
    """An establishment at a door OFFSET from its commune's point, with a street address and
    one unit that declared 2 free places (the snapshot takes the searchable point: the
    commune's for an LVA, the door for any other category)."""
    s = await make_structure(pool, commune=COMMUNE, category=category)
    lat, lon = await commune_point(pool, COMMUNE)
    door = (lat + OFFSET[0], lon + OFFSET[1])
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE structures SET address = $2, postal_code = '69400',"
            " location = ST_SetSRID(ST_MakePoint($4, $3), 4326)::geography WHERE id = $1",
            s["id"],
            ADDRESS,
            *door,
        )
    r = await client.put(
        f"/v1/units/{s['unit_ids'][0]}/capacity",
        headers={**bearer("structure", finess=s["finess"]), **idem()},
        json={"temporality": "current", "available": 2},
    )
    assert r.status_code == 200, r.text
    return {**s, "door": door, "commune_point": (lat, lon)}


def commune_only() -> list[tuple[str, dict[str, str]]]:
    return [
        ("national", bearer("national")),
        ("another authority", bearer("department", authority="69M")),
        ("another establishment", bearer("structure", finess="690000018")),
        ("a carer", bearer("carer", carer_id=str(uuid.uuid4()))),
    ]


def exact(lva: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    return [
        ("the LVA itself", bearer("structure", finess=lva["finess"])),
        ("its authority", bearer("department", authority=AUTHORITY)),
        ("its authority's administrator", bearer("authority_admin", authority=AUTHORITY)),
        ("the platform operator", bearer("operator")),
    ]


async def registry_location(client: httpx.AsyncClient, lva: Any, headers: dict[str, str]) -> Any:
    r = await client.get(
        f"/v1/structures?department=69&category={lva['category']}&limit=500", headers=headers
    )
    assert r.status_code == 200, r.text
    (item,) = [i for i in r.json()["items"] if i["id"] == str(lva["id"])]
    assert "authority" not in item and "commune_location" not in item
    return item["location"]


async def test_registry_serves_an_lva_at_its_commune_to_who_does_not_need_more(client, pool):
    lva = {**await make_lva(client, pool), "category": "462"}
    lat, lon = lva["commune_point"]
    for who, headers in commune_only():
        location = await registry_location(client, lva, headers)
        assert location == {"lat": lat, "lon": lon, "precision": "commune"}, who
    for who, headers in exact(lva):
        location = await registry_location(client, lva, headers)
        assert (location["lat"], location["lon"]) == lva["door"], who
        assert location["precision"] == "address", who


async def test_other_categories_keep_their_point(client, pool):
    mecs = {**await make_lva(client, pool, category="177"), "category": "177"}
    for who, headers in commune_only():
        location = await registry_location(client, mecs, headers)
        assert (location["lat"], location["lon"]) == mecs["door"], who


async def fhir_location(client: httpx.AsyncClient, lva: Any, headers: dict[str, str]) -> Any:
    r = await client.get(f"/fhir/Location/{lva['unit_ids'][0]}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_fhir_position_and_address_at_commune_precision(client, pool):
    lva = await make_lva(client, pool)
    lat, lon = lva["commune_point"]
    for who, headers in commune_only():
        resource = await fhir_location(client, lva, headers)
        position = resource["position"]
        assert (position["latitude"], position["longitude"]) == (round(lat, 6), round(lon, 6))
        assert position["extension"][0]["valueBoolean"] is False, who
        assert "line" not in resource["address"], who
        assert resource["address"]["postalCode"] == "69400"
        assert ADDRESS not in str(resource)
        r = await client.get(f"/fhir/Organization/{lva['id']}", headers=headers)
        assert r.status_code == 200 and ADDRESS not in r.text, who
        r = await client.get(
            f"/fhir/Location?organization={lva['id']}&_include=Location:organization",
            headers=headers,
        )
        assert r.status_code == 200 and ADDRESS not in r.text, who
        assert len(r.json()["entry"]) == 2
    for who, headers in exact(lva):
        resource = await fhir_location(client, lva, headers)
        position = resource["position"]
        door = (round(lva["door"][0], 6), round(lva["door"][1], 6))
        assert (position["latitude"], position["longitude"]) == door, who
        assert resource["address"]["line"] == [ADDRESS], who


async def test_search_gives_an_lva_its_commune_and_a_rounded_distance(client, pool):
    """Search answers every caller at commune precision for an LVA: the distance to its
    commune's point, in whole kilometres — not the door's, not to the 100 m."""
    lva = await make_lva(client, pool)
    mecs = await make_lva(client, pool, category="177")
    body = {
        "children": [{"age": 10, "sex": "M", "disability_profiles": []}],
        "origin": {"commune": "69123"},
        "care_mode": "durable",
        "max_distance_km": 80,
        "limit": 50,
    }
    async with pool.acquire() as conn:
        to_commune, to_door = await conn.fetchrow(
            """
            SELECT ST_Distance(o.location, c.location) / 1000.0,
                   ST_Distance(o.location, ST_SetSRID(ST_MakePoint($3, $2), 4326)::geography)
                     / 1000.0
              FROM communes o, communes c WHERE o.insee = '69123' AND c.insee = $1
            """,
            COMMUNE,
            *lva["door"],
        )
    assert abs(to_commune - to_door) > 1  # the test tells them apart
    for headers in (
        bearer("department", authority="69M"),
        bearer("authority_admin", authority=AUTHORITY),
    ):
        r = await client.post("/v1/search", json=body, headers=headers)
        assert r.status_code == 200, r.text
        by_unit = {p["target"]["id"]: p for p in r.json()["proposals"]}
        proposal = by_unit[str(lva["unit_ids"][0])]
        assert proposal["distance_km"] == round(to_commune) and proposal["commune"] == COMMUNE
        # Any other category keeps its exact distance (to 100 m).
        assert by_unit[str(mecs["unit_ids"][0])]["distance_km"] == round(to_door, 1)
        assert f"{round(to_commune)} km" in str(proposal["reasons"])


async def test_an_lva_is_filtered_and_ordered_from_its_commune(client, pool):
    """The search's radius and order read the snapshot's point: the commune's for an LVA (so
    the radius boundary cannot be bisected to the door), the door for other categories; the
    FINESS import's move of a structure keeps the rule (api.precision.point_sql)."""

    async def snapshot_point(unit_id: Any) -> tuple[float, float]:
        row = await pool.fetchrow(
            "SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon"
            " FROM capacity_snapshots WHERE unit_id = $1 AND temporality = 'current'",
            unit_id,
        )
        return row["lat"], row["lon"]

    lva = await make_lva(client, pool)
    assert await snapshot_point(lva["unit_ids"][0]) == pytest.approx(lva["commune_point"])
    other = await make_lva(client, pool, category="177")
    assert await snapshot_point(other["unit_ids"][0]) == pytest.approx(other["door"])
