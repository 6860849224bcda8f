"""Scenarios of issue #16, as a placement officer would state them (pure library, small
fixtures). Each test name is the rule; the docstring is the case.

Distances are from the family's commune (Lyon, 69, unless said); the requested radius is
20 km; neighbouring departments of the Rhône: 01, 38, 42, 71.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from matching import Child, Need, Offer, score, search
from tests.support.fakes import InMemoryFetch

pytestmark = pytest.mark.pure

BOTH = frozenset({"F", "M"})
NEIGHBOURS = frozenset({"01", "38", "42", "71"})


def unit(oid: str, km: float, **kw: object) -> Offer:
    fields: dict[str, object] = {
        "kind": "unit",
        "id": oid,
        "department": "69",
        "commune": f"c-{oid}",
        "distance_km": km,
        "free_places": 1,
        "age_min_months": 0,
        "age_max_months": 263,
        "sexes": BOTH,
        "timings": frozenset({"durable"}),
        "publics": frozenset({"mineur"}),
        "formulas": frozenset({"enfant"}),
        "category": "177",
    }
    fields.update(kw)
    return Offer(**fields)  # type: ignore[arg-type]


def carer(oid: str, km: float, **kw: object) -> Offer:
    return unit(oid, km, kind="carer", category=None, **kw)


def child(age: int = 8, sex: str = "M") -> Child:
    """A child of ``age`` whole years (the youngest of that year)."""
    return Child(age * 12, sex)


def ask(
    *children: Child,
    urgency: str = "days",
    pool: list[Offer],
    limit: int = 10,
    exclude: tuple[tuple[str, str], ...] = (),
    **need: object,
):
    n = Need(
        children=children or (child(),),
        timing="durable",
        urgency=urgency,
        origin_department="69",
        **need,  # type: ignore[arg-type]
    )
    fetch = InMemoryFetch(pool, n, NEIGHBOURS)
    result = search(
        n, fetch, limit=limit, max_distance_km=20, neighbours=NEIGHBOURS, exclude=exclude
    )
    return result, fetch


def ids(result) -> list[str]:
    return [p.offer.id for p in result.proposals]


# ----------------------------------------------------------------------- urgency


def test_days_a_place_5_km_away_tomorrow_beats_ten_places_600_km_away_now() -> None:
    """A boy of 8, placement within days, family in Lyon. Ten MECS in Marseille have a place
    now; a MECS in Villeurbanne (5 km) announces one for tomorrow. With limit 5, the
    Villeurbanne place is shown, first."""
    pool = [unit(f"marseille-{i}", 600 + i, department="13") for i in range(10)]
    pool.append(unit("villeurbanne", 5, temporality="h24"))
    result, _ = ask(pool=pool, limit=5)
    assert ids(result)[0] == "villeurbanne"
    assert result.proposals[0].relaxed == ("forecast_h24",)
    assert result.proposals[0].step == "forecast_h24"


def test_days_forecasts_in_the_neighbouring_departments_come_before_anything_beyond() -> None:
    """Placement within days: a place free in 7 days at Bourg-en-Bresse (01, 60 km) comes
    before a place free now in Paris (75, 460 km)."""
    pool = [
        unit("paris", 460, department="75"),
        unit("bourg", 60, department="01", temporality="d7"),
    ]
    result, fetch = ask(pool=pool)
    assert ids(result) == ["bourg", "paris"]
    assert fetch.calls.index("forecast_d7") < fetch.calls.index("national")


def test_immediate_a_place_free_now_far_beats_a_place_nearby_tomorrow() -> None:
    """The child must sleep somewhere tonight: the place free now in Marseille comes before
    the place in Villeurbanne that frees tomorrow."""
    pool = [unit("marseille", 300, department="13"), unit("villeurbanne", 5, temporality="h24")]
    result, _ = ask(urgency="immediate", pool=pool)
    assert ids(result) == ["marseille", "villeurbanne"]


def test_immediate_emergency_units_and_carers_first_within_a_step() -> None:
    """Immediate, all three within the radius: a MECS at 2 km (best score), an assistant
    familial at 15 km and a foyer de l'enfance at 12 km. The carer and the foyer come first;
    for a planned request the MECS does."""
    pool = [
        unit("mecs", 2, category="177"),
        carer("af", 15),
        unit("foyer", 12, category="175"),
    ]
    immediate, _ = ask(urgency="immediate", pool=pool)
    assert set(ids(immediate)[:2]) == {"af", "foyer"} and ids(immediate)[2] == "mecs"
    planned, _ = ask(child(15), urgency="planned", pool=pool)
    assert ids(planned)[0] == "mecs"


def test_planned_every_forecast_nearby_comes_before_widening_the_radius() -> None:
    """A planned move: a place freeing within 7 days at 10 km comes before a place free now
    at 30 km (just outside the radius); within days, the place at 30 km comes first."""
    pool = [unit("week", 10, temporality="d7"), unit("now-30km", 30)]
    planned, _ = ask(urgency="planned", pool=pool)
    assert ids(planned) == ["week", "now-30km"]
    days, _ = ask(urgency="days", pool=pool)
    assert ids(days) == ["now-30km", "week"]


def test_a_unit_that_already_refused_this_child_is_not_proposed_again() -> None:
    """The MECS of Villeurbanne refused the hold of this request last week: it is left out,
    and the answer says one offer was left out for that reason."""
    pool = [unit("villeurbanne", 5), unit("bron", 8)]
    result, _ = ask(pool=pool, exclude=(("unit", "villeurbanne"),))
    assert ids(result) == ["bron"]
    assert result.rejected == {"refused": 1}


def test_a_place_away_from_the_family_replaces_proximity() -> None:
    """The judge ordered the place kept at least 15 km from the parents: the MECS at 3 km is
    left out; of the two beyond, the nearer to that minimum comes first."""
    pool = [unit("near", 3), unit("18km", 18), unit("19km", 19)]
    result, _ = ask(pool=pool, min_distance_km=15.0)
    assert ids(result) == ["18km", "19km"]
    assert result.rejected == {"min_distance": 1}
    detail = next(r.detail for r in result.proposals[0].reasons if r.criterion == "distance")
    assert "au moins 15 km" in detail


def test_a_stale_declaration_ranks_after_a_fresh_one_of_the_same_step_and_is_marked() -> None:
    """The MECS at 2 km declared 109 days ago ("périmée"); the one at 15 km this morning.
    Both within the radius and free now: the fresh one first, the stale one marked."""
    pool = [unit("stale", 2, declared_age_days=109), unit("fresh", 15, declared_age_days=0.2)]
    result, _ = ask(pool=pool)
    assert ids(result) == ["fresh", "stale"]
    assert [p.stale for p in result.proposals] == [False, True]


def test_a_stale_declaration_still_ranks_before_a_later_step() -> None:
    """Stale ranks after fresh *at equal step* only: the stale place in the radius still comes
    before a fresh place that needs the radius doubled."""
    pool = [unit("stale", 2, declared_age_days=30), unit("fresh-far", 35)]
    result, _ = ask(urgency="immediate", pool=pool)
    assert ids(result) == ["stale", "fresh-far"]


# ----------------------------------------------------------------------- stable results


def test_the_first_five_for_limit_5_are_the_first_five_for_limit_20() -> None:
    """Whatever the page size, the officer sees the same beginning of the list."""
    pool = [
        unit(f"u{i}", 3 * i + 1, temporality=("current", "h24", "d7")[i % 3], department=d)
        for i, d in enumerate(["69", "69", "01", "38", "13", "69", "75", "01", "69", "42"] * 2)
    ]
    pool = [replace(o, id=f"{o.id}-{k}") for k, o in enumerate(pool)]
    five, _ = ask(pool=pool, limit=5)
    twenty, _ = ask(pool=pool, limit=20)
    assert ids(twenty)[:5] == ids(five)


# ----------------------------------------------------------------------- siblings


def test_two_singles_3_km_away_are_shown_beside_a_double_place_in_la_reunion() -> None:
    """A brother and a sister, 6 and 8, family in Lyon. Two MECS 3 km away have one place
    each; a unit in La Réunion has two. La Réunion (together) comes first, then the split in
    Lyon, one option, marked as a relaxation with the distance between the siblings."""
    pool = [
        unit("lyon-a", 3, lat=45.76, lon=4.84),
        unit("lyon-b", 3, lat=45.75, lon=4.86),
        unit("reunion", 9300, department="974", free_places=2, lat=-21.1, lon=55.5),
    ]
    result, _ = ask(child(6, "M"), child(8, "F"), pool=pool)
    assert ids(result)[0] == "reunion" and result.proposals[0].children == (0, 1)
    split = [p for p in result.proposals if p.option == 1]
    assert {p.offer.id for p in split} == {"lyon-a", "lyon-b"}
    for p in split:
        assert "split_siblings" in p.relaxed
        assert p.siblings_distance_km is not None and p.siblings_distance_km < 3
        assert "fratrie répartie" in p.reasons[-1].detail


def test_no_split_is_shown_when_the_together_place_is_within_the_radius() -> None:
    """The double place is 12 km away, inside the radius: the split next door is not shown."""
    pool = [unit("a", 3), unit("b", 3), unit("double", 12, free_places=2)]
    result, fetch = ask(child(6), child(8), pool=pool)
    assert ids(result) == ["double"]
    assert "split_siblings" not in fetch.calls


def test_a_separation_ordered_allows_the_split_from_the_first_step() -> None:
    """The children's judge ordered the siblings placed apart. Two singles within the radius
    are the first option, at the first step and not as a relaxation; the double place 300 km
    away still comes, after."""
    pool = [unit("a", 3), unit("b", 5), unit("double", 300, department="13", free_places=2)]
    result, _ = ask(child(6), child(8), pool=pool, separation_ordered=True)
    first = [p for p in result.proposals if p.option == 0]
    assert {p.offer.id for p in first} == {"a", "b"}
    assert all(p.relaxed == () and p.step == "none" for p in first)
    assert all("séparation ordonnée" in p.reasons[-1].detail for p in first)
    assert "double" in ids(result)


def test_a_separation_ordered_still_takes_a_together_place_of_the_same_step_first() -> None:
    """Separation allowed is not separation required: a double place within the radius is
    proposed, and no split is computed at that step."""
    pool = [unit("a", 3), unit("b", 5), unit("double", 10, free_places=2)]
    result, _ = ask(child(6), child(8), pool=pool, separation_ordered=True)
    assert ids(result)[0] == "double"
    assert all(len(p.children) == 2 for p in result.proposals)


# ----------------------------------------------------------------------- placement familial


def test_a_placement_familial_service_scores_as_family_placement() -> None:
    """A child of 2: an offer of a service de placement familial (FINESS 236) is valued as an
    assistant familial, not as collective care."""
    n = Need(children=(Child(24, "F"),), timing="durable", origin_department="69")
    spf = unit("spf", 10, category="236")
    mecs = unit("mecs", 10, category="177")
    af = carer("af", 10)
    family = {
        o.id: next(r for r in score(n, o)[1] if r.criterion == "family_type")
        for o in (spf, mecs, af)
    }
    assert family["spf"].contribution == family["af"].contribution > family["mecs"].contribution
    assert "placement familial" in family["spf"].detail
