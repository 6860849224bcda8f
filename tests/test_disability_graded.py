"""Disability, graded (issue #16, deliverable 5), as a placement officer states it.

An offer states per profile ``specialised`` or ``with_support``; one silent on a child's
profile is proposed only as the relaxation ``disability_unstated``, after the others of its
step. The child's MDPH notification and the commune of the service that follows it (IME,
SESSAD, DITEP…) are scored. On the pure library, then through the API (search, request,
registry, agréments).
"""

import math
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching import (
    WEIGHTS,
    Child,
    DisabilityService,
    Need,
    Offer,
    optimize,
    score,
    search,
    service_distance_km,
)
from matching.disability import LEVEL_RANK, rank
from matching.score import distance_value
from tests.support.factories import bearer, dept, idem, make_structure, request_body
from tests.test_agrements import person_with

BEHAVIOUR = "troubles_psychiques_comportement"
LILLE = (50.6292, 3.0573)
ROUBAIX = (50.6942, 3.1746)


def mecs(oid: str, km: float, where: tuple[float, float], **kw: Any) -> Offer:
    """A MECS unit taking boys and girls 6–14 in durable care, ``km`` from the family."""
    fields: dict[str, Any] = {
        "kind": "unit",
        "id": oid,
        "department": "59",
        "commune": f"c-{oid}",
        "distance_km": km,
        "free_places": 2,
        "age_min_months": 6 * 12,
        "age_max_months": 14 * 12 + 11,
        "sexes": frozenset("FM"),
        "timings": frozenset({"durable"}),
        "publics": frozenset({"mineur"}),
        "formulas": frozenset({"enfant"}),
        "category": "177",
        "lat": where[0],
        "lon": where[1],
    }
    fields.update(kw)
    return Offer(**fields)


def boy_of_nine(notified: bool | None = True, service: bool = True) -> Child:
    """A boy of 9 with behavioural disorders, followed by a DITEP in Roubaix."""
    return Child(
        9 * 12,
        "M",
        frozenset({BEHAVIOUR}),
        mdph_notified=notified,
        disability_service=DisabilityService("DITEP", "59512", *ROUBAIX) if service else None,
    )


def run(need: Need, pool: list[Offer], limit: int = 10) -> list[Any]:
    return search(need, lambda step: pool, limit=limit, max_distance_km=30).proposals


# ------------------------------------------------------------------------- the library


@pytest.mark.pure
def test_specialised_far_ranks_before_with_support_near_and_the_silent_one_last():
    """A boy of 9 with behavioural disorders (troubles psychiques et du comportement), MDPH
    notification, followed by a DITEP in Roubaix: the MECS specialised for that profile 20 km
    away ranks before the one accepting it with support 5 km away, at the same step; a unit
    silent on the profile, 2 km away, is proposed only marked as a relaxation, after both."""
    pool = [
        mecs("silent", 2.0, LILLE),
        mecs("support", 5.0, (50.66, 3.09), disability_supported={BEHAVIOUR}),
        mecs("specialised", 20.0, (50.72, 3.16), disability_specialised={BEHAVIOUR}),
    ]
    proposals = run(Need((boy_of_nine(),), "durable", origin_department="59"), pool)
    assert [p.offer.id for p in proposals] == ["specialised", "support", "silent"]
    assert {p.step for p in proposals} == {"none"}
    assert [p.relaxed for p in proposals] == [(), (), ("disability_unstated",)]
    silent = proposals[2]
    detail = next(r.detail for r in silent.reasons if r.criterion == "disability")
    assert "ne s'est pas prononcé" in detail and "notification MDPH" in detail
    service = next(r.detail for r in proposals[0].reasons if r.criterion == "disability_service")
    assert service.startswith("Dispositif intégré thérapeutique") and "59512" in service


@pytest.mark.pure
def test_the_step_comes_first_a_silent_offer_near_before_a_specialised_one_beyond():
    """The ladder's step decides first (the family's ties, art. 375-7): the graded level
    orders offers within a step, never across steps."""
    pool = [
        mecs("silent-near", 2.0, LILLE),
        mecs("specialised-far", 45.0, (50.95, 2.35), disability_specialised={BEHAVIOUR}),
    ]
    proposals = run(Need((boy_of_nine(),), "durable", urgency="immediate"), pool)
    assert [(p.offer.id, p.step) for p in proposals] == [
        ("silent-near", "none"),
        ("specialised-far", "widen_radius"),
    ]


@pytest.mark.pure
def test_graded_score_specialised_with_support_silent_and_the_mdph_notification():
    need_notified = Need((boy_of_nine(True),), "durable")
    need_unknown = Need((boy_of_nine(None),), "durable")

    def value(need: Need, **kw: Any) -> float:
        _, reasons = score(need, mecs("u", 5.0, LILLE, **kw))
        return next(r.contribution for r in reasons if r.criterion == "disability")

    w = WEIGHTS["disability"]
    assert value(need_notified, disability_specialised={BEHAVIOUR}) == pytest.approx(w)
    assert value(need_notified, disability_supported={BEHAVIOUR}) == pytest.approx(0.75 * w)
    assert value(need_unknown, disability_supported={BEHAVIOUR}) == pytest.approx(0.5 * w)
    assert value(need_notified) == 0.0
    # A child without a profile: a specialised place is kept for those who need it; a place
    # with support is not a specialised one.
    plain = Need((Child(9 * 12, "M"),), "durable")
    assert value(plain, disability_specialised={"tsa"}) == pytest.approx(0.6 * w)
    assert value(plain, disability_supported={"tsa"}) == pytest.approx(w)


@pytest.mark.pure
def test_the_service_nearer_the_place_scores_higher_and_without_one_counts_as_the_family():
    near_service = mecs("a", 10.0, ROUBAIX, disability_supported={BEHAVIOUR})
    far_service = mecs("b", 10.0, (50.40, 2.80), disability_supported={BEHAVIOUR})
    need = Need((boy_of_nine(),), "durable")
    assert service_distance_km(need.children[0], near_service) == 0.0
    s_near, _ = score(need, near_service)
    s_far, _ = score(need, far_service)
    assert s_near > s_far
    without = Need((boy_of_nine(service=False),), "durable")
    _, reasons = score(without, far_service)
    by = {r.criterion: r for r in reasons}
    assert by["disability_service"].contribution == pytest.approx(
        WEIGHTS["disability_service"] * distance_value(10.0)
    )
    assert "compte comme la distance à la famille" in by["disability_service"].detail


@pytest.mark.pure
def test_a_carer_s_service_distance_is_whole_kilometres():
    carer = mecs("c", 7.0, (50.66, 3.09), kind="carer", category=None)
    km = service_distance_km(boy_of_nine(), carer)
    assert km is not None and km == round(km)


@pytest.mark.pure
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"disability_service": DisabilityService("IME", "59350", *LILLE)}, "service"),
        ({"mdph_notified": True}, "MDPH"),
    ],
)
def test_a_service_or_a_notification_needs_a_profile(kwargs: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        Child(9 * 12, "M", **kwargs)
    with pytest.raises(ValueError, match="type de service"):
        DisabilityService("hôpital", "59350", *LILLE)


@pytest.mark.pure
def test_the_optimiser_admits_a_silent_offer_and_scores_its_disability_criterion_zero():
    """Same admissibility as search: a silent offer may be chosen, but its ``disability``
    term is 0, so a place with a word on the profile a few km further wins."""
    child = Need((boy_of_nine(),), "durable")
    stated = mecs("stated", 5.0, LILLE, free_places=1, disability_supported={BEHAVIOUR})
    silent = mecs("silent", 1.0, LILLE, free_places=1)
    plan = optimize([("r", child)], {"r": [silent, stated]})
    assert plan.by_request["r"].offer_id == "stated"
    plan = optimize([("r", child)], {"r": [silent]})
    assert plan.by_request["r"].offer_id == "silent"


@pytest.mark.pure
def test_a_split_part_on_a_silent_offer_is_marked():
    """Two brothers, one with behavioural disorders: a split (separation ordered) puts him
    on the offer with a word, his brother anywhere; a part silent on his profile is marked."""
    group = Need(
        (boy_of_nine(), Child(11 * 12, "M")),
        "durable",
        separation_ordered=True,
        origin_department="59",
    )
    pool = [
        mecs("silent", 1.0, LILLE, free_places=1),
        mecs("stated", 3.0, LILLE, free_places=1, disability_supported={BEHAVIOUR}),
    ]
    proposals = run(group, pool)
    where = {p.children: (p.offer.id, p.relaxed) for p in proposals if p.option == 0}
    assert where[(0,)] == ("stated", ())
    assert where[(1,)] == ("silent", ())


LEVELS = st.sampled_from(("specialised", "with_support", "silent"))
PROFILES = ("tsa", BEHAVIOUR)


@st.composite
def graded_offer(draw: st.DrawFn, oid: str) -> Offer:
    levels = {p: draw(LEVELS) for p in PROFILES}
    return mecs(
        oid,
        draw(st.floats(0, 120, allow_nan=False)),
        LILLE,
        kind=draw(st.sampled_from(("unit", "carer"))),
        declared_age_days=draw(st.floats(0, 30, allow_nan=False)),
        temporality=draw(st.sampled_from(("current", "h24", "d7"))),
        disability_specialised={p for p, v in levels.items() if v == "specialised"},
        disability_supported={p for p, v in levels.items() if v == "with_support"},
    )


@pytest.mark.pure
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offers=st.lists(st.integers(0, 10**6), min_size=1, max_size=12, unique=True).flatmap(
        lambda ids: st.tuples(*(graded_offer(f"o{i}") for i in ids))
    ),
    profiles=st.frozensets(st.sampled_from(PROFILES), min_size=1),
    urgency=st.sampled_from(("immediate", "days", "planned")),
)
@pytest.mark.pure
def test_no_silent_offer_ranks_before_one_with_a_word_at_the_same_step(
    offers: tuple[Offer, ...], profiles: frozenset[str], urgency: str
):
    """Within a step the level orders first: specialised, with support, silent; and every
    silent one — only those — says so in ``relaxed``."""
    need = Need((Child(9 * 12, "M", profiles),), "durable", urgency=urgency, origin_department="59")
    proposals = run(need, list(offers), limit=20)
    for p in proposals:
        assert ("disability_unstated" in p.relaxed) == (
            rank(need, p.offer) == LEVEL_RANK["unstated"]
        )
    for a, b in pairwise(proposals):
        if a.step == b.step:
            assert rank(need, a.offer) <= rank(need, b.offer), (a.offer.id, b.offer.id)
    assert math.isclose(sum(WEIGHTS.values()), 1.0)


# ------------------------------------------------------------------------------ the API

DEPT = bearer("department", authority="69M")
DITEP_VILLEFRANCHE = {"commune": "69264", "kind": "DITEP"}


def boy(**over: Any) -> dict[str, Any]:
    return {
        "age": 9,
        "sex": "M",
        "disability_profiles": [BEHAVIOUR],
        "mdph_notified": True,
        "disability_service": DITEP_VILLEFRANCHE,
        **over,
    }


async def declare(client, structure: dict[str, Any]) -> None:
    r = await client.put(
        f"/v1/units/{structure['unit_ids'][0]}/capacity",
        headers={**bearer("structure", finess=structure["finess"]), **idem()},
        json={"temporality": "current", "available": 1},
    )
    assert r.status_code == 200, r.text


async def three_mecs(client, pool) -> dict[str, str]:
    """Sequential care, 8–10 years (few such units in the session's database): specialised
    for behavioural disorders in Villefranche (27 km from Lyon, where the DITEP is), with
    support in Villeurbanne (4 km), silent in Lyon (0 km)."""
    unit = {"age_min": 8, "age_max": 10, "care_modes": ["sequentiel"], "installed": 2}
    made = {
        "specialised": await make_structure(
            pool, commune="69264", units=[{**unit, "disability_specialised": [BEHAVIOUR]}]
        ),
        "support": await make_structure(
            pool, commune="69266", units=[{**unit, "disability_supported": [BEHAVIOUR]}]
        ),
        "silent": await make_structure(pool, commune="69123", units=[unit]),
    }
    for s in made.values():
        await declare(client, s)
    return {k: str(s["unit_ids"][0]) for k, s in made.items()}


def ranked(body: dict[str, Any], ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    names = {v: k for k, v in ids.items()}
    return [(names[p["target"]["id"]], p) for p in body["proposals"] if p["target"]["id"] in names]


async def test_search_the_boy_of_nine_through_the_api(client, pool):
    ids = await three_mecs(client, pool)
    r = await client.post(
        "/v1/search",
        headers=DEPT,
        json={
            "children": [boy()],
            "origin": {"commune": "69123"},
            "care_mode": "sequentiel",
            "max_distance_km": 40,
            "limit": 50,
        },
    )
    assert r.status_code == 200, r.text
    mine = ranked(r.json(), ids)
    assert [name for name, _ in mine] == ["specialised", "support", "silent"]
    by = dict(mine)
    assert [by[n]["disability_level"] for n in ("specialised", "support", "silent")] == [
        "specialised",
        "with_support",
        "unstated",
    ]
    assert by["silent"]["relaxed"] == ["disability_unstated"]
    assert by["specialised"]["relaxed"] == [] and by["specialised"]["step"] == "none"
    assert by["specialised"]["disability_service_distance_km"] == 0.0
    assert by["support"]["disability_service_distance_km"] > 20


async def test_a_request_keeps_the_notification_and_the_service_and_its_search_ranks_alike(
    client, pool
):
    ids = await three_mecs(client, pool)
    body = request_body(care_mode="sequentiel", children=[boy()])
    r = await client.post("/v1/requests", json=body, headers=dept())
    assert r.status_code == 201, r.text
    request = r.json()
    assert request["children"][0]["mdph_notified"] is True
    assert request["children"][0]["disability_service"] == DITEP_VILLEFRANCHE
    r = await client.post(
        "/v1/search",
        headers=DEPT,
        json={
            # As the request returns them, without the deprecated years (`age_months` is
            # the age: one of the two is sent).
            "children": [{k: v for k, v in c.items() if k != "age"} for c in request["children"]],
            "origin": {"commune": "69123"},
            "care_mode": "sequentiel",
            "max_distance_km": 40,
            "limit": 50,
            "request_id": request["id"],
        },
    )
    assert r.status_code == 200, r.text
    assert [name for name, _ in ranked(r.json(), ids)] == ["specialised", "support", "silent"]


@pytest.mark.parametrize(
    ("child", "field"),
    [
        ({"age": 9, "sex": "M", "disability_service": DITEP_VILLEFRANCHE}, "disability_service"),
        ({"age": 9, "sex": "M", "mdph_notified": True}, "mdph_notified"),
        (boy(disability_service={"commune": "69264", "kind": "hopital"}), "kind"),
    ],
)
async def test_a_service_or_notification_without_profile_is_a_422_naming_the_field(
    client, child: dict[str, Any], field: str
):
    for path, body in (
        (
            "/v1/search",
            {"children": [child], "origin": {"commune": "69123"}, "care_mode": "durable"},
        ),
        ("/v1/requests", request_body(children=[child])),
    ):
        r = await client.post(path, json=body, headers=DEPT if path == "/v1/search" else dept())
        assert r.status_code == 422, r.text
        assert field in r.json()["errors"][0]["field"], r.json()


async def test_an_unknown_service_commune_is_a_422_naming_it(client):
    unknown = boy(disability_service={"commune": "99999", "kind": "IME"})
    r = await client.post(
        "/v1/search",
        headers=DEPT,
        json={"children": [unknown], "origin": {"commune": "69123"}, "care_mode": "durable"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "children[0].disability_service.commune"
    r = await client.post("/v1/requests", json=request_body(children=[unknown]), headers=dept())
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "children[0].disability_service.commune"


UNIT = {
    "name": "Les Moyens",
    "age_min": 6,
    "age_max": 12,
    "sexes": ["F", "M"],
    "care_modes": ["durable"],
    "installed": 8,
}


async def test_a_unit_states_its_levels_and_the_legacy_list_is_with_support(client, pool):
    s = await make_structure(pool)
    own = bearer("structure", finess=s["finess"])
    r = await client.post(
        f"/v1/structures/{s['id']}/units",
        json={**UNIT, "disability": {"tsa": "specialised", BEHAVIOUR: "with_support"}},
        headers={**own, **idem()},
    )
    assert r.status_code == 201, r.text
    assert r.json()["disability"] == {BEHAVIOUR: "with_support", "tsa": "specialised"}
    assert r.json()["disability_profiles"] == sorted(["tsa", BEHAVIOUR])
    r = await client.post(
        f"/v1/structures/{s['id']}/units",
        json={**UNIT, "disability_profiles": ["tsa"]},
        headers={**own, **idem()},
    )
    assert r.status_code == 201, r.text
    assert r.json()["disability"] == {"tsa": "with_support"}
    for bad, field in (
        ({"disability": {"tsa": "expert"}}, "disability"),
        ({"disability": {"tsa": "specialised"}, "disability_profiles": ["tsa"]}, "disability"),
    ):
        r = await client.post(
            f"/v1/structures/{s['id']}/units", json={**UNIT, **bad}, headers={**own, **idem()}
        )
        assert r.status_code == 422, r.text
        assert field in r.json()["errors"][0]["field"]


async def test_the_openapi_marks_the_legacy_list_deprecated(client):
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["UnitIn"]["properties"]["disability_profiles"]["deprecated"] is True
    assert schema["UnitOut"]["properties"]["disability_profiles"]["deprecated"] is True
    assert "disability" in schema["UnitIn"]["properties"]


async def test_an_agrement_states_its_levels_and_an_edit_replaces_them(client):
    issuer = await person_with(client, "pmi_agrement")
    r = await client.post(
        "/v1/agrements",
        headers={**issuer, **idem()},
        json={
            "number": "AF-69-DISAB-1",
            "commune": "69266",
            "home": {"lat": 45.77, "lon": 4.88},
            "issued_on": "2024-03-01",
            "capacity": 2,
            "care_modes": ["durable"],
            "disability": {BEHAVIOUR: "with_support"},
        },
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["disability"] == {BEHAVIOUR: "with_support"}
    r = await client.patch(
        f"/v1/agrements/{out['carer_id']}",
        headers={**issuer, **idem(), "If-Match": f'"{out["version"]}"'},
        json={"disability": {BEHAVIOUR: "specialised", "tsa": "with_support"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["disability"] == {BEHAVIOUR: "specialised", "tsa": "with_support"}


async def test_search_reads_the_silent_offers_only_when_those_with_a_word_are_short(client, pool):
    """At a step, every offer with a word ranks before every silent one: when ``want`` (the
    search's limit) of the former are found, the silent ones are not read at all."""
    from api.search import offer_index, repository
    from matching import LADDER

    ids = await three_mecs(client, pool)
    need = Need((Child(9 * 12, "M", frozenset({BEHAVIOUR})),), "sequentiel")
    async with pool.acquire() as conn, conn.transaction():
        origin = await repository.resolve_origin(conn, "69123", None, None)
        assert origin is not None
        step = LADDER[0].resolve(40)
        index, now = await offer_index.current(conn)
        view = index.view(need, origin, now)
        enough = repository.fetch_offers(view, need, step, [], want=2)
        short = repository.fetch_offers(view, need, step, [], want=50)
        every = repository.fetch_offers(view, need, step, [])
    assert not any(rank(need, o) == LEVEL_RANK["unstated"] for o in enough)
    assert {ids["specialised"], ids["support"]} <= {o.id for o in enough}
    assert ids["silent"] not in {o.id for o in enough}
    assert ids["silent"] in {o.id for o in short} and ids["silent"] in {o.id for o in every}
