"""The relaxation ladder and the pure search driver.

When the request as stated finds too little, the search relaxes *soft* constraints in a
fixed, documented order — first where we look (radius, neighbouring departments, the
whole country), then when (places announced free in 24 h, 48 h, 7 days), and only as a
last resort whether a sibling group stays together. Hard constraints (age, sex, care
mode, disability, carer active, places) are never relaxed.

The ladder is data (``LADDER``, a tuple of ``Step``); ``ladder_markdown()`` renders it
for the README. Each step is *cumulative*: it keeps every earlier relaxation and adds
exactly one (checked by ``check_ladder``), so the database layer can translate a step
into one SQL query without knowing the others:

- ``area`` — ``radius``: offers within ``radius_km`` of the origin, whatever their
  department; ``neighbours``: the same, plus every offer of the origin department and
  of the departments bordering it; ``national``: the whole country (order by distance);
- ``radius_km`` — ``radius_factor`` × the requested radius, filled in by ``resolve``
  (``None``: no distance limit);
- ``outside_department`` — whether offers outside the origin department count;
- ``temporalities`` — which declared temporalities count as free places;
- ``split_siblings`` — return offers able to take *at least one* child of the group
  (per-child constraints, at least one free place) instead of the whole group.

``search`` runs the steps in order while it has fewer than ``limit`` proposals, calling
``fetch(step)`` — the only injection point: the API passes a function running SQL, tests
pass in-memory fakes — and re-checks every hard constraint itself (the library never
trusts its input to be pre-filtered).

Each proposal's ``relaxed`` lists the relaxations that *this offer* needs, as true facts
(it lies outside the requested radius; it is only free in 48 h; the group is split),
not just the step at which the search stood. They nest: an offer outside the doubled
radius also lies outside the requested one, so it lists both — ``len(relaxed)`` is a
distance from the request, and proposals are ordered by it first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import combinations, pairwise
from typing import Final

from matching.constraints import accepts, child_accepted, violations
from matching.models import Need, Offer, Proposal, Reason, SearchResult
from matching.score import score, score_value
from matching.vocabulary import Temporality


class Area(StrEnum):
    """Geographic scope of a step (see the module docstring)."""

    RADIUS = "radius"
    NEIGHBOURS = "neighbours"
    NATIONAL = "national"


_AREA_RANK: Final = {Area.RADIUS: 0, Area.NEIGHBOURS: 1, Area.NATIONAL: 2}


@dataclass(frozen=True, slots=True)
class Step:
    """One rung of the ladder: the complete scope the SQL layer must search.

    ``radius_km`` is ``None`` in ``LADDER`` and filled by ``resolve(max_distance_km)``
    (it stays ``None`` for steps without distance limit).
    """

    code: str
    label: str
    area: str
    radius_factor: float | None
    temporalities: frozenset[str]
    outside_department: bool = True
    split_siblings: bool = False
    radius_km: float | None = None

    def resolve(self, max_distance_km: float) -> Step:
        """This step with ``radius_km`` computed for the requested radius."""
        radius = None if self.radius_factor is None else self.radius_factor * max_distance_km
        return replace(self, radius_km=radius)

    def counts(self, temporality: str) -> bool:
        """Whether places of this temporality count at this step."""
        return temporality in self.temporalities


_NOW: Final = frozenset({Temporality.CURRENT.value})
_H24: Final = _NOW | {Temporality.H1.value, Temporality.H24.value}
_H48: Final = _H24 | {Temporality.H48.value}
_D7: Final = _H48 | {Temporality.D7.value}

#: The default ladder. Geography before time: a measure ordered by a judge must be
#: executed, so a place free *now*, even far, is looked for before a place free later;
#: splitting siblings comes last (Code civil, art. 371-5).
LADDER: Final[tuple[Step, ...]] = (
    Step(
        "none",
        "Demande telle que formulée : rayon demandé, places libres maintenant",
        Area.RADIUS,
        1.0,
        _NOW,
    ),
    Step("widen_radius", "Rayon doublé", Area.RADIUS, 2.0, _NOW),
    Step(
        "neighbour_departments",
        "Département d'origine et départements limitrophes en entier",
        Area.NEIGHBOURS,
        2.0,
        _NOW,
    ),
    Step("national", "Toute la France", Area.NATIONAL, None, _NOW),
    Step("forecast_h24", "Places annoncées libres sous 24 h", Area.NATIONAL, None, _H24),
    Step("forecast_h48", "Places annoncées libres sous 48 h", Area.NATIONAL, None, _H48),
    Step("forecast_d7", "Places annoncées libres sous 7 jours", Area.NATIONAL, None, _D7),
    Step(
        "split_siblings",
        "Fratrie répartie entre plusieurs lieux, au plus près les uns des autres",
        Area.NATIONAL,
        None,
        _D7,
        split_siblings=True,
    ),
)

STEP_CODES: Final = tuple(s.code for s in LADDER)


def _geo_tuple(step: Step) -> tuple[int, float, bool]:
    radius = math.inf if step.radius_factor is None else step.radius_factor
    return (_AREA_RANK[Area(step.area)], radius, step.outside_department)


def check_ladder(ladder: Sequence[Step]) -> None:
    """Raise ``ValueError`` unless every step keeps the previous scope and relaxes one thing.

    This is what makes ``relaxed`` computable as facts: each step after the first relaxes
    exactly one dimension (geography, time, or sibling split), never tightens another,
    and the split, if any, is the last step.
    """
    if not ladder:
        raise ValueError("ladder is empty")
    if ladder[0].split_siblings:
        raise ValueError("the first step cannot split siblings")
    codes = [s.code for s in ladder]
    if len(set(codes)) != len(codes):
        raise ValueError("step codes must be unique")
    for prev, step in pairwise(ladder):
        if prev.split_siblings:
            raise ValueError("split_siblings must be the last step")
        pg, g = _geo_tuple(prev), _geo_tuple(step)
        if any(b < a for a, b in zip(pg, g, strict=True)):
            raise ValueError(f"step {step.code} narrows the geography of {prev.code}")
        if not prev.temporalities <= step.temporalities:
            raise ValueError(f"step {step.code} drops temporalities of {prev.code}")
        changed = (g != pg) + (step.temporalities != prev.temporalities)
        changed += step.split_siblings != prev.split_siblings
        if changed != 1:
            raise ValueError(f"step {step.code} must relax exactly one thing")


def _relaxes(prev: Step | None, step: Step) -> str:
    """What a step adds to the previous one, in words (for the table)."""
    if prev is None:
        return "— (the request as stated)"
    if step.split_siblings and not prev.split_siblings:
        return "sibling group may be split"
    if _geo_tuple(step) != _geo_tuple(prev):
        if step.area == Area.NATIONAL:
            return "whole country"
        if step.area == Area.NEIGHBOURS and prev.area != Area.NEIGHBOURS:
            return "whole origin and bordering departments"
        return f"radius × {step.radius_factor:g}"
    added = [t for t in Temporality if t in step.temporalities - prev.temporalities]
    return "places free later: " + ", ".join(added)


def ladder_markdown(ladder: Sequence[Step] = LADDER) -> str:
    """The ladder as a Markdown table (for the README)."""
    lines = [
        "| # | step | relaxes | label (UI) | area | radius | places counted | siblings |",
        "| -: | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = list(Temporality)
    prev: Step | None = None
    for i, s in enumerate(ladder):
        radius = "none" if s.radius_factor is None else f"× {s.radius_factor:g} requested"
        temps = ", ".join(t for t in order if t in s.temporalities)
        area = s.area if s.outside_department else f"{s.area}, origin department only"
        lines.append(
            f"| {i} | `{s.code}` | {_relaxes(prev, s)} | {s.label} | {area} | {radius} | "
            f"{temps} | {'split allowed' if s.split_siblings else 'together'} |"
        )
        prev = s
    return "\n".join(lines)


LADDER_MARKDOWN: Final = ladder_markdown()

Fetch = Callable[[Step], Iterable[Offer]]


# ---------------------------------------------------------------------------- facts


class _Facts:
    """Which relaxations a given offer really needs, from the ladder's structure."""

    def __init__(self, steps: Sequence[Step], need: Need, neighbours: Collection[str]) -> None:
        self.steps = steps
        self.origin = need.origin_department
        self.neighbours = frozenset(neighbours)
        # (ladder index, step) of the base step and of each step relaxing that dimension.
        self.geo: list[tuple[int, Step]] = [(0, steps[0])]
        self.time: list[tuple[int, Step]] = [(0, steps[0])]
        self.split_code: str | None = None
        for i, (prev, step) in enumerate(pairwise(steps), start=1):
            if _geo_tuple(step) != _geo_tuple(prev):
                self.geo.append((i, step))
            elif step.temporalities != prev.temporalities:
                self.time.append((i, step))
            elif step.split_siblings:
                self.split_code = step.code

    def in_area(self, offer: Offer, step: Step) -> bool:
        """Whether ``offer`` lies in the geographic scope of ``step`` (as far as we can tell)."""
        if not step.outside_department and self.origin is not None:
            if offer.department != self.origin:
                return False
        if step.area == Area.NATIONAL:
            return True
        if step.radius_km is None or offer.distance_km <= step.radius_km:
            return True
        if step.area == Area.NEIGHBOURS:
            return offer.department == self.origin or offer.department in self.neighbours
        return False

    def admissible(self, offer: Offer, step: Step) -> bool:
        """What the driver can verify of the fetch's answer (neighbours are trusted)."""
        if not step.counts(offer.temporality):
            return False
        if step.area == Area.NEIGHBOURS:
            return step.outside_department or offer.department == self.origin
        return self.in_area(offer, step)

    def relaxed(self, offer: Offer, first_seen: int, split: bool) -> tuple[str, ...]:
        """Codes of the relaxations ``offer`` needs, in ladder order.

        Geography: the first geographic level whose area contains the offer — measured
        (distance, department) or known because a step of that level returned it.
        Time: the first level whose temporalities include the offer's.
        """
        seen_level = sum(1 for idx, _ in self.geo[1:] if idx <= first_seen)
        geo_level = seen_level
        for level, (_, step) in enumerate(self.geo[:seen_level]):
            if self.in_area(offer, step):
                geo_level = level
                break
        time_level = len(self.time) - 1
        for level, (_, step) in enumerate(self.time):
            if step.counts(offer.temporality):
                time_level = level
                break
        picked = [(i, s.code) for i, s in self.geo[1 : geo_level + 1]]
        picked += [(i, s.code) for i, s in self.time[1 : time_level + 1]]
        if split and self.split_code is not None:
            picked.append((len(self.steps), self.split_code))
        return tuple(code for _, code in sorted(picked))


def _offer_order(o: Offer) -> tuple[object, ...]:
    """A total order on offers, so that ties never depend on input order."""
    return (
        o.kind,
        o.id,
        o.temporality,
        o.distance_km,
        -o.free_places,
        o.declared_age_days,
        o.department,
        o.commune,
        o.age_min,
        o.age_max,
        tuple(sorted(o.sexes)),
        tuple(sorted(o.care_modes)),
        tuple(sorted(o.disability_profiles)),
        o.status,
        o.agrement_valid,
        o.available_gender,
        o.structure_id or "",
        o.category or "",
    )


def _proposal_order(p: Proposal) -> tuple[object, ...]:
    return (len(p.relaxed), -p.score, p.offer.kind, p.offer.id, p.children, _offer_order(p.offer))


# ---------------------------------------------------------------------------- search


def search(
    need: Need,
    fetch: Fetch,
    limit: int = 10,
    max_distance_km: float = 50.0,
    *,
    ladder: Sequence[Step] = LADDER,
    neighbours: Collection[str] = (),
) -> SearchResult:
    """Propose up to ``limit`` offers for ``need``, relaxing the ladder only as needed.

    ``fetch(step)`` returns candidate offers for one (resolved) step; it is called once
    per step tried, in ladder order, until ``limit`` proposals are found. Proposals are
    deduplicated by ``(kind, id)`` keeping the least relaxed, and ordered by (number of
    relaxations, -score, kind, id). A sibling group is split only when no earlier step
    found any offer for the whole group; the split plan is then returned whole (one
    proposal per sub-group, even beyond ``limit``). ``neighbours`` (optional) lists the
    departments bordering the origin, to label relaxations exactly; without it the
    driver relies on which step returned an offer. The result always lists the steps
    ``tried``; ``fetch`` exceptions propagate (the caller owns I/O errors).
    """
    if limit < 1:
        raise ValueError("limit doit être ≥ 1")
    if not (math.isfinite(max_distance_km) and max_distance_km > 0):
        raise ValueError("max_distance_km doit être un nombre > 0")
    steps = [s.resolve(max_distance_km) for s in ladder]
    check_ladder(steps)
    facts = _Facts(steps, need, neighbours)

    best: dict[tuple[str, str], Proposal] = {}
    first_seen: dict[tuple[str, str], int] = {}
    tried: list[str] = []
    rejected: Counter[str] = Counter()
    rejected_seen: set[tuple[str, str, str]] = set()
    unmatched: list[int] = []

    def keep(p: Proposal) -> None:
        old = best.get(p.key)
        if old is None or _proposal_order(p) < _proposal_order(old):
            best[p.key] = p

    for index, step in enumerate(steps):
        if len(best) >= limit:
            break
        if step.split_siblings and (len(need.children) < 2 or best):
            continue  # siblings stay together whenever any offer takes the whole group
        tried.append(step.code)
        offers = [o for o in fetch(step) if facts.admissible(o, step)]
        offers.sort(key=_offer_order)
        for o in offers:
            first_seen.setdefault(o.key, index)

        whole: list[Offer] = []
        for o in offers:
            if accepts(need, o):
                whole.append(o)
            elif not step.split_siblings:
                snapshot = (o.kind, o.id, o.temporality)
                if snapshot not in rejected_seen:
                    rejected_seen.add(snapshot)
                    rejected.update({v.constraint for v in violations(need, o)})
        for o in whole:
            value, reasons = score(need, o)
            keep(
                Proposal(
                    o,
                    tuple(range(len(need.children))),
                    value,
                    reasons,
                    facts.relaxed(o, first_seen[o.key], split=False),
                )
            )
        if step.split_siblings and not whole:
            plan, unmatched = split_plan(
                need, offers, lambda o: facts.relaxed(o, first_seen[o.key], split=True)
            )
            for p in plan:
                keep(p)

    proposals = sorted(best.values(), key=_proposal_order)
    if not any(len(p.children) < len(need.children) for p in proposals):
        proposals = proposals[:limit]  # a split plan is one answer: never cut in pieces
    if not proposals:
        unmatched = list(range(len(need.children)))
    return SearchResult(
        proposals=proposals,
        relaxations=tried[1:],
        tried=tried,
        rejected=dict(sorted(rejected.items())),
        unmatched_children=unmatched,
    )


# ---------------------------------------------------------------------------- split

#: How many candidate offers per sub-group the split search considers (best first by
#: relaxations then distance), and how many search nodes it may visit in total.
SPLIT_CANDIDATES_PER_GROUP: Final = 30
SPLIT_NODE_BUDGET: Final = 200_000

_EARTH_RADIUS_KM: Final = 6371.0088


def separation_km(a: Offer, b: Offer) -> tuple[float, bool]:
    """How far apart two offers are, and whether that figure is exact.

    Same structure ⇒ 0; both located ⇒ great-circle distance; same commune ⇒ 0;
    otherwise the upper bound ``a.distance_km + b.distance_km`` (via the origin, by the
    triangle inequality): never claim siblings are closer than we know.
    """
    if a.structure_id is not None and a.structure_id == b.structure_id:
        return 0.0, True
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        return _haversine(a.lat, a.lon, b.lat, b.lon), True
    if a.commune == b.commune:
        return 0.0, True
    return a.distance_km + b.distance_km, False


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class _Cand:
    offer: Offer
    relaxed: tuple[str, ...]
    order: tuple[object, ...]


def split_plan(
    need: Need,
    offers: Sequence[Offer],
    relaxed_of: Callable[[Offer], tuple[str, ...]],
    *,
    candidates_per_group: int = SPLIT_CANDIDATES_PER_GROUP,
    node_budget: int = SPLIT_NODE_BUDGET,
) -> tuple[list[Proposal], list[int]]:
    """Place a sibling group that no single offer can take, on as few offers as possible.

    Approach (lexicographic, exact within the candidate cut and the node budget):

    1. fewest sub-groups — 2 before 3, … (siblings stay together as much as possible);
    2. fewest relaxations in total (the ladder's own preference: near and now first);
    3. smallest separation: Σ over pairs of children placed apart of the distance
       between their two offers (``separation_km``: same structure or commune 0);
    4. highest total score, then a fixed order on ids (determinism).

    Sub-groups are enumerated as set partitions of the children, pruned as soon as a
    sub-group has no candidate (a larger one cannot have any either); for each
    partition a depth-first search picks distinct offers with branch and bound.
    Children no offer can take at all are left out and returned as ``unmatched``.
    """
    n = len(need.children)
    pool: list[tuple[int, int, Offer]] = []  # (accepted-children mask, places, offer)
    for o in sorted(offers, key=_offer_order):
        mask = 0
        for i, child in enumerate(need.children):
            if child_accepted(child, o, need.care_mode):
                mask |= 1 << i
        if mask and o.free_places > 0:
            pool.append((mask, o.free_places, o))

    cand_memo: dict[int, list[_Cand]] = {}

    def cands(mask: int) -> list[_Cand]:
        got = cand_memo.get(mask)
        if got is None:
            size = mask.bit_count()
            got = []
            for acc, places, o in pool:
                if mask & ~acc == 0 and places >= size:
                    got.append(_Cand(o, relaxed_of(o), _offer_order(o)))
            got.sort(key=lambda c: (len(c.relaxed), c.offer.distance_km, c.order))
            cand_memo[mask] = got
        return got

    coverable = [i for i in range(n) if cands(1 << i)]
    budget = [node_budget]
    for size in range(len(coverable), 0, -1):
        best: tuple[tuple[object, ...], list[tuple[int, _Cand]]] | None = None
        for group in combinations(coverable, size):
            for k in range(2 if size == n else 1, size + 1):
                found = _BestForK(need, cands, candidates_per_group, budget).run(list(group), k)
                if found is not None:
                    if best is None or found[0] < best[0]:
                        best = found
                    break
        if best is not None:
            chosen = best[1]
            taken = {i for mask, _ in chosen for i in range(n) if mask >> i & 1}
            return _plan_proposals(need, chosen), [i for i in range(n) if i not in taken]
    return [], list(range(n))


def _partitions(
    items: Sequence[int], k: int, feasible: Callable[[int], bool]
) -> Iterable[tuple[int, ...]]:
    """Set partitions of ``items`` into exactly ``k`` feasible blocks (as bit masks)."""
    blocks: list[int] = []

    def rec(pos: int) -> Iterable[tuple[int, ...]]:
        if pos == len(items):
            if len(blocks) == k:
                yield tuple(blocks)
            return
        if len(blocks) + len(items) - pos < k:
            return
        bit = 1 << items[pos]
        for j in range(len(blocks)):
            grown = blocks[j] | bit
            if feasible(grown):
                blocks[j] = grown
                yield from rec(pos + 1)
                blocks[j] = grown ^ bit
        if len(blocks) < k and feasible(bit):
            blocks.append(bit)
            yield from rec(pos + 1)
            blocks.pop()

    yield from rec(0)


_PlanKey = tuple[object, ...]
#: A complete partition's rank, smallest best: (relaxations, separation, -score, tie-break).
_SearchKey = tuple[int, float, float, tuple[tuple[int, tuple[object, ...]], ...]]


class _BestForK:
    """Branch and bound over one partition size ``k`` (see ``split_plan``)."""

    def __init__(
        self,
        need: Need,
        cands: Callable[[int], list[_Cand]],
        per_group: int,
        budget: list[int],
    ) -> None:
        self.need = need
        self.cands = cands
        self.per_group = per_group
        self.budget = budget
        self.best_key: _SearchKey | None = None
        self.best_plan: list[tuple[int, _Cand]] = []
        self._scores: dict[tuple[int, tuple[str, str]], float] = {}
        # State of the partition being explored.
        self.order: list[int] = []
        self.lists: list[list[_Cand]] = []
        self.rest: list[int] = []
        self.chosen: list[_Cand] = []

    def run(self, items: list[int], k: int) -> tuple[_PlanKey, list[tuple[int, _Cand]]] | None:
        for blocks in _partitions(items, k, lambda m: bool(self.cands(m))):
            self.order = sorted(blocks, key=lambda m: (len(self.cands(m)), m))
            self.lists = [self.cands(m)[: self.per_group] for m in self.order]
            min_relax = [len(lst[0].relaxed) for lst in self.lists]
            self.rest = [sum(min_relax[t:]) for t in range(k + 1)]
            self.chosen = []
            self._dfs(0, 0, 0.0)
        if self.best_key is None:
            return None
        return (-len(items), k, *self.best_key), self.best_plan

    def _block_score(self, mask: int, c: _Cand) -> float:
        key = (mask, c.offer.key)
        if key not in self._scores:
            idx = [i for i in range(len(self.need.children)) if mask >> i & 1]
            self._scores[key] = score_value(self.need, c.offer, idx)
        return self._scores[key]

    def _dfs(self, t: int, relax: int, sep: float) -> None:
        if self.budget[0] <= 0:
            return
        self.budget[0] -= 1
        pairs = list(zip(self.order, self.chosen, strict=False))
        if t == len(self.order):
            total = math.fsum(self._block_score(m, c) for m, c in pairs)
            tie = tuple(sorted((m, c.order) for m, c in pairs))
            key = (relax, sep, -total, tie)
            if self.best_key is None or key < self.best_key:
                self.best_key, self.best_plan = key, pairs
            return
        size = self.order[t].bit_count()
        for c in self.lists[t]:
            bound = relax + len(c.relaxed) + self.rest[t + 1]
            if self.best_key is not None and bound > self.best_key[0]:
                break  # candidates are sorted by relaxations: no better one follows
            if any(c.offer.key == p.offer.key for p in self.chosen):
                continue
            add = 0.0
            for m, p in pairs:
                add += size * m.bit_count() * separation_km(c.offer, p.offer)[0]
            if self.best_key is not None and (bound, sep + add) > self.best_key[:2]:
                continue
            self.chosen.append(c)
            self._dfs(t + 1, relax + len(c.relaxed), sep + add)
            self.chosen.pop()


def _plan_proposals(need: Need, chosen: list[tuple[int, _Cand]]) -> list[Proposal]:
    """Turn a chosen split into proposals, each explaining where the other siblings are."""
    out: list[Proposal] = []
    n = len(need.children)
    for mask, c in chosen:
        idx = tuple(i for i in range(n) if mask >> i & 1)
        value, reasons = score(need, c.offer, idx)
        others = [separation_km(c.offer, p.offer) for m, p in chosen if m != mask]
        if others:
            far = max(d for d, _ in others)
            exact = all(e for _, e in others)
            where = (
                "même lieu ou même commune"
                if far == 0
                else (f"{'à' if exact else 'à au plus'} {far:.0f} km".replace(".", ","))
            )
            detail = f"fratrie répartie sur {len(chosen)} lieux ; autres enfants {where}"
        else:
            detail = "seuls ces enfants de la fratrie ont pu être placés"
        reasons = (*reasons, Reason("siblings_split", detail, 0.0))
        out.append(Proposal(c.offer, idx, value, reasons, c.relaxed))
    return out
