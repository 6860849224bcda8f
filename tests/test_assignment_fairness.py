"""The waiting-list optimiser weighs each child's wait and urgency (issue #16, deliverable 8).

Pure: ``matching.assignment`` on in-memory requests and places. What a department must be
able to rely on: with equal scores, a child who waited longer or whose placement is more
urgent is never left on the list while a place goes to a child who waited less and is no
more urgent; the weighted optimum is exact (brute force); with both weights at 0 the
optimiser is what it was (the total score alone); the report counts what a plan does for
the waiting list, the same way for the optimum and for first-come-first-served.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching import Child, Need, Offer, greedy, optimize
from matching.assignment import URGENCY_RANK, Weights, default_score, plan_report
from tests.test_matching_properties import SETTINGS, _check_plan, assignment_st

pytestmark = pytest.mark.pure

URGENCIES = tuple(URGENCY_RANK)
WAITED = st.integers(0, 400).map(float)


def child_need(urgency: str, size: int = 1) -> Need:
    return Need(children=(Child(96, "F"),) * size, timing="durable", urgency=urgency)


def place(oid: str, free_places: int) -> Offer:
    return Offer(
        kind="unit",
        id=oid,
        department="69",
        commune="69123",
        distance_km=5.0,
        free_places=free_places,
        age_min_months=0,
        age_max_months=263,
        sexes=frozenset("FM"),
        timings=frozenset({"durable"}),
        publics=frozenset({"mineur"}),
        formulas=frozenset({"enfant"}),
    )


def equal_scores(need: Need, offer: Offer) -> float:
    """Every child fits every place equally well: only the wait and urgency can decide."""
    return 0.5


def dominates(a: tuple[str, float], b: tuple[str, float], weights: Weights) -> bool:
    """Request ``a`` (urgency, days waited) is at least as urgent and has waited at least as
    long as ``b``, and strictly more on a dimension the weights count."""
    (ua, da), (ub, db) = a, b
    ra, rb = URGENCY_RANK[ua], URGENCY_RANK[ub]
    if ra < rb or da < db:
        return False
    return (weights.urgency > 0 and ra > rb) or (weights.waiting > 0 and da > db)


WEIGHTS = st.builds(
    Weights,
    waiting=st.sampled_from((0.0, 0.01, 0.05, 1.0)),
    urgency=st.sampled_from((0.0, 0.02, 0.1, 1.0)),
)


@st.composite
def single_children_st(draw: st.DrawFn):
    """Single children (urgency, days waited) and places, each child with a random subset
    of the places as candidates."""
    places = [place(f"p{i}", draw(st.integers(1, 3))) for i in range(draw(st.integers(1, 4)))]
    needs, waited, candidates = [], {}, {}
    for r in range(draw(st.integers(2, 9))):
        rid = f"r{r}"
        needs.append((rid, child_need(draw(st.sampled_from(URGENCIES)))))
        waited[rid] = draw(WAITED)
        candidates[rid] = [p for p in places if draw(st.booleans())]
    return needs, waited, candidates


@SETTINGS
@given(single_children_st(), WEIGHTS, st.sampled_from(("lsa", "milp")))
def test_with_equal_scores_no_child_is_left_for_one_who_waited_less_and_is_no_more_urgent(
    instance, weights: Weights, method: str
) -> None:
    needs, waited, candidates = instance
    plan = optimize(
        needs,
        candidates,
        score_fn=equal_scores,
        method=method,  # type: ignore[arg-type]
        waited_days=waited,
        weights=weights,
    )
    urgency = {rid: n.urgency for rid, n in needs}
    placed = plan.by_request
    for left in plan.unassigned:
        for rid, a in placed.items():
            if any(o.key == (a.kind, a.offer_id) for o in candidates[left]):
                assert not dominates(
                    (urgency[left], waited[left]), (urgency[rid], waited[rid]), weights
                ), f"{left} left on the list while {rid} took a place {left} could take"


@SETTINGS
@given(
    st.sampled_from(URGENCIES),
    st.sampled_from(URGENCIES),
    WAITED,
    WAITED,
    WEIGHTS,
    st.booleans(),
)
def test_one_place_two_children_the_one_who_waited_longer_or_is_more_urgent_gets_it(
    urgency_a: str, urgency_b: str, waited_a: float, waited_b: float, weights, b_first
) -> None:
    needs = [("a", child_need(urgency_a)), ("b", child_need(urgency_b))]
    if b_first:  # the list's order (first come, first served) must not decide
        needs.reverse()
    only = place("only", 1)
    waited = {"a": waited_a, "b": waited_b}
    for method in ("lsa", "milp"):
        plan = optimize(
            needs,
            {"a": [only], "b": [only]},
            score_fn=equal_scores,
            method=method,  # type: ignore[arg-type]
            waited_days=waited,
            weights=weights,
        )
        assert len(plan.assignments) == 1
        winner = plan.assignments[0].request_id
        loser = "b" if winner == "a" else "a"
        urgency = {"a": urgency_a, "b": urgency_b}
        assert not dominates(
            (urgency[loser], waited[loser]), (urgency[winner], waited[winner]), weights
        )


def test_placement_officer_example_the_immediate_child_gets_the_only_place() -> None:
    # The MECS of Villeurbanne has one place. Léa's placement was decided 40 days ago, it is
    # planned; Tom's 5 days ago, he must be placed immediately. First come, first served
    # gives it to Léa; with the urgency weighed, Tom gets it and Léa's wait is reported.
    needs = [("lea", child_need("planned")), ("tom", child_need("immediate"))]
    waited = {"lea": 40.0, "tom": 5.0}
    mecs = place("mecs-villeurbanne", 1)
    candidates = {"lea": [mecs], "tom": [mecs]}
    weights = Weights(waiting=0.05, urgency=0.1)
    fcfs = greedy(needs, candidates, score_fn=equal_scores, waited_days=waited, weights=weights)
    best = optimize(needs, candidates, score_fn=equal_scores, waited_days=waited, weights=weights)
    assert fcfs.unassigned == ["tom"] and best.unassigned == ["lea"]
    # 0.5 + 0.05 × 40 / 30 (0.57) against 0.5 + 0.05 × 5 / 30 + 0.1 × 2 (0.71).
    assert math.isclose(fcfs.objective, 0.5 + 0.05 * 40 / 30)
    assert math.isclose(best.objective, 0.5 + 0.05 * 5 / 30 + 0.2)
    assert best.total == fcfs.total == 0.5
    report = plan_report(best, needs, waited)
    assert report.children_placed == 1 and report.children_unplaced == 1
    assert report.unplaced_waited_days_mean == report.unplaced_waited_days_max == 40.0
    assert report.placed_by_urgency == {"planned": 0, "days": 0, "immediate": 1}
    assert plan_report(fcfs, needs, waited).placed_by_urgency == {
        "planned": 1,
        "days": 0,
        "immediate": 0,
    }
    # Had Léa waited 160 days (0.27 > 0.21), her wait would outweigh Tom's urgency.
    waited["lea"] = 160.0
    best = optimize(needs, candidates, score_fn=equal_scores, waited_days=waited, weights=weights)
    assert best.unassigned == ["tom"]


@SETTINGS
@given(assignment_st(), st.lists(WAITED, min_size=8, max_size=8))
def test_weights_at_zero_reproduce_the_total_score_objective(instance, days) -> None:
    needs, candidates = instance
    waited = {rid: d for (rid, _), d in zip(needs, days, strict=False)}
    before = optimize(needs, candidates)
    zero = optimize(needs, candidates, waited_days=waited, weights=Weights(0.0, 0.0))
    assert zero == before
    assert math.isclose(zero.objective, zero.total, abs_tol=1e-12)
    fcfs = greedy(needs, candidates, waited_days=waited, weights=Weights())
    assert fcfs == greedy(needs, candidates)


@SETTINGS
@given(assignment_st(max_requests=5), st.lists(WAITED, min_size=5, max_size=5), WEIGHTS)
def test_the_weighted_optimum_is_exact_and_never_below_first_come_first_served(
    instance, days, weights: Weights
) -> None:
    needs, candidates = instance
    waited = {rid: d for (rid, _), d in zip(needs, days, strict=False)}
    plan = optimize(needs, candidates, waited_days=waited, weights=weights)
    _check_plan(needs, candidates, plan)
    assert plan.optimal
    # Brute force over every choice of (no offer | one candidate) per request.
    options = []
    for rid, need in needs:
        bonus = weights.bonus(need, waited[rid])
        feasible = [(o.key, default_score(need, o)) for o in candidates[rid]]
        options.append([None] + [(k, v + bonus) for k, v in feasible if v is not None])
    capacity = {o.key: o.free_places for lst in candidates.values() for o in lst}
    best = 0.0
    for combo in itertools.product(*options):
        used: dict[tuple[str, str], int] = defaultdict(int)
        for (_, need), pick in zip(needs, combo, strict=True):
            if pick is not None:
                used[pick[0]] += len(need.children)
        if all(n <= capacity[k] for k, n in used.items()):
            best = max(best, math.fsum(p[1] for p in combo if p is not None))
    assert math.isclose(plan.objective, best, abs_tol=1e-9)
    bonus_placed = math.fsum(
        weights.bonus(dict(needs)[a.request_id], waited[a.request_id]) for a in plan.assignments
    )
    assert math.isclose(plan.objective, plan.total + bonus_placed, abs_tol=1e-9)
    fcfs = greedy(needs, candidates, waited_days=waited, weights=weights)
    assert plan.objective >= fcfs.objective - 1e-9


@SETTINGS
@given(assignment_st(), st.lists(WAITED, min_size=8, max_size=8))
def test_the_report_counts_every_child_once(instance, days) -> None:
    needs, candidates = instance
    waited = {rid: d for (rid, _), d in zip(needs, days, strict=False)}
    for plan in (
        optimize(needs, candidates, waited_days=waited, weights=Weights(0.05, 0.1)),
        greedy(needs, candidates),
    ):
        report = plan_report(plan, needs, waited)
        children = sum(n.size for _, n in needs)
        assert report.children_placed + report.children_unplaced == children
        assert sum(report.placed_by_urgency.values()) == report.children_placed
        assert set(report.placed_by_urgency) == set(URGENCY_RANK)
        left = [(n.size, waited[rid]) for rid, n in needs if rid in set(plan.unassigned)]
        if report.children_unplaced == 0:
            assert report.unplaced_waited_days_mean is None
            assert report.unplaced_waited_days_max is None
        else:
            assert report.unplaced_waited_days_max == max(d for _, d in left)
            assert report.unplaced_waited_days_mean is not None
            assert min(d for _, d in left) - 1e-9 <= report.unplaced_waited_days_mean
            assert report.unplaced_waited_days_mean <= report.unplaced_waited_days_max + 1e-9


def test_a_sibling_group_counts_each_child_in_the_bonus_and_the_report() -> None:
    weights = Weights(waiting=0.3, urgency=0.0)
    twins = child_need("days", size=2)
    assert math.isclose(weights.bonus(twins, 30.0), 0.6)
    assert weights.bonus(twins, -5.0) == 0.0  # a decision dated ahead has not started a wait
    plan = optimize([("twins", twins)], {"twins": []})
    report = plan_report(plan, [("twins", twins)], {"twins": 12.0})
    assert report.children_unplaced == 2 and report.unplaced_waited_days_mean == 12.0


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan])
def test_a_weight_is_a_finite_non_negative_number(bad: float) -> None:
    with pytest.raises(ValueError, match="poids"):
        Weights(waiting=bad)
    with pytest.raises(ValueError, match="poids"):
        Weights(urgency=bad)
