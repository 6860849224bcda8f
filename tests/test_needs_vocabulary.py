"""The needs vocabulary (issue #16, deliverable 6), as a placement officer states the cases.

Timing, public and formula are three axes ("a young adult, in emergency" can be asked); ages
are months (a pouponnière takes a child of 2 years 10 months, not one of 3 years 1 month); a
parent expecting a child is taken by a centre parental; the care mode of old still works for
one version, and migration 0017 moved an old database to the new vocabulary without losing a
match. The library first, then the API, then the migration on a database of its own.
"""

import asyncio
import itertools
import json
import os
import uuid
from typing import Any

import asyncpg
import pytest

from api.db import drop_database, migrate
from geo.finess import make_finess
from matching import Child, Need, Offer, accepts, failed_constraints, score
from matching.constraints import child_violations
from matching.vocabulary import (
    LEGACY_CARE_MODE,
    CareMode,
    age_label,
    legacy_care_mode,
    legacy_care_modes,
    legacy_offer_sets,
)
from tests.support.database import create_fixture_database
from tests.support.env import BASE_DSN
from tests.support.factories import bearer, dept, hold, idem, make_structure, new_request

BOTH = frozenset({"F", "M"})
STRASBOURG = "67482"
"""The API scenarios' offers and searches are in Strasbourg, where no other test puts a unit:
the suite shares one database, and a jeune majeur or parent-enfant unit with free places in
Lyon would change other tests' answers."""


def offer(oid: str, **kw: Any) -> Offer:
    """A unit 0–21 years, durable care of a minor alone, unless told otherwise."""
    fields: dict[str, Any] = {
        "kind": "unit",
        "id": oid,
        "department": "69",
        "commune": "69123",
        "distance_km": 3.0,
        "free_places": 2,
        "age_min_months": 0,
        "age_max_months": 263,
        "sexes": BOTH,
        "timings": {"durable"},
        "publics": {"mineur"},
        "formulas": {"enfant"},
    }
    fields.update(kw)
    return Offer(**fields)


# ------------------------------------------------------------------------------ library


@pytest.mark.pure
def test_a_young_adult_in_emergency_is_taken_where_both_are_offered() -> None:
    """ "A young woman of 19, emergency": a unit offering urgence and jeune_majeur takes her;
    one offering jeune_majeur in durable care only does not (timing refused)."""
    need = Need(children=(Child(19 * 12, "F"),), timing="urgence", public="jeune_majeur")
    both = offer("both", timings={"urgence", "durable"}, publics={"jeune_majeur"})
    durable = offer("durable", publics={"jeune_majeur"})
    minors = offer("minors", timings={"urgence"})
    assert accepts(need, both)
    assert failed_constraints(need, durable) == ["timing"]
    assert failed_constraints(need, minors) == ["public"]


@pytest.mark.pure
def test_a_pouponniere_takes_2_years_10_months_not_3_years_1_month() -> None:
    pouponniere = offer("p", category="172", age_max_months=35, timings={"urgence", "durable"})
    young = Need(children=(Child(34, "M"),), timing="urgence")
    older = Need(children=(Child(37, "M"),), timing="urgence")
    assert accepts(young, pouponniere)
    assert failed_constraints(older, pouponniere) == ["age"]
    [violation] = child_violations(older.children[0], pouponniere, 0)
    assert violation.detail == "3 ans hors tranche 0–35 mois"
    # Under 3 the explanation speaks in months.
    assert age_label(34) == "34 mois" and age_label(37) == "3 ans"
    reasons = {r.criterion: r.detail for r in score(young, pouponniere)[1]}
    assert "moins de 3 ans" in reasons["family_type"]
    assert reasons["needs"].startswith("Accueil d'urgence, mineur, accueil de l'enfant")


@pytest.mark.pure
def test_a_mother_expecting_with_no_child_yet_is_taken_by_a_centre_parental() -> None:
    need = Need(children=(), timing="durable", formula="parent_enfant", parent_expecting=True)
    assert need.size == 1 and need.children[0].expected  # the expected child: one place
    centre = offer("cp", category="166", age_max_months=35, formulas={"parent_enfant"})
    assert accepts(need, centre)
    assert failed_constraints(need, offer("mecs")) == ["formula"]
    older_only = offer("older", formulas={"parent_enfant"}, age_min_months=72)
    assert failed_constraints(need, older_only) == ["age"]  # expected: 0 months
    # A single-sex unit: the expected child's sex is not known, not checked.
    assert accepts(need, offer("girls", formulas={"parent_enfant"}, sexes={"F"}))
    with pytest.raises(ValueError, match="parent_enfant"):
        Need(children=(Child(0, "F"),), timing="durable", parent_expecting=True)
    with pytest.raises(ValueError, match="au moins un enfant"):
        Need(children=(), timing="durable", formula="parent_enfant")


@pytest.mark.pure
def test_a_mother_with_her_baby_expecting_another_needs_two_places() -> None:
    need = Need(
        children=(Child(14, "F"),), timing="durable", formula="parent_enfant", parent_expecting=True
    )
    centre = offer("cp", formulas={"parent_enfant"}, age_max_months=35, free_places=1)
    assert need.size == 2
    assert failed_constraints(need, centre) == ["free_places"]
    assert accepts(need, offer("cp2", formulas={"parent_enfant"}, age_max_months=35))


def _subsets(codes: list[str]) -> list[frozenset[str]]:
    return [
        frozenset(c) for n in range(1, len(codes) + 1) for c in itertools.combinations(codes, n)
    ]


LEGACY_SETS = _subsets([m.value for m in CareMode])


@pytest.mark.pure
@pytest.mark.parametrize("modes", LEGACY_SETS, ids=lambda s: "+".join(sorted(s)))
def test_every_old_match_is_still_a_match(modes: frozenset[str]) -> None:
    """For every offer's set of care modes of old (all 63) and every request's care mode of
    old: what matched before (the mode in the set) matches after, through the one mapping."""
    timings, publics, formulas = legacy_offer_sets(modes)
    mapped = offer("o", timings=timings, publics=publics, formulas=formulas)
    for mode in CareMode:
        timing, public, formula = LEGACY_CARE_MODE[mode]
        need = Need(children=(Child(10 * 12, "F"),), timing=timing, public=public, formula=formula)
        if mode in modes:
            assert accepts(need, mapped), (mode, modes)
    # The derived care modes of old keep every code the offer had.
    assert legacy_care_modes(timings, publics, formulas) >= modes


@pytest.mark.pure
def test_a_requests_care_mode_of_old_round_trips() -> None:
    for mode in CareMode:
        assert legacy_care_mode(*LEGACY_CARE_MODE[mode]) == mode


# ---------------------------------------------------------------------------------- API


async def declare(client, structure: dict[str, Any], available: int = 1, index: int = 0) -> None:
    """One free place by default, and 0 at the end of each scenario: the suite shares one
    database, and the national steps of other tests' searches would find these places."""
    r = await client.put(
        f"/v1/units/{structure['unit_ids'][index]}/capacity",
        headers={**bearer("structure", finess=structure["finess"]), **idem()},
        json={"temporality": "current", "available": available},
    )
    assert r.status_code == 200, r.text


async def search(client, **body: Any) -> dict[str, Any]:
    r = await client.post(
        "/v1/search",
        json={"origin": {"commune": STRASBOURG}, "max_distance_km": 30, "limit": 50, **body},
        headers=dept(),
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def unit_ids(answer: dict[str, Any]) -> set[str]:
    return {p["target"]["id"] for p in answer["proposals"]}


async def test_api_a_young_adult_in_emergency(client, pool):
    both = await make_structure(
        pool,
        department="67",
        commune=STRASBOURG,
        units=[
            {
                "name": "Urgence jeunes majeurs",
                "age_min_months": 192,
                "age_max_months": 263,
                "timings": ["durable", "urgence"],
                "publics": ["jeune_majeur"],
            }
        ],
    )
    durable = await make_structure(
        pool,
        department="67",
        commune=STRASBOURG,
        units=[
            {
                "name": "Jeunes majeurs",
                "age_min_months": 192,
                "age_max_months": 263,
                "publics": ["jeune_majeur"],
            }
        ],
    )
    await declare(client, both)
    await declare(client, durable)
    answer = await search(
        client,
        children=[{"age": 19, "sex": "F"}],
        timing="urgence",
        public="jeune_majeur",
    )
    found = unit_ids(answer)
    assert str(both["unit_ids"][0]) in found and str(durable["unit_ids"][0]) not in found
    # The care mode of old could not ask it: jeune_majeur meant durable.
    legacy = await search(client, children=[{"age": 19, "sex": "F"}], care_mode="jeune_majeur")
    assert str(durable["unit_ids"][0]) in unit_ids(legacy)
    await declare(client, both, 0)
    await declare(client, durable, 0)


async def test_api_a_pouponniere_under_36_months(client, pool):
    # The API refuses a pouponnière's unit beyond 35 months, in months or in years of old.
    for unit in ({"age_min_months": 0, "age_max_months": 47}, {"age_min": 0, "age_max": 3}):
        body = {
            "finess": make_finess("69", 990_001),
            "name": "Pouponnière",
            "category": "172",
            "commune": "69123",
            "units": [
                {
                    "name": "Bébés",
                    "sexes": ["F", "M"],
                    "timings": ["urgence", "durable"],
                    "publics": ["mineur"],
                    "formulas": ["enfant"],
                    "installed": 8,
                    **unit,
                }
            ],
        }
        r = await client.post("/v1/structures", json=body, headers=bearer("operator"))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "units.0.age_max_months", r.text
    pouponniere = await make_structure(
        pool,
        department="67",
        commune=STRASBOURG,
        category="172",
        units=[
            {"name": "Bébés", "age_min_months": 0, "age_max_months": 35, "timings": ["urgence"]}
        ],
    )
    r = await client.post(
        f"/v1/structures/{pouponniere['id']}/units",
        json={
            "name": "Grands bébés",
            "age_min_months": 0,
            "age_max_months": 40,
            "sexes": ["F", "M"],
            "timings": ["durable"],
            "publics": ["mineur"],
            "formulas": ["enfant"],
            "installed": 4,
        },
        headers={**bearer("structure", finess=pouponniere["finess"]), **idem()},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "age_max_months", r.text
    await declare(client, pouponniere)
    unit = str(pouponniere["unit_ids"][0])
    # "A child of 2 years 10 months, urgent": proposed; "3 years 1 month": not.
    young = await search(client, children=[{"age_months": 34, "sex": "M"}], timing="urgence")
    assert unit in unit_ids(young)
    [proposal] = [p for p in young["proposals"] if p["target"]["id"] == unit]
    assert any("moins de 3 ans" in r["detail"] for r in proposal["reasons"])
    older = await search(client, children=[{"age_months": 37, "sex": "M"}], timing="urgence")
    assert unit not in unit_ids(older)
    # A request records months, and shows the completed years (deprecated) beside them.
    request = await new_request(
        client, children=[{"age_months": 34, "sex": "M", "disability_profiles": []}]
    )
    assert request["children"][0]["age_months"] == 34 and request["children"][0]["age"] == 2
    await declare(client, pouponniere, 0)


async def test_api_a_mother_expecting_no_child_yet(client, pool):
    centre = await make_structure(
        pool,
        department="67",
        commune=STRASBOURG,
        category="166",
        units=[
            {
                "name": "Centre parental",
                "age_min_months": 0,
                "age_max_months": 35,
                "formulas": ["parent_enfant"],
            }
        ],
    )
    mecs = await make_structure(pool, department="67", commune=STRASBOURG)
    await declare(client, centre)
    await declare(client, mecs)
    request = await new_request(client, children=[], formula="parent_enfant", parent_expecting=True)
    assert request["children"] == [] and request["parent_expecting"] is True
    assert request["care_mode"] == "mere_enfant"  # deprecated, derived
    answer = await search(
        client,
        children=[],
        timing="durable",
        formula="parent_enfant",
        parent_expecting=True,
        request_id=request["id"],
    )
    unit = str(centre["unit_ids"][0])
    found = unit_ids(answer)
    assert unit in found and str(mecs["unit_ids"][0]) not in found
    # The expected child is the group's last index: index 0 here.
    [proposal] = [p for p in answer["proposals"] if p["target"]["id"] == unit]
    assert proposal["children"] == [0] and answer["unmatched_children"] == []
    r = await hold(client, request, "unit", unit)
    assert r.status_code == 201, r.text
    assert r.json()["places"] == 1  # the expected child's place
    # Not without a child nor parent_expecting; parent_expecting only with parent_enfant.
    for over, field in (
        ({"children": [], "formula": "parent_enfant"}, "children"),
        ({"parent_expecting": True}, "parent_expecting"),
        ({"children": [], "parent_expecting": True}, "parent_expecting"),
    ):
        r = await client.post(
            "/v1/requests",
            json={**request_body_of(request), **over},
            headers=dept(),
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    await declare(client, mecs, 0)  # the centre's one place is held


def request_body_of(request: dict[str, Any]) -> dict[str, Any]:
    """A new request's body like ``request`` (a child of 6, durable care of a minor)."""
    return {
        "children": [{"age": 6, "sex": "M"}],
        "origin": {"commune": "69123"},
        "timing": "durable",
        "urgency": "days",
        "measure": request["measure"],
        "reference": f"ASE69-{uuid.uuid4().hex[:10]}",
    }


async def test_api_a_request_of_old_with_care_mode_mna(client, pool):
    mna = await make_structure(
        pool,
        department="67",
        commune=STRASBOURG,
        units=[
            {"name": "MNA", "age_min_months": 144, "age_max_months": 215, "care_modes": ["mna"]}
        ],
    )
    await declare(client, mna)
    request = await new_request(
        client,
        care_mode="mna",
        children=[{"age": 15, "sex": "M", "disability_profiles": []}],
    )
    # Both forms: the three axes, and the care mode of old.
    assert (request["timing"], request["public"], request["formula"]) == (
        "durable",
        "mna",
        "enfant",
    )
    assert request["care_mode"] == "mna"
    assert request["children"][0] == {
        "age_months": 180,
        "age": 15,
        "sex": "M",
        "disability_profiles": [],
        "mdph_notified": None,
        "disability_service": None,
    }
    r = await client.get(f"/v1/requests/{request['id']}", headers=dept())
    assert r.json()["care_mode"] == "mna" and r.json()["public"] == "mna"
    answer = await search(client, children=[{"age": 15, "sex": "M"}], care_mode="mna")
    assert str(mna["unit_ids"][0]) in unit_ids(answer)
    # A unit's response carries both forms too.
    r = await client.get("/v1/structures?department=67&limit=500", headers=bearer("national"))
    [unit] = [
        u for s in r.json()["items"] for u in s["units"] if u["id"] == str(mna["unit_ids"][0])
    ]
    assert (unit["timings"], unit["publics"], unit["formulas"]) == (
        ["durable"],
        ["mna"],
        ["enfant"],
    )
    assert (unit["age_min"], unit["age_max"], unit["care_modes"]) == (12, 17, ["mna"])
    # The care mode of old beside a new field that says otherwise: 422 naming care_mode.
    r = await client.post(
        "/v1/search",
        json={
            "children": [{"age": 15, "sex": "M"}],
            "origin": {"commune": "69123"},
            "care_mode": "mna",
            "public": "jeune_majeur",
        },
        headers=dept(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "care_mode", r.text
    await declare(client, mna, 0)


async def test_the_deprecated_fields_are_marked_in_the_openapi(client):
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schemas["RequestIn"]["properties"]["care_mode"]["deprecated"] is True
    assert schemas["SearchIn"]["properties"]["care_mode"]["deprecated"] is True
    assert schemas["UnitIn"]["properties"]["care_modes"]["deprecated"] is True
    assert schemas["UnitIn"]["properties"]["age_max"]["deprecated"] is True
    assert "deprecated" not in schemas["RequestIn"]["properties"]["timing"]


# ---------------------------------------------------------------------------- migration

OLD_UNITS = [(f"U{i:02d}", sorted(modes)) for i, modes in enumerate(LEGACY_SETS)]


async def _old_database(dsn: str) -> None:
    """A database at 0016 (the vocabulary of old) with every set of care modes as a unit, a
    pouponnière and a centre parental of "0–3 ans", a carer and a request of old."""
    await create_fixture_database(dsn, "0016")
    conn = await asyncpg.connect(dsn)
    try:
        for finess, category in (("690000001", "177"), ("690000002", "172"), ("690000003", "166")):
            await conn.execute(
                "INSERT INTO structures (finess, name, category, department, commune, location)"
                " SELECT $1, $1, $2, '69', insee, location FROM communes WHERE insee = '69123'",
                finess,
                category,
            )
        await conn.executemany(
            "INSERT INTO units (structure_id, name, age_min, age_max, sexes, care_modes,"
            " installed) SELECT id, $1, 6, 12, ARRAY['F','M'], $2, 5 FROM structures"
            " WHERE finess = '690000001'",
            OLD_UNITS,
        )
        await conn.execute(
            "INSERT INTO units (structure_id, name, age_min, age_max, sexes, care_modes,"
            " installed) SELECT id, 'Bébés', 0, 3, ARRAY['F','M'], ARRAY['durable','urgence'], 5"
            " FROM structures WHERE finess = '690000002'"
        )
        await conn.execute(
            "INSERT INTO units (structure_id, name, age_min, age_max, sexes, care_modes,"
            " installed) SELECT id, 'Parents', 0, 3, ARRAY['F','M'], ARRAY['mere_enfant'], 5"
            " FROM structures WHERE finess = '690000003'"
        )
        await conn.execute(
            "INSERT INTO foster_carers (agrement_number, agrement_department, department,"
            " commune, location, agrement_capacity, age_min, age_max, care_modes,"
            " available_places, declared_by, issued_on)"
            " SELECT 'AF-OLD-1', '69', '69', insee, location, 3, 0, 18,"
            " ARRAY['durable','urgence','mna'], 0, 'test', current_date - 30"
            " FROM communes WHERE insee = '69266'"
        )
        await conn.execute(
            "UPDATE foster_carers SET preferred_age_min = 12, preferred_age_max = 17,"
            " preferred_care_modes = ARRAY['mna']"
        )
        await conn.execute(
            "INSERT INTO placement_requests (department, reference, children, origin_commune,"
            " origin_location, care_mode, urgency, measure_kind, decided_on, created_by)"
            " SELECT '69', 'OLD-1', $1, insee, location, 'mna', 'days', 'judicial',"
            " current_date, 'test' FROM communes WHERE insee = '69123'",
            json.dumps(
                [{"age": 15, "sex": "M", "disability_profiles": []}, {"age": 2, "sex": "F"}]
            ),
        )
    finally:
        await conn.close()


@pytest.mark.database
async def test_migration_0017_maps_an_old_database():
    dsn = f"{BASE_DSN}/places_test_{os.getpid()}_vocab"
    await _old_database(dsn)
    try:
        await asyncio.to_thread(migrate, dsn)
        conn = await asyncpg.connect(dsn)
        try:
            units = {
                r["name"]: r
                for r in await conn.fetch(
                    "SELECT name, age_min_months, age_max_months, timings, publics, formulas"
                    " FROM units"
                )
            }
            # Every set of care modes as the one mapping says (the SQL repeats it).
            for name, modes in OLD_UNITS:
                row = units[name]
                assert (row["age_min_months"], row["age_max_months"]) == (72, 155)
                sets = (frozenset(row["timings"]), frozenset(row["publics"]))
                assert (*sets, frozenset(row["formulas"])) == legacy_offer_sets(modes), modes
            # "0–3 ans" of old is 0–47 months; a pouponnière and a centre parental: 0–35.
            assert (units["Bébés"]["age_min_months"], units["Bébés"]["age_max_months"]) == (0, 35)
            assert units["Parents"]["age_max_months"] == 35
            assert units["Parents"]["formulas"] == ["parent_enfant"]
            carer = await conn.fetchrow("SELECT * FROM foster_carers")
            assert (carer["age_min_months"], carer["age_max_months"]) == (0, 227)
            assert set(carer["timings"]) == {"durable", "urgence"}
            assert set(carer["publics"]) == {"mineur", "mna"}
            assert (carer["preferred_age_min_months"], carer["preferred_age_max_months"]) == (
                144,
                215,
            )
            assert (carer["preferred_timings"], carer["preferred_publics"]) == (
                ["durable"],
                ["mna"],
            )
            request = await conn.fetchrow("SELECT * FROM placement_requests")
            assert (request["timing"], request["public"], request["formula"]) == (
                "durable",
                "mna",
                "enfant",
            )
            assert request["parent_expecting"] is False
            children = json.loads(request["children"])  # a bare connection: JSONB as text
            assert [c["age_months"] for c in children] == [180, 24]
            assert all("age" not in c for c in children)
            old_columns = await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE column_name IN ('care_mode', 'care_modes', 'age_min', 'age_max',"
                " 'preferred_care_modes', 'preferred_age_min', 'preferred_age_max')"
                " AND table_schema = 'public'"
            )
            assert old_columns == []  # one truth
        finally:
            await conn.close()
        with pytest.raises(NotImplementedError, match="backup"):
            await asyncio.to_thread(downgrade, dsn)
    finally:
        await drop_database(dsn)


def downgrade(dsn: str) -> None:
    from alembic import command

    from api.db import alembic_config

    command.downgrade(alembic_config(dsn), "0016")
