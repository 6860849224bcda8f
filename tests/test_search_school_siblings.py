"""POST /v1/search and /v1/requests with a school (second origin) and siblings already placed
(issue #16, Code civil art. 371-5 and 375-7), against the real database.

The family is at a point between Lyon and Villeurbanne, rounded to (45.77, 4.86): about 2.0 km
from Lyon's point and 2.4 km from Villeurbanne's. Alone, the family's proximity puts a unit in
Lyon before an otherwise identical one in Villeurbanne; each test shows what turns that round.
Care mode ``sequentiel`` and ages 6–12 keep these units apart from other tests' (whose
offers may still appear: only these units' relative order is asserted).
"""

import uuid

import pytest

from tests.support.factories import bearer, idem, make_carer, make_structure, new_request

DEPT = bearer("department", authority="69M")
BETWEEN = {"lat": 45.77, "lon": 4.86}
MODE = "sequentiel"


async def search(client, **over):
    body = {
        "children": [{"age": 8, "sex": "M", "disability_profiles": []}],
        "origin": BETWEEN,
        "care_mode": MODE,
        "max_distance_km": 30,
        "limit": 50,
    }
    body.update(over)
    return await client.post("/v1/search", json=body, headers=DEPT)


async def two_units(client, pool) -> tuple[str, str]:
    """A unit in Lyon and one in Villeurbanne, each with a place now, otherwise the same."""
    ids = []
    for commune in ("69123", "69266"):
        s = await make_structure(
            pool, commune=commune, units=[{"name": f"Séq {commune}", "care_modes": [MODE]}]
        )
        unit_id = str(s["unit_ids"][0])
        r = await client.put(
            f"/v1/units/{unit_id}/capacity",
            headers={**bearer("structure", finess=s["finess"]), **idem()},
            json={"temporality": "current", "available": 2},
        )
        assert r.status_code == 200, r.text
        ids.append(unit_id)
    return ids[0], ids[1]


def order(body: dict, *ids: str) -> list[str]:
    got = [p["target"]["id"] for p in body["proposals"]]
    return [i for i in got if i in ids]


def proposal(body: dict, target: str) -> dict:
    return next(p for p in body["proposals"] if p["target"]["id"] == target)


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"siblings_placed": [{"unit": str(uuid.uuid4())}]}, "siblings_placed[0]"),
        (
            {"siblings_placed": [{"commune": "69123"}, {"carer": str(uuid.uuid4())}]},
            "siblings_placed[1]",
        ),
        ({"siblings_placed": [{"commune": "99999"}]}, "siblings_placed[0]"),
        ({"siblings_placed": [{"commune": "69123", "unit": str(uuid.uuid4())}]}, "siblings_placed"),
        ({"siblings_placed": [{}]}, "siblings_placed"),
        ({"siblings_placed": [{"home": "12 rue X"}]}, "siblings_placed"),
        ({"siblings_placed": [{"commune": "69123"}] * 9}, "siblings_placed"),
        ({"school": {"commune": "99999"}}, "school.commune"),
        ({"school": {"lat": 45.7, "lon": 4.8}}, "school"),
        ({"origin": None}, "origin"),
        ({"origin": None, "school": {"commune": "99999"}}, "school.commune"),
    ],
)
async def test_bad_school_or_sibling_is_422_naming_field(client, over, field):
    r = await search(client, **over)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in r.json()["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"siblings_placed": [{"unit": str(uuid.uuid4())}]}, "siblings_placed[0]"),
        ({"siblings_placed": [{"commune": "99999"}]}, "siblings_placed[0]"),
        ({"school": {"commune": "99999"}}, "school.commune"),
    ],
)
async def test_a_request_with_an_unknown_school_or_sibling_is_422(client, over, field):
    from tests.support.factories import dept, request_body

    r = await client.post("/v1/requests", json=request_body(**over), headers=dept())
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_the_unit_where_his_brother_lives_comes_before_a_nearer_one(client, pool):
    """A boy of 8; his brother already lives in the unit in Villeurbanne. Without him, the Lyon
    unit (nearer the family) comes first; with him, Villeurbanne does, scored as with him."""
    lyon, villeurbanne = await two_units(client, pool)
    plain = (await search(client)).json()
    assert order(plain, lyon, villeurbanne) == [lyon, villeurbanne]
    assert proposal(plain, lyon)["siblings_placed_distance_km"] is None
    r = await search(client, siblings_placed=[{"unit": villeurbanne}])
    assert r.status_code == 200, r.text
    body = r.json()
    assert order(body, lyon, villeurbanne) == [villeurbanne, lyon]
    with_him = proposal(body, villeurbanne)
    assert with_him["siblings_placed_distance_km"] == 0
    assert any(
        x["criterion"] == "siblings_placed"
        and x["detail"] == "un frère ou une sœur y est déjà accueilli"
        for x in with_him["reasons"]
    )
    assert proposal(body, lyon)["siblings_placed_distance_km"] == 4  # Lyon–Villeurbanne


async def test_a_request_records_siblings_placed_a_carer_at_commune_level_only(client, pool):
    """His sister lives with an assistant familial in Villeurbanne, his brother somewhere in
    Villeurbanne too; his school is there. The request records the carer by id and commune
    (never her home), the brother's commune, the school's; a search for the request scores
    them (Villeurbanne first)."""
    lyon, villeurbanne = await two_units(client, pool)
    carer_id = await make_carer(pool, commune="69266")
    request = await new_request(
        client,
        care_mode=MODE,
        children=[{"age": 8, "sex": "M", "disability_profiles": []}],
        siblings_placed=[{"carer": str(carer_id)}, {"commune": "69266"}],
        school={"commune": "69266"},
    )
    assert request["siblings_placed"] == [
        {"kind": "carer", "id": str(carer_id), "commune": "69266"},
        {"kind": "commune", "id": None, "commune": "69266"},
    ]
    assert request["school"] == {"commune": "69266"}
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT siblings_placed FROM placement_requests WHERE id = $1",
            uuid.UUID(request["id"]),
        )
    assert stored[0] == {"kind": "carer", "id": str(carer_id), "commune": "69266"}
    r = await search(client, request_id=request["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert order(body, lyon, villeurbanne) == [villeurbanne, lyon]
    assert proposal(body, villeurbanne)["siblings_placed_distance_km"] == 0
    assert proposal(body, villeurbanne)["school_distance_km"] == 0
    # The body's own (empty) list replaces the request's.
    r = await search(client, request_id=request["id"], siblings_placed=[], school=None)
    assert proposal(r.json(), lyon)["siblings_placed_distance_km"] is None


async def test_with_the_school_in_villeurbanne_the_unit_there_comes_first(client, pool):
    """Family between Lyon and Villeurbanne, school in Villeurbanne: the Villeurbanne unit comes
    first; both distances are shown (family 2.4 km, school 0 km)."""
    lyon, villeurbanne = await two_units(client, pool)
    r = await search(client, school={"commune": "69266"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert order(body, lyon, villeurbanne) == [villeurbanne, lyon]
    v, ly = proposal(body, villeurbanne), proposal(body, lyon)
    assert v["school_distance_km"] == 0 and v["distance_km"] == pytest.approx(2.4, abs=0.2)
    assert ly["school_distance_km"] == pytest.approx(4.3, abs=0.2)
    assert any(
        x["criterion"] == "school" and x["detail"] == "école à 4,3 km" for x in ly["reasons"]
    )


async def test_the_school_does_not_move_the_family_radius(client, pool):
    """School in Villefranche-sur-Saône (about 30 km north), radius 10 km: the units near the
    family are proposed at the first step and nothing near the school widens it."""
    lyon, villeurbanne = await two_units(client, pool)
    far = await make_structure(
        pool, commune="69264", units=[{"name": "Séq Villefranche", "care_modes": [MODE]}]
    )
    far_id = str(far["unit_ids"][0])
    r = await client.put(
        f"/v1/units/{far_id}/capacity",
        headers={**bearer("structure", finess=far["finess"]), **idem()},
        json={"temporality": "current", "available": 2},
    )
    assert r.status_code == 200
    body = (await search(client, school={"commune": "69264"}, max_distance_km=10)).json()
    assert proposal(body, lyon)["step"] == "none"
    assert proposal(body, villeurbanne)["step"] == "none"
    assert order(body, lyon, far_id)[0] == lyon
    assert proposal(body, far_id)["relaxed"] != []
    assert proposal(body, far_id)["school_distance_km"] == 0


async def test_the_school_alone_is_the_origin(client, pool):
    """No family origin, school in Villeurbanne: the school's commune is the ladder's origin
    (the Villeurbanne unit first, at 0 km), and its distance is not scored a second time."""
    lyon, villeurbanne = await two_units(client, pool)
    r = await search(client, origin=None, school={"commune": "69266"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["origin_department"] == "69"
    assert order(body, lyon, villeurbanne) == [villeurbanne, lyon]
    assert proposal(body, villeurbanne)["distance_km"] == 0
    assert proposal(body, villeurbanne)["school_distance_km"] is None


async def test_a_carers_school_and_sibling_distances_are_whole_km(client, pool):
    """A carer in Villeurbanne, school in Lyon, a sibling in Lyon: both distances from her are
    whole kilometres to her commune's point, and her home never leaves."""
    carer_id = await make_carer(pool, commune="69266")
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=bearer("carer", carer_id=str(carer_id)),
        json={"available_places": 2, "status": "active"},
    )
    assert r.status_code == 200
    r = await search(
        client,
        care_mode="durable",
        children=[{"age": 4, "sex": "F"}],
        school={"commune": "69123"},
        siblings_placed=[{"commune": "69123"}],
    )
    body = r.json()
    mine = proposal(body, str(carer_id))
    assert mine["school_distance_km"] == 4 and mine["siblings_placed_distance_km"] == 4
    assert "lat" not in r.text and "lon" not in r.text and "location" not in r.text
