"""Global assignment of waiting requests to free places, and first-come-first-served.

A department (or the nation) has requests waiting and offers with free places. Placing
them one by one in arrival order (``greedy``) can waste places: an early request takes
the only place a later sibling group could use while it had other options. ``optimize``
solves the whole set at once.

Model. Request *r* (a child or an indivisible sibling group of ``size_r`` children) may
go to offer *o* when ``o`` passes every hard constraint for the whole group; that pair is
worth ``v_ro`` (the matching score, or a caller's ``score_fn``). With ``x_ro ∈ {0, 1}``:

    maximise  Σ v_ro x_ro
    s.t.      Σ_o x_ro ≤ 1                 each request placed at most once, whole
              Σ_r size_r x_ro ≤ places_o   no offer over-booked

Sibling groups make this a multiple-knapsack problem (NP-hard in general), so
``linear_sum_assignment`` with place slots is exact only when every request is a single
child; it is then used (``method="lsa"``: each offer becomes ``places`` identical slots, a
rectangular requests × slots matrix). Otherwise — and whenever asked — the exact integer
programme above is solved with ``scipy.optimize.milp`` (HiGHS, branch and bound, zero
optimality gap). Without groups its constraint matrix is totally unimodular, so HiGHS
solves it at the root; with groups it branches a little. Both paths are deterministic:
the problem is put in a canonical order (requests as given, offers sorted by
``(kind, id)``) before solving, so shuffling the offers changes nothing.

``priority="placements"`` maximises first the number of children placed, then the score
(a lexicographic weight per child placed, in the MILP and in the LSA alike): maximising
the score alone may leave a request unplaced to win a better score elsewhere, which a
department may not accept.

Candidate offers are given per request (``offers_by_need``) because an ``Offer`` carries
its distance from that request's origin; the database layer retrieves them (e.g. the K
nearest acceptable offers per request). An offer's capacity is the smallest
``free_places`` it shows across the lists (never book what one snapshot did not have).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp
from scipy.sparse import coo_array, vstack

from matching.constraints import accepts
from matching.models import Need, Offer
from matching.score import score_value

ScoreFn = Callable[[Need, Offer], float | None]
Priority = Literal["score", "placements"]
Method = Literal["auto", "milp", "lsa"]


class Assignment(NamedTuple):
    """One request placed on one offer (a tuple, so it unpacks and compares as one)."""

    request_id: str
    kind: str
    offer_id: str
    score: float


@dataclass(frozen=True)
class Plan:
    """A set of assignments. ``total`` is the sum of their scores; ``unassigned`` keeps
    the input order; ``optimal`` is True when the solver proved the plan optimal (never for
    first-come-first-served, which proves nothing).
    ``gap`` is the solver's certified bound on how far ``total`` may be below the optimum,
    relative to ``total`` (0 when proved optimal; ``inf`` when nothing is certified).
    """

    assignments: list[Assignment]
    total: float
    unassigned: list[str]
    method: str = "milp"
    optimal: bool = True
    gap: float = 0.0

    @property
    def by_request(self) -> dict[str, Assignment]:
        return {a.request_id: a for a in self.assignments}


def default_score(need: Need, offer: Offer) -> float | None:
    """The matching score when ``offer`` can take the whole group, else ``None``."""
    return score_value(need, offer) if accepts(need, offer) else None


@dataclass(frozen=True, slots=True)
class _Problem:
    request_ids: list[str]
    sizes: np.ndarray  # children per request
    keys: list[tuple[str, str]]  # offers, sorted
    capacity: np.ndarray  # places per offer
    pr: np.ndarray  # pair → request index
    po: np.ndarray  # pair → offer index
    pv: np.ndarray  # pair → value (score)


def _build(
    needs: Sequence[tuple[str, Need]],
    offers_by_need: Mapping[str, Sequence[Offer]],
    score_fn: ScoreFn,
) -> _Problem:
    """Canonical problem: feasible pairs only, offers sorted, duplicates merged."""
    ids = [rid for rid, _ in needs]
    if len(set(ids)) != len(ids):
        raise ValueError("request ids must be unique")
    capacity: dict[tuple[str, str], int] = {}
    values: dict[tuple[int, tuple[str, str]], float] = {}
    for r, (rid, need) in enumerate(needs):
        for o in offers_by_need.get(rid, ()):
            key = o.key
            capacity[key] = min(capacity.get(key, o.free_places), o.free_places)
            v = score_fn(need, o)
            if v is None or not math.isfinite(v) or v <= 0:
                continue
            if v > values.get((r, key), -math.inf):
                values[(r, key)] = float(v)
    keys = sorted(capacity)
    index = {k: i for i, k in enumerate(keys)}
    sizes = np.array([len(n.children) for _, n in needs], dtype=np.int64)
    cap = np.array([capacity[k] for k in keys], dtype=np.int64)
    triples = sorted((r, index[k], v) for (r, k), v in values.items())
    triples = [(r, o, v) for r, o, v in triples if sizes[r] <= cap[o]]
    pr = np.array([t[0] for t in triples], dtype=np.int64)
    po = np.array([t[1] for t in triples], dtype=np.int64)
    pv = np.array([t[2] for t in triples], dtype=np.float64)
    return _Problem(ids, sizes, keys, cap, pr, po, pv)


def _plan(
    problem: _Problem, chosen: Sequence[int], method: str, optimal: bool, gap: float = 0.0
) -> Plan:
    by_request = {int(problem.pr[p]): p for p in chosen}
    assignments: list[Assignment] = []
    unassigned: list[str] = []
    for r, rid in enumerate(problem.request_ids):
        p = by_request.get(r)
        if p is None:
            unassigned.append(rid)
        else:
            kind, oid = problem.keys[int(problem.po[p])]
            assignments.append(Assignment(rid, kind, oid, float(problem.pv[p])))
    total = math.fsum(a.score for a in assignments)
    return Plan(assignments, total, unassigned, method, optimal, gap)


def _greedy_pairs(problem: _Problem) -> list[int]:
    remaining = problem.capacity.copy()
    chosen: list[int] = []
    starts = np.searchsorted(problem.pr, np.arange(len(problem.request_ids) + 1))
    for r in range(len(problem.request_ids)):
        size = problem.sizes[r]
        best = -1
        for p in range(starts[r], starts[r + 1]):
            if remaining[problem.po[p]] >= size and (best < 0 or problem.pv[p] > problem.pv[best]):
                best = p
        if best >= 0:
            remaining[problem.po[best]] -= size
            chosen.append(best)
    return chosen


def greedy(
    needs: Sequence[tuple[str, Need]],
    offers_by_need: Mapping[str, Sequence[Offer]],
    *,
    score_fn: ScoreFn | None = None,
) -> Plan:
    """First come, first served: in the given order, each request takes its best offer
    (highest score, then ``(kind, id)``) that still has room for the whole group.
    """
    problem = _build(needs, offers_by_need, score_fn or default_score)
    return _plan(problem, _greedy_pairs(problem), "greedy", False, math.inf)


def optimize(
    needs: Sequence[tuple[str, Need]],
    offers_by_need: Mapping[str, Sequence[Offer]],
    *,
    score_fn: ScoreFn | None = None,
    priority: Priority = "score",
    method: Method = "auto",
    time_limit: float | None = None,
    gap: float = 0.0,
) -> Plan:
    """Assign requests to offers maximising the total score (see the module docstring).

    ``needs``: ``(request_id, need)`` pairs; ``offers_by_need[request_id]``: that
    request's candidate offers. ``method="auto"`` uses LSA when every request is a
    single child, the exact MILP otherwise. Sibling groups are never split, and no
    offer receives more children than its free places. ``gap`` > 0 lets the MILP stop as
    soon as its plan is proved within that relative distance of the optimum, and
    ``time_limit`` bounds it; the plan then reports the gap it could certify.
    """
    if method == "lsa" and any(len(n.children) > 1 for _, n in needs):
        raise ValueError("linear_sum_assignment is exact only without sibling groups")
    problem = _build(needs, offers_by_need, score_fn or default_score)
    if len(problem.pv) == 0:
        return _plan(problem, [], "none", True)
    singles = bool(np.all(problem.sizes[problem.pr] == 1))
    if method == "lsa" or (method == "auto" and singles):
        return _solve_lsa(problem, priority)
    return _solve_milp(problem, priority, time_limit, gap)


def _placement_weight(problem: _Problem) -> float:
    """More than any total score: one more child placed always wins."""
    best = np.zeros(len(problem.request_ids))
    np.maximum.at(best, problem.pr, problem.pv)
    return float(best.sum()) + 1.0


def _solve_lsa(problem: _Problem, priority: Priority) -> Plan:
    """Single children only: offers expanded into place slots, rectangular LSA."""
    rows = np.unique(problem.pr)
    row_of = {int(r): i for i, r in enumerate(rows)}
    # An offer needs no more slots than the requests that can use it.
    offers, users = np.unique(problem.po, return_counts=True)
    slots = np.minimum(problem.capacity[offers], users)
    first_slot = np.concatenate(([0], np.cumsum(slots)))
    slot_of = {int(o): (int(first_slot[i]), int(slots[i])) for i, o in enumerate(offers)}
    weight = np.zeros((len(rows), int(first_slot[-1])))
    feasible = np.zeros(weight.shape, dtype=bool)
    bonus = _placement_weight(problem) if priority == "placements" else 0.0
    for p in range(len(problem.pv)):
        i = row_of[int(problem.pr[p])]
        start, count = slot_of[int(problem.po[p])]
        weight[i, start : start + count] = bonus + problem.pv[p]
        feasible[i, start : start + count] = True
    row_idx, col_idx = linear_sum_assignment(weight, maximize=True)
    pair_of = {
        (int(r), int(o)): p for p, (r, o) in enumerate(zip(problem.pr, problem.po, strict=True))
    }
    slot_offer = np.repeat(offers, slots)
    chosen = [
        pair_of[(int(rows[i]), int(slot_offer[j]))]
        for i, j in zip(row_idx, col_idx, strict=True)
        if feasible[i, j]
    ]
    return _plan(problem, chosen, "lsa", True)


def _solve_milp(
    problem: _Problem, priority: Priority, time_limit: float | None, gap: float
) -> Plan:
    """Exact 0/1 programme with HiGHS (branch and bound, to the relative ``gap`` asked).

    On a region's waiting list (500 requests × 600 offers) HiGHS finds the optimum within
    a fraction of a second but needs several more to prove it; a gap of 0.1 % stops it
    once the plan is proved that close, and the plan carries the certified gap.

    ``priority="placements"`` weighs each child placed by more than any total score can
    reach (``B`` = sum of every request's best value + 1), which makes one solve
    lexicographic: most children first, then best score. HiGHS presolve is turned off:
    on these assignment matrices it costs more than it saves (×3 at 500 × 3,000).
    """
    n_pairs = len(problem.pv)
    cols = np.arange(n_pairs)
    requests, req_row = np.unique(problem.pr, return_inverse=True)
    offers, off_row = np.unique(problem.po, return_inverse=True)
    sizes = problem.sizes[problem.pr].astype(np.float64)
    a_req = coo_array((np.ones(n_pairs), (req_row, cols)), shape=(len(requests), n_pairs))
    a_cap = coo_array((sizes, (off_row, cols)), shape=(len(offers), n_pairs))
    matrix = vstack([a_req, a_cap]).tocsr()
    upper = np.concatenate([np.ones(len(requests)), problem.capacity[offers].astype(float)])
    objective = problem.pv
    if priority == "placements":
        objective = sizes * _placement_weight(problem) + problem.pv
    options: dict[str, object] = {"mip_rel_gap": gap, "presolve": False}
    if time_limit is not None:
        options["time_limit"] = time_limit
    result = milp(
        -objective,
        constraints=[LinearConstraint(matrix, -np.inf, upper)],
        integrality=np.ones(n_pairs),
        bounds=Bounds(0, 1),
        options=options,
    )
    if result.x is None:
        return _fallback(problem)
    chosen = [int(p) for p in np.flatnonzero(result.x > 0.5)]
    reported = getattr(result, "mip_gap", None)
    certified = math.inf if reported is None else max(0.0, float(reported))
    # Status 0 means "within the gap asked" (and HiGHS's 1e-6 absolute tolerance).
    proved = result.status == 0 and (gap == 0.0 or certified <= 1e-9)
    return _plan(problem, chosen, "milp", proved, 0.0 if proved else certified)


def _fallback(problem: _Problem) -> Plan:
    """No solution within the time limit: fall back on first-come-first-served."""
    return _plan(problem, _greedy_pairs(problem), "greedy-fallback", False, math.inf)
