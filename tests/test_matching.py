"""Readable scenarios and unit tests of the pure matching library (no database)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from matching import (
    CARE_MODE_LABELS,
    DISABILITY_PROFILE_LABELS,
    LADDER,
    LADDER_MARKDOWN,
    LADDERS,
    STEP_CODES,
    WEIGHTS,
    CareMode,
    Child,
    DisabilityProfile,
    Need,
    Offer,
    Step,
    accepts,
    check_ladder,
    failed_constraints,
    greedy,
    optimize,
    score,
    score_value,
    search,
    separation_km,
    violations,
    weights_markdown,
)
from tests.support.fakes import InMemoryFetch

pytestmark = pytest.mark.pure

BOTH = frozenset({"F", "M"})


def offer(oid: str, distance: float = 5.0, **kw: object) -> Offer:
    """A unit accepting everyone 0–21 in durable care, unless told otherwise."""
    fields: dict[str, object] = {
        "kind": "unit",
        "id": oid,
        "department": "69",
        "commune": f"c-{oid}",
        "distance_km": distance,
        "free_places": 3,
        "age_min_months": 0,
        "age_max_months": 263,
        "sexes": BOTH,
        "timings": frozenset({"durable"}),
        "publics": frozenset({"mineur"}),
        "formulas": frozenset({"enfant"}),
    }
    fields.update(kw)
    return Offer(**fields)  # type: ignore[arg-type]


def need(
    *children: Child,
    timing: str = "durable",
    origin: str | None = "69",
    urgency: str = "days",
) -> Need:
    """A ``days`` need by default (the API's default); the tests of the geography-first
    ladder ask for ``immediate`` (every ladder: tests/test_matching_scenarios.py)."""
    return Need(children=children, timing=timing, origin_department=origin, urgency=urgency)


def run(n: Need, pool: list[Offer], limit: int = 10, radius: float = 20.0, **kw: object):
    fetch = InMemoryFetch(pool, n, **kw)  # type: ignore[arg-type]
    return search(n, fetch, limit=limit, max_distance_km=radius), fetch


# ----------------------------------------------------------------------- vocabulary


def test_vocabulary_codes_are_stable_and_labelled_in_french() -> None:
    assert {m.value for m in CareMode} == {
        "urgence",
        "durable",
        "sequentiel",
        "mere_enfant",
        "mna",
        "jeune_majeur",
    }
    assert {m.value for m in DisabilityProfile} == {
        "tsa",
        "deficience_intellectuelle",
        "troubles_psychiques_comportement",
        "deficience_motrice",
        "deficience_sensorielle",
        "polyhandicap",
        "soins_techniques",
    }
    assert set(CARE_MODE_LABELS) == set(CareMode)
    assert set(DISABILITY_PROFILE_LABELS) == set(DisabilityProfile)
    assert CARE_MODE_LABELS["mna"] == "Mineur non accompagné (MNA)"
    assert CareMode.URGENCE == "urgence"


# ----------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"age_months": 264, "sex": "F"}, "âge"),
        ({"age_months": -1, "sex": "F"}, "âge"),
        ({"age_months": 3, "sex": "X"}, "sexe"),
        ({"age_months": 3, "sex": "F", "disability_profiles": {"autisme"}}, "handicap"),
    ],
)
def test_child_rejects_bad_input_with_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Child(**kwargs)


def test_need_and_offer_validation() -> None:
    with pytest.raises(ValueError, match="enfant"):
        Need(children=(), timing="durable")
    with pytest.raises(ValueError, match="temporalité d'accueil"):
        Need(children=(Child(36, "F"),), timing="internat")
    with pytest.raises(ValueError, match="distance"):
        offer("x", distance=math.nan)
    with pytest.raises(ValueError, match="temporalité"):
        offer("x", temporality="h12")
    o = offer("x", sexes=["F"], timings=["urgence", "durable"])
    assert o.sexes == frozenset({"F"}) and isinstance(o.timings, frozenset)
    assert Child(36, "F", ["tsa"]).disability_profiles == frozenset({"tsa"})  # type: ignore[arg-type]


# ----------------------------------------------------------------------- constraints


def test_each_hard_constraint_is_reported() -> None:
    n = need(Child(84, "F", frozenset({"tsa"})), Child(108, "M"))
    o = offer(
        "u",
        age_min_months=96,
        age_max_months=155,
        sexes={"M"},
        timings={"urgence"},
        publics={"mna"},
        formulas={"parent_enfant"},
        free_places=1,
        status="leave",
        agrement_valid=False,
        available_gender="M",
    )
    assert failed_constraints(n, o) == sorted(
        [
            "age",
            "sex",
            "available_gender",
            "timing",
            "public",
            "formula",
            "status",
            "agrement",
            "free_places",
        ]
    )
    # Status and agrément are the offer's: reported once for the group, not per child.
    assert [v.child for v in violations(n, o) if v.constraint in ("status", "agrement")] == [
        None,
        None,
    ]
    assert not accepts(n, o)
    assert all(v.detail for v in violations(n, o))
    assert failed_constraints(n, offer("ok", disability_supported={"tsa"})) == []
    assert accepts(n, offer("ok", disability_supported={"tsa", "polyhandicap"}))


def test_a_carer_whose_agrement_is_not_valid_or_on_leave_is_never_accepted() -> None:
    """#15: an otherwise perfect carer is refused when their agrément is not valid on the
    day (suspended, withdrawn, expired) or when they are on leave — each alone."""
    n = need(Child(84, "F"))
    ok = offer("c", kind="carer")
    assert accepts(n, ok)
    assert failed_constraints(n, replace(ok, agrement_valid=False)) == ["agrement"]
    assert not accepts(n, replace(ok, agrement_valid=False))
    assert failed_constraints(n, replace(ok, status="leave")) == ["status"]
    assert not accepts(n, replace(ok, status="leave"))


def test_group_needs_a_place_per_child_but_a_subgroup_fewer() -> None:
    n = need(Child(84, "F"), Child(108, "M"), Child(132, "M"))
    o = offer("u", free_places=2)
    assert failed_constraints(n, o) == ["free_places"]
    assert accepts(n, o, children=[0, 2])


# ----------------------------------------------------------------------- score


def test_weights_sum_to_one_and_reasons_sum_to_the_score() -> None:
    assert math.isclose(sum(WEIGHTS.values()), 1.0)
    n = need(Child(24, "F"), Child(60, "M", frozenset({"tsa"})))
    value, reasons = score(n, offer("u", 12.3, disability_supported={"tsa"}))
    assert 0.0 <= value <= 1.0
    assert math.isclose(sum(r.contribution for r in reasons), value)
    assert {r.criterion for r in reasons} >= set(WEIGHTS)
    assert next(r for r in reasons if r.criterion == "distance").detail == "12 km"
    assert value == score_value(n, offer("u", 12.3, disability_supported={"tsa"}))


def test_forecast_and_stale_declarations_score_less() -> None:
    n = need(Child(96, "M"))
    now = score_value(n, offer("u"))
    assert score_value(n, offer("u", temporality="h24")) < now
    assert score_value(n, offer("u", temporality="d7")) < score_value(
        n, offer("u", temporality="h48")
    )
    assert score_value(n, offer("u", declared_age_days=30)) < now


def test_outside_department_costs_and_is_marked() -> None:
    n = need(Child(96, "M"))
    inside, _ = score(n, offer("u"))
    outside, out_reasons = score(n, offer("u", department="38"))
    assert outside < inside
    assert "hors département" in next(r.detail for r in out_reasons if r.criterion == "department")


# ----------------------------------------------------------------------- scenarios


def test_two_year_old_ranks_carers_and_pouponniere_first() -> None:
    pool = [
        offer("mecs", 3.0, category="177"),
        offer("foyer", 4.0, category="175"),
        offer("af", 9.0, kind="carer", free_places=1),
        offer("poup", 11.0, category="172", age_max_months=47),
        offer("lva", 6.0, category="462"),
    ]
    result, _ = run(need(Child(24, "F")), pool)
    ids = [p.offer.id for p in result.proposals]
    assert set(ids[:2]) == {"af", "poup"}, ids
    assert ids[-2:] == ["mecs", "foyer"]
    top = result.proposals[0]
    assert "assistant familial" in next(
        r.detail for r in top.reasons if r.criterion == "family_type"
    )


def test_teenager_is_not_pushed_towards_a_pouponniere_bonus() -> None:
    pool = [offer("mecs", 3.0, category="177"), offer("af", 40.0, kind="carer")]
    result, _ = run(need(Child(180, "M")), pool, radius=50)
    assert result.proposals[0].offer.id == "mecs"


def test_tsa_child_gets_offers_with_a_word_on_tsa_first_the_silent_ones_as_a_relaxation() -> None:
    """Graded (#16): before, offers silent on TSA were rejected; now they come after the
    offers with a word on it, each marked ``disability_unstated``."""
    pool = [
        offer("plain", 1.0),
        offer("di", 2.0, disability_supported={"deficience_intellectuelle"}),
        offer("tsa-far", 15.0, disability_supported={"tsa", "deficience_intellectuelle"}),
        offer("tsa-near", 8.0, disability_supported={"tsa"}),
    ]
    n = need(Child(120, "M", frozenset({"tsa"})))
    result, _ = run(n, pool, prefilter=False)
    ids = [p.offer.id for p in result.proposals]
    assert ids[:2] == ["tsa-near", "tsa-far"] and set(ids[2:]) == {"plain", "di"}
    assert [p.relaxed for p in result.proposals[:2]] == [(), ()]
    assert all(p.relaxed == ("disability_unstated",) for p in result.proposals[2:])
    assert result.rejected == {}


def test_request_as_stated_is_enough_when_it_finds_the_limit() -> None:
    pool = [offer(f"u{i}", float(i)) for i in range(1, 6)] + [offer("far", 35.0)]
    result, fetch = run(need(Child(96, "M")), pool, limit=3)
    assert fetch.calls == ["none"]
    assert result.tried == ["none"] and result.relaxations == []
    assert [p.offer.id for p in result.proposals] == ["u1", "u2", "u3"]
    assert all(p.relaxed == () for p in result.proposals)


def test_radius_is_widened_then_departments_then_country_and_said_so() -> None:
    pool = [
        offer("near", 10.0),
        offer("double", 35.0, department="01"),
        offer("neighbour", 120.0, department="01"),
        offer("far", 600.0, department="13"),
    ]
    n = need(Child(96, "M"), urgency="immediate")
    result, fetch = run(n, pool, limit=4, radius=20.0, neighbours={"01", "38"})
    assert fetch.calls == ["none", "widen_radius", "neighbour_departments", "national"]
    assert result.relaxations == ["widen_radius", "neighbour_departments", "national"]
    relaxed = {p.offer.id: p.relaxed for p in result.proposals}
    assert relaxed == {
        "near": (),
        "double": ("widen_radius",),
        "neighbour": ("widen_radius", "neighbour_departments"),
        "far": ("widen_radius", "neighbour_departments", "national"),
    }
    assert [p.offer.id for p in result.proposals] == ["near", "double", "neighbour", "far"]


def test_neighbour_label_comes_from_the_fetch_when_adjacency_is_not_given() -> None:
    pool = [offer("neighbour", 120.0, department="01")]
    n = need(Child(96, "M"))
    fetch = InMemoryFetch(pool, n, neighbours={"01"})
    result = search(n, fetch, limit=1, max_distance_km=20.0)  # no neighbours passed
    assert result.proposals[0].relaxed == ("widen_radius", "neighbour_departments")


def test_a_nearby_place_free_tomorrow_only_needs_the_forecast_relaxation() -> None:
    """#16: for a ``days`` request the nearby place free tomorrow comes before the place free
    now 450 km away (before, "national" came first whatever the urgency)."""
    pool = [offer("tomorrow", 4.0, temporality="h24"), offer("paris", 450.0, department="75")]
    result, fetch = run(need(Child(96, "M")), pool, limit=2)
    assert fetch.calls[:2] == ["none", "forecast_h24"] and fetch.calls[-1] == "national"
    by_id = {p.offer.id: p for p in result.proposals}
    assert by_id["tomorrow"].relaxed == ("forecast_h24",)
    assert [p.offer.id for p in result.proposals] == ["tomorrow", "paris"]


def test_same_unit_declared_now_and_tomorrow_is_proposed_once_least_relaxed() -> None:
    now = offer("u", 4.0, free_places=1)
    later = replace(now, temporality="h24", free_places=3)
    result, _ = run(need(Child(96, "M")), [later, now], limit=5)
    assert [(p.offer.id, p.offer.temporality) for p in result.proposals] == [("u", "current")]


def test_group_takes_the_later_declaration_when_only_it_has_room() -> None:
    now = offer("u", 4.0, free_places=1)
    later = replace(now, temporality="h24", free_places=3)
    n = need(Child(96, "M"), Child(120, "F"))
    result, _ = run(n, [now, later], limit=1)
    (p,) = result.proposals
    assert p.offer.temporality == "h24" and p.children == (0, 1)
    assert p.relaxed == ("forecast_h24",)


def test_siblings_together_far_come_first_and_the_split_nearby_is_shown_after() -> None:
    """#16: together first (art. 371-5), but the split 3 km away is no longer hidden: it
    comes right after, one option, marked ``split_siblings`` with the siblings' distance."""
    pool = [
        offer("small-a", 2.0, free_places=1),
        offer("small-b", 3.0, free_places=1),
        offer("together", 300.0, department="07", free_places=2),
    ]
    n = need(Child(72, "F"), Child(96, "M"))
    result, fetch = run(n, pool, limit=10)
    assert fetch.calls[-1] == "split_siblings"
    ids = [(p.offer.id, p.children, p.option) for p in result.proposals]
    assert ids[0] == ("together", (0, 1), 0)
    assert {i[0] for i in ids[1:]} == {"small-a", "small-b"}
    assert {i[2] for i in ids[1:]} == {1}
    for p in result.proposals[1:]:
        assert "split_siblings" in p.relaxed and p.siblings_distance_km == 5.0
    # limit=1: the together offer alone — the first option of any larger limit.
    one, _ = run(n, pool, limit=1)
    assert [(p.offer.id, p.option) for p in one.proposals] == [("together", 0)]


def test_split_is_explicit_and_keeps_siblings_as_close_as_possible() -> None:
    young = {"age_min_months": 0, "age_max_months": 131, "free_places": 1}
    teen = {"age_min_months": 132, "age_max_months": 227, "free_places": 2}
    pool = [
        offer("young-1", 3.0, structure_id="S1", **young),
        offer("teen-elsewhere", 2.0, **teen),
        offer("teen-same-structure", 9.0, structure_id="S1", **teen),
        offer("young-2", 5.0, **young),
    ]
    n = need(Child(48, "F"), Child(168, "M"), Child(180, "M"))
    result, fetch = run(n, pool)
    assert fetch.calls[-1] == "split_siblings"
    assert result.relaxations[-1] == "split_siblings"
    plan = {p.offer.id: p.children for p in result.proposals}
    assert plan == {"young-1": (0,), "teen-same-structure": (1, 2)}
    for p in result.proposals:
        assert p.relaxed[-1] == "split_siblings"
        split = next(r for r in p.reasons if r.criterion == "siblings_split")
        assert "même lieu" in split.detail
    assert result.unmatched_children == []


def test_split_prefers_two_places_to_three() -> None:
    pool = [
        offer("a", 1.0, free_places=1),
        offer("b", 2.0, free_places=1),
        offer("c", 3.0, free_places=1),
        offer("pair", 40.0, free_places=2),
    ]
    n = need(Child(60, "F"), Child(84, "F"), Child(108, "M"))
    result, _ = run(n, pool)
    assert len(result.proposals) == 2
    assert sorted(len(p.children) for p in result.proposals) == [1, 2]


def test_uses_coordinates_to_measure_separation_when_given() -> None:
    a = offer("a", 10.0, lat=45.76, lon=4.84)
    b = offer("b", 12.0, lat=45.77, lon=4.84)
    d, exact = separation_km(a, b)
    assert exact and 1.0 < d < 1.3
    assert separation_km(offer("x", 10.0), offer("y", 12.0)) == (22.0, False)
    assert separation_km(offer("x", commune="69123"), offer("y", commune="69123")) == (0.0, True)


def test_nothing_found_still_says_what_was_tried_and_why() -> None:
    pool = [offer("babies", 2.0, age_max_months=47), offer("girls", 3.0, sexes={"F"})]
    n = need(Child(144, "M"), Child(156, "M"), urgency="immediate")
    result, _ = run(n, pool, prefilter=False)
    assert result.proposals == []
    assert result.tried == list(STEP_CODES)
    assert result.relaxations == list(STEP_CODES[1:])
    assert result.rejected == {"age": 1, "sex": 1}
    assert result.unmatched_children == [0, 1]


def test_single_child_never_tries_the_split_step() -> None:
    result, _ = run(need(Child(144, "M")), [])
    assert result.tried == [s.code for s in LADDERS["days"] if not s.split_siblings]


def test_partial_split_reports_the_child_nobody_can_take() -> None:
    pool = [offer("ok", 2.0, age_max_months=131, free_places=1)]
    result, _ = run(need(Child(48, "F"), Child(204, "M")), pool)
    assert [(p.offer.id, p.children) for p in result.proposals] == [("ok", (0,))]
    assert result.unmatched_children == [1]


def test_search_rejects_nonsense_parameters() -> None:
    n = need(Child(96, "M"))
    with pytest.raises(ValueError):
        search(n, lambda s: [], limit=0)
    with pytest.raises(ValueError):
        search(n, lambda s: [], max_distance_km=-1)


# ----------------------------------------------------------------------- ladder


def test_ladder_is_valid_documented_data() -> None:
    for ladder in LADDERS.values():
        check_ladder([s.resolve(30) for s in ladder])
        assert {s.code for s in ladder} == set(STEP_CODES), "the same relaxations, reordered"
    root = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "docs/domain.md"):
        text = (root / doc).read_text(encoding="utf-8")
        assert LADDER_MARKDOWN in text, f"{doc}: regenerate the ladders (ladders_markdown())"
        assert weights_markdown() in text, f"{doc}: regenerate the weights table"
    check_ladder([s.resolve(30) for s in LADDER])
    assert STEP_CODES[0] == "none" and STEP_CODES[-1] == "split_siblings"
    for code in STEP_CODES:
        assert f"`{code}`" in LADDER_MARKDOWN
    assert LADDER[1].resolve(30).radius_km == 60
    assert LADDER[3].resolve(30).radius_km is None


def test_invalid_ladders_are_refused() -> None:
    base = LADDER[0]
    both = Step("both", "x", "radius", 2.0, base.temporalities | {"h24"})
    with pytest.raises(ValueError, match="exactly one"):
        check_ladder([base, both])
    narrower = Step("narrow", "x", "radius", 0.5, base.temporalities)
    with pytest.raises(ValueError, match="narrows"):
        check_ladder([base, narrower])
    with pytest.raises(ValueError, match="last"):
        check_ladder([*LADDER, replace(LADDER[-1], code="again")])


def test_custom_ladder_time_before_geography() -> None:
    ladder = [LADDER[0], replace(LADDER[4], area="radius", radius_factor=1.0)]
    pool = [offer("tomorrow", 4.0, temporality="h24")]
    n = need(Child(96, "M"))
    result = search(n, InMemoryFetch(pool, n), limit=1, max_distance_km=20, ladder=ladder)
    assert result.tried == ["none", "forecast_h24"]
    assert result.proposals[0].relaxed == ("forecast_h24",)


# ----------------------------------------------------------------------- assignment


def test_optimize_beats_first_come_first_served_on_a_stolen_place() -> None:
    # r1 comes first and likes the only place r2 can use; r1 has a fine alternative.
    r1 = need(Child(96, "M"))
    r2 = need(Child(96, "M", frozenset({"tsa"})))
    shared = offer("tsa-unit", 2.0, free_places=1, disability_supported={"tsa"})
    other = offer("other", 6.0, free_places=1)
    candidates = {"r1": [shared, other], "r2": [shared]}
    needs = [("r1", r1), ("r2", r2)]
    fcfs = greedy(needs, candidates)
    best = optimize(needs, candidates)
    assert fcfs.unassigned == ["r2"]
    assert best.unassigned == []
    assert best.total > fcfs.total
    assert best.by_request["r2"].offer_id == "tsa-unit"


def test_sibling_group_takes_places_of_one_offer_and_is_never_split() -> None:
    group = need(Child(72, "F"), Child(96, "M"), Child(108, "M"))
    single = need(Child(84, "F"))
    big = offer("big", 10.0, free_places=3)
    small = offer("small", 1.0, free_places=2)
    candidates = {"g": [big, small], "s": [big, small]}
    plan = optimize([("s", single), ("g", group)], candidates)
    assert plan.by_request["g"].offer_id == "big"
    assert plan.by_request["s"].offer_id == "small"
    assert plan.method == "milp"
    # Greedy: the single child takes the nearest place, the group still fits in "big".
    assert greedy([("s", single), ("g", group)], candidates).unassigned == []


def test_score_priority_may_leave_a_request_waiting_placements_priority_does_not() -> None:
    a = need(Child(96, "M"))
    b = need(Child(96, "M"))
    x = offer("x", 0.0, free_places=1, category="462")
    y = offer(
        "y",
        400.0,
        free_places=1,
        department="13",
        declared_age_days=90,
        timings={"durable", "urgence", "sequentiel"},
    )
    candidates = {"a": [x, y], "b": [x]}

    def value(n: Need, o: Offer) -> float | None:
        # a loves x (0.9) and barely tolerates y (0.1); b can only take x (0.2).
        table = {(id(a), "x"): 0.9, (id(a), "y"): 0.1, (id(b), "x"): 0.2}
        return table.get((id(n), o.id))

    by_score = optimize([("a", a), ("b", b)], candidates, score_fn=value)
    assert by_score.unassigned == ["b"] and math.isclose(by_score.total, 0.9)
    by_placements = optimize(
        [("a", a), ("b", b)], candidates, score_fn=value, priority="placements"
    )
    assert by_placements.unassigned == []
    assert math.isclose(by_placements.total, 0.3)


def test_capacity_is_the_smallest_snapshot_and_lsa_refuses_groups() -> None:
    n1, n2 = need(Child(96, "M")), need(Child(108, "M"))
    candidates = {"a": [offer("u", 1.0, free_places=2)], "b": [offer("u", 3.0, free_places=1)]}
    plan = optimize([("a", n1), ("b", n2)], candidates)
    assert len(plan.assignments) == 1 and plan.method == "lsa"
    with pytest.raises(ValueError):
        optimize([("g", need(Child(12, "F"), Child(24, "F")))], {}, method="lsa")
    with pytest.raises(ValueError):
        optimize([("a", n1), ("a", n2)], {})


def test_empty_problem_gives_an_empty_plan() -> None:
    plan = optimize([("a", need(Child(96, "M")))], {"a": []})
    assert plan.assignments == [] and plan.unassigned == ["a"] and plan.total == 0.0
