"""The relaxation ladder and the pure search driver.

When the request as stated finds too little, the search relaxes *soft* constraints in a
fixed, documented order — first where we look (radius, neighbouring departments, the
whole country), then when (places announced free in 24 h, 48 h, 7 days), and only as a
last resort whether a sibling group stays together. Hard constraints (age, sex,
timing, public, formula, carer active, places) are never relaxed. An offer silent on a
child's disability profile is admissible at every step, but only as a stated relaxation
outside the ladder (``disability_unstated``, ``matching.disability``): it ranks after the
offers with a word on the profile at the same step.

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
distance from the request, and proposals are ordered by it first. ``disability_unstated``,
when the offer needs it, comes after the ladder's codes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import combinations, pairwise
from types import MappingProxyType
from typing import Final

from matching import disability
from matching.constraints import accepts, child_accepted, violations
from matching.models import Need, Offer, Proposal, Reason, SearchResult, haversine_km
from matching.score import score, score_value
from matching.vocabulary import Temporality, Timing, Urgency


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

_FIRST_LABEL: Final = "Demande telle que formulée : rayon demandé, places libres maintenant"
_SPLIT_LABEL: Final = "Fratrie répartie entre plusieurs lieux, au plus près les uns des autres"
_FORECAST_LABEL: Final = {
    "forecast_h24": "Places annoncées libres sous 24 h",
    "forecast_h48": "Places annoncées libres sous 48 h",
    "forecast_d7": "Places annoncées libres sous 7 jours",
}
_FORECAST_TIME: Final = {"forecast_h24": _H24, "forecast_h48": _H48, "forecast_d7": _D7}
_GEO: Final = {
    "widen_radius": ("Rayon doublé", Area.RADIUS, 2.0),
    "neighbour_departments": (
        "Département d'origine et départements limitrophes en entier",
        Area.NEIGHBOURS,
        2.0,
    ),
    "national": ("Toute la France", Area.NATIONAL, None),
}


def build_ladder(order: Sequence[str]) -> tuple[Step, ...]:
    """A ladder from the order of its relaxations (codes of ``_GEO``, ``_FORECAST_TIME`` and
    ``split_siblings``): each step keeps the scope of the previous one and relaxes the named
    dimension, so the same code means the same relaxation in every ladder."""
    step = Step("none", _FIRST_LABEL, Area.RADIUS, 1.0, _NOW)
    out = [step]
    for code in order:
        if code in _GEO:
            label, area, factor = _GEO[code]
            step = replace(step, code=code, label=label, area=area, radius_factor=factor)
        elif code in _FORECAST_TIME:
            step = replace(
                step, code=code, label=_FORECAST_LABEL[code], temporalities=_FORECAST_TIME[code]
            )
        elif code == "split_siblings":
            step = replace(step, code=code, label=_SPLIT_LABEL, split_siblings=True)
        else:
            raise ValueError(f"unknown relaxation {code!r}")
        out.append(step)
    return tuple(out)


#: The ladder of each urgency (issue #16). Why each order:
#:
#: - ``immediate`` — the child needs a roof tonight: places free *now*, nearest first,
#:   widening geographically to the whole country before any place announced for later;
#:   within a step, emergency units and carers first (``emergency_first``).
#: - ``days`` — a few days to organise: a place announced for tomorrow near the family beats
#:   a place free now twice as far; places announced within 24 h / 48 h / 7 days within the
#:   requested radius and the neighbouring departments all come before anything beyond
#:   them (Code civil art. 375-7: visits and ties with the family).
#: - ``planned`` — a planned move: when the place frees matters little within a week, so
#:   every forecast within the requested radius comes before widening the radius at all.
#:
#: In every ladder splitting siblings comes last (art. 371-5), unless the separation was
#: ordered (``Need.separation_ordered``: allowed from the first step, not a relaxation).
LADDERS: Final[Mapping[str, tuple[Step, ...]]] = MappingProxyType(
    {
        Urgency.IMMEDIATE: build_ladder(
            (
                "widen_radius",
                "neighbour_departments",
                "national",
                "forecast_h24",
                "forecast_h48",
                "forecast_d7",
                "split_siblings",
            )
        ),
        Urgency.DAYS: build_ladder(
            (
                "forecast_h24",
                "widen_radius",
                "forecast_h48",
                "neighbour_departments",
                "forecast_d7",
                "national",
                "split_siblings",
            )
        ),
        Urgency.PLANNED: build_ladder(
            (
                "forecast_h24",
                "forecast_h48",
                "forecast_d7",
                "widen_radius",
                "neighbour_departments",
                "national",
                "split_siblings",
            )
        ),
    }
)

#: The ``immediate`` ladder: geography before time (the historical default ladder).
LADDER: Final[tuple[Step, ...]] = LADDERS[Urgency.IMMEDIATE]

#: Urgencies whose steps show emergency units (FINESS 175 foyer de l'enfance, or a unit
#: offering ``urgence``) and carers before the other offers of the same step.
EMERGENCY_FIRST: Final = frozenset({Urgency.IMMEDIATE.value})
EMERGENCY_CATEGORIES: Final = frozenset({"175"})

#: A declaration older than this (days) is stale: it ranks after the fresh ones of its step
#: and is marked. The API passes its setting ``stale_after_days`` (the statistics' notion).
STALE_AFTER_DAYS: Final = 7.0


def ladder_for(urgency: str) -> tuple[Step, ...]:
    """The ladder of an urgency (``immediate``, ``days``, ``planned``)."""
    return LADDERS[urgency]


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


#: Why each urgency's ladder is ordered as it is (rendered above its table).
LADDER_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        Urgency.IMMEDIATE: (
            "the child needs a roof tonight: places free now, nearest first, widening"
            " geographically to the whole country before any place announced for later; within"
            " a step, emergency units (foyer de l'enfance, FINESS 175, or a unit offering"
            " `urgence`) and carers come first."
        ),
        Urgency.DAYS: (
            "a few days to organise: a place announced for tomorrow near the family beats a"
            " place free now twice as far; places announced within 24 h, 48 h and 7 days within"
            " the requested radius and the neighbouring departments all come before any place"
            " beyond them (Code civil art. 375-7: visits, ties with the family)."
        ),
        Urgency.PLANNED: (
            "a planned move: when the place frees matters little within a week, so every"
            " forecast within the requested radius comes before the radius is widened at all."
        ),
    }
)


def ladders_markdown() -> str:
    """Every urgency's ladder, with its reason, as Markdown (for the README)."""
    parts = []
    for urgency, ladder in LADDERS.items():
        parts.append(f"**`{urgency}`** — {LADDER_REASONS[urgency]}\n\n{ladder_markdown(ladder)}")
    return "\n\n".join(parts)


LADDER_MARKDOWN: Final = ladders_markdown()

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
        # What ``relaxed`` derives from the ladder alone, computed once per search: the
        # geographic levels seen by a step, each temporality's level, each answer.
        self._seen: dict[int, int] = {}
        self._time_level: dict[str, int] = {}
        self._codes: dict[tuple[int, int, bool], tuple[str, ...]] = {}

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
        seen_level = self._seen.get(first_seen)
        if seen_level is None:
            seen_level = self._seen[first_seen] = sum(
                1 for idx, _ in self.geo[1:] if idx <= first_seen
            )
        geo_level = seen_level
        for level, (_, step) in enumerate(self.geo[:seen_level]):
            if self.in_area(offer, step):
                geo_level = level
                break
        time_level = self._time_level.get(offer.temporality)
        if time_level is None:
            time_level = len(self.time) - 1
            for level, (_, step) in enumerate(self.time):
                if step.counts(offer.temporality):
                    time_level = level
                    break
            self._time_level[offer.temporality] = time_level
        key = (geo_level, time_level, split and self.split_code is not None)
        codes = self._codes.get(key)
        if codes is None:
            picked = [(i, s.code) for i, s in self.geo[1 : geo_level + 1]]
            picked += [(i, s.code) for i, s in self.time[1 : time_level + 1]]
            if key[2]:
                assert self.split_code is not None
                picked.append((len(self.steps), self.split_code))
            codes = self._codes[key] = tuple(code for _, code in sorted(picked))
        return codes


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
        o.age_min_months,
        o.age_max_months,
        tuple(sorted(o.sexes)),
        tuple(sorted(o.timings)),
        tuple(sorted(o.publics)),
        tuple(sorted(o.formulas)),
        tuple(sorted(o.disability_specialised)),
        tuple(sorted(o.disability_supported)),
        o.status,
        o.agrement_valid,
        o.available_gender,
        o.structure_id or "",
        o.category or "",
    )


def _in_offer_order(offers: list[Offer]) -> list[Offer]:
    """``offers`` sorted by ``_offer_order``. Its first fields (kind, id, temporality) name an
    offer: when no two offers share them — every fetch of one consistent read — they decide
    alone, and the whole key (six sorted sets per offer) is built only when two do."""
    heads = [(o.kind, o.id, o.temporality) for o in offers]
    if len(set(heads)) < len(heads):
        return sorted(offers, key=_offer_order)
    order = sorted(range(len(offers)), key=heads.__getitem__)
    return [offers[i] for i in order]


def _proposal_order(p: Proposal) -> tuple[object, ...]:
    """Order among candidate proposals of one offer (keep the least relaxed, then the best)."""
    return (len(p.relaxed), -p.score, p.offer.kind, p.offer.id, p.children, _offer_order(p.offer))


def is_emergency(offer: Offer) -> bool:
    """An offer an ``immediate`` search shows first in its step: a carer, or an emergency
    unit (foyer de l'enfance, or a unit offering the ``urgence`` timing)."""
    return (
        offer.kind == "carer"
        or offer.category in EMERGENCY_CATEGORIES
        or Timing.URGENCE in offer.timings
    )


@dataclass(frozen=True, slots=True)
class _Option:
    """One answer: a single offer taking the whole group, or a split plan (several parts)."""

    key: tuple[object, ...]
    parts: tuple[Proposal, ...]


def _tie(p: Proposal) -> tuple[object, ...]:
    return (p.offer.kind, p.offer.id, p.children, _offer_order(p.offer))


def _option_key(
    step: int, parts: Sequence[Proposal], need: Need, emergency_first: bool
) -> tuple[object, ...]:
    """The documented total order of options (smallest first):

    1. the ladder step the option ranks at;
    2. what the offer says of the children's disability profiles (``matching.disability``):
       specialised, then with support, then unstated (the worst over the option's children;
       children without a profile count as specialised). Before freshness and emergency:
       a place that can care for the child's disability matters more than how recent its
       declaration is (a stale one is a phone call away) or than its being an emergency
       unit (a child with autism placed in a foyer that never said it takes them is the
       rupture de parcours the graded profiles exist to avoid);
    3. fresh before stale (any part stale makes the option stale);
    4. for ``immediate``: emergency units and carers before the others;
    5. the score, best first (a split plan: its parts' scores weighted by children);
    6. a stable tie-break on the offers — (kind, id, children, every field of the offer);
    7. 0 — a near split shown beside the best together offer takes that offer's key with 1
       here, so it comes right after it (``_near_split``).
    """
    n = len(need.children)
    level = max(disability.rank(need, p.offer, p.children) for p in parts)
    total = math.fsum(p.score * len(p.children) for p in parts) / n
    stale = any(p.stale for p in parts)
    late = emergency_first and not all(is_emergency(p.offer) for p in parts)
    return (step, level, stale, late, -total, _Tie(tuple(parts)), 0)


class _Tie:
    """The tie-break of an option (6. above): its parts' ``_tie`` tuples, sorted — built only
    when two options get that far in a comparison (equal scores), not for every option of
    every search (#16: most of the cost of ordering the options)."""

    __slots__ = ("_parts", "_value")

    def __init__(self, parts: tuple[Proposal, ...]) -> None:
        self._parts = parts
        self._value: tuple[tuple[object, ...], ...] | None = None

    def value(self) -> tuple[tuple[object, ...], ...]:
        if self._value is None:
            self._value = tuple(sorted(_tie(p) for p in self._parts))
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Tie) and self.value() == other.value()

    def __lt__(self, other: _Tie) -> bool:
        return self.value() < other.value()

    def __hash__(self) -> int:
        return hash(self.value())


def search(
    need: Need,
    fetch: Fetch,
    limit: int = 10,
    max_distance_km: float = 50.0,
    *,
    ladder: Sequence[Step] | None = None,
    neighbours: Collection[str] = (),
    exclude: Collection[tuple[str, str]] = (),
    stale_after_days: float = STALE_AFTER_DAYS,
) -> SearchResult:
    """Propose up to ``limit`` options for ``need``, relaxing its urgency's ladder as needed.

    ``fetch(step)`` returns candidate offers for one (resolved) step; it is called once
    per step tried, in ladder order, while fewer than ``limit`` options are found. An
    option is one offer taking the whole group, or a split plan (its proposals share
    ``option`` and are never cut apart). Options are in one total order (``_option_key``:
    ladder step, fresh before stale, for ``immediate`` emergency offers first, score, a
    stable tie-break), so the first k options for ``limit=k`` are the first k for any larger
    limit (given a ``fetch`` that returns every offer of a step's scope).

    ``ladder`` defaults to ``LADDERS[need.urgency]``. ``exclude``: ``(kind, id)`` of offers
    never to propose (they already refused this child), counted in ``rejected["refused"]``;
    offers nearer than ``need.min_distance_km`` are counted in ``rejected["min_distance"]``.

    Siblings: together first. A split is computed when no offer took the whole group by the
    last step (the ``split_siblings`` relaxation), from the first step when the separation
    was ordered (then not a relaxation), and when the best offer taking the whole group lies
    beyond the requested radius while a split within it exists: that split is then shown
    right after it, marked ``split_siblings`` with the distance between the siblings.

    ``neighbours`` (optional) lists the departments bordering the origin, to label
    relaxations exactly; without it the driver relies on which step returned an offer.
    The result always lists the steps ``tried``; ``fetch`` exceptions propagate.
    """
    if limit < 1:
        raise ValueError("limit doit être ≥ 1")
    if not (math.isfinite(max_distance_km) and max_distance_km > 0):
        raise ValueError("max_distance_km doit être un nombre > 0")
    steps = [s.resolve(max_distance_km) for s in (ladder or LADDERS[need.urgency])]
    check_ladder(steps)
    facts = _Facts(steps, need, neighbours)
    excluded = frozenset(exclude)
    min_km = need.min_distance_km
    n = len(need.children)
    group = n > 1
    emergency_first = need.urgency in EMERGENCY_FIRST
    index_of = {s.code: i for i, s in enumerate(steps)}

    best: dict[tuple[str, str], Proposal] = {}
    plans: list[_Option] = []
    first_seen: dict[tuple[str, str], int] = {}
    tried: list[str] = []
    rejected: Counter[str] = Counter()
    rejected_seen: set[tuple[str, str, str]] = set()

    def rank(relaxed: tuple[str, ...]) -> int:
        return max((index_of[c] for c in relaxed if c in index_of), default=0)

    def proposal(o: Offer, idx: tuple[int, ...], relaxed: tuple[str, ...]) -> Proposal:
        # The score alone: every candidate of a step is ranked, but only the ``limit`` kept
        # are explained (``explained`` below) — building the reasons' texts of them all was
        # most of the library's time in a search (#16, profiled).
        relaxed = disability.with_unstated(relaxed, need, o, idx)
        value = score_value(need, o, idx)
        stale = o.declared_age_days > stale_after_days
        return Proposal(o, idx, value, (), relaxed, steps[rank(relaxed)].code, stale)

    def keep(p: Proposal) -> None:
        old = best.get(p.key)
        if old is None or (old is not p and _proposal_order(p) < _proposal_order(old)):
            best[p.key] = p

    # Per offer object, what the steps after the one that first returned it need not compute
    # again: whether it takes the whole group, and then its proposal (its relaxations hang on
    # the step that first returned it, which stays). A fetch that keeps its offers (the API's
    # index returns one object per offer and search) spares the long ladders most of their
    # work; the object is kept beside its answer, so an id is never another's (#16).
    whole_memo: dict[int, tuple[Offer, Proposal | None]] = {}

    def whole_proposal(o: Offer) -> Proposal | None:
        found = whole_memo.get(id(o))
        if found is not None and found[0] is o:
            return found[1]
        made = None
        if accepts(need, o):
            made = proposal(o, tuple(range(n)), facts.relaxed(o, first_seen[o.key], split=False))
        whole_memo[id(o)] = (o, made)
        return made

    def screen(o: Offer, step: Step) -> bool:
        if not facts.admissible(o, step):
            return False
        reason = None
        if o.key in excluded:
            reason = "refused"
        elif min_km is not None and o.distance_km < min_km:
            reason = "min_distance"
        if reason is None:
            return True
        snapshot = (o.kind, o.id, reason)
        if snapshot not in rejected_seen:
            rejected_seen.add(snapshot)
            rejected[reason] += 1
        return False

    def plan_option(parts: list[Proposal]) -> _Option:
        step = max(index_of.get(p.step, 0) for p in parts)
        return _Option(_option_key(step, parts, need, emergency_first), tuple(parts))

    for index, step in enumerate(steps):
        if len(best) + len(plans) >= limit:
            break
        ordered_split = need.separation_ordered and group and not best and not plans
        if step.split_siblings and (not group or best or plans):
            continue  # siblings stay together whenever any offer takes the whole group
        tried.append(step.code)
        asked = replace(step, split_siblings=True) if ordered_split else step
        offers = _in_offer_order([o for o in fetch(asked) if screen(o, step)])
        for o in offers:
            first_seen.setdefault(o.key, index)

        whole: list[Offer] = []
        for o in offers:
            made = whole_proposal(o)
            if made is not None:
                whole.append(o)
                keep(made)
            elif not asked.split_siblings:
                snapshot = (o.kind, o.id, o.temporality)
                if snapshot not in rejected_seen:
                    rejected_seen.add(snapshot)
                    rejected.update({v.constraint for v in violations(need, o)})
        if asked.split_siblings and not whole:
            mark = not need.separation_ordered

            def relaxed_of(o: Offer, mark: bool = mark) -> tuple[str, ...]:
                return facts.relaxed(o, first_seen[o.key], split=mark)

            parts, _ = split_plan(need, offers, relaxed_of, ordered=need.separation_ordered)
            if parts:
                plans.append(
                    plan_option([_with_stale(p, stale_after_days, steps, rank) for p in parts])
                )

    options = [
        _Option(_option_key(index_of[p.step], [p], need, emergency_first), (p,))
        for p in best.values()
    ]
    options += plans
    options.sort(key=lambda o: o.key)
    if group and not need.separation_ordered and options and limit > 1:
        near = _near_split(
            need, fetch, options[0], steps, facts, screen, stale_after_days, rank, tried
        )
        if near is not None:
            options.insert(1, near)
    options = options[:limit]
    proposals = [
        replace(p, option=i, reasons=p.reasons or score(need, p.offer, p.children)[1])
        for i, option in enumerate(options)
        for p in option.parts
    ]
    covered = {i for p in proposals for i in p.children}
    unmatched = [i for i in range(n) if i not in covered]
    return SearchResult(
        proposals=proposals,
        relaxations=tried[1:],
        tried=tried,
        rejected=dict(sorted(rejected.items())),
        unmatched_children=unmatched,
    )


def _with_stale(
    p: Proposal,
    stale_after_days: float,
    steps: Sequence[Step],
    rank: Callable[[tuple[str, ...]], int],
) -> Proposal:
    """A split part with its step and staleness (``split_plan`` knows neither)."""
    return replace(
        p,
        step=steps[rank(p.relaxed)].code,
        stale=p.offer.declared_age_days > stale_after_days,
    )


def _near_split(
    need: Need,
    fetch: Fetch,
    first: _Option,
    steps: Sequence[Step],
    facts: _Facts,
    screen: Callable[[Offer, Step], bool],
    stale_after_days: float,
    rank: Callable[[tuple[str, ...]], int],
    tried: list[str],
) -> _Option | None:
    """A split of the group within the requested radius, when the best option (taking the
    whole group) lies beyond it: shown right after that option, marked ``split_siblings``
    with the distance between the siblings, so that the placement officer weighs "together,
    far" against "apart, near" (Code civil art. 371-5 and 375-7) instead of never seeing the
    second. Places counted: those of the step the best option ranks at. None when the best
    option is within the radius, or no split within it places every child."""
    best = first.parts[0]
    radius = steps[0].radius_km
    if len(first.parts) != 1 or len(best.children) != len(need.children):
        return None
    if radius is None or best.offer.distance_km <= radius:
        return None
    split_code = facts.split_code
    if split_code is None:
        return None
    at = next(s for s in steps if s.code == best.step)
    step = replace(steps[0], code=split_code, temporalities=at.temporalities, split_siblings=True)
    if split_code not in tried:
        tried.append(split_code)
    offers = _in_offer_order([o for o in fetch(step) if screen(o, step)])
    offers = [o for o in offers if o.distance_km <= radius]

    def relaxed_of(o: Offer) -> tuple[str, ...]:
        return facts.relaxed(o, 0, split=True)

    parts, unmatched = split_plan(need, offers, relaxed_of)
    if not parts or unmatched:
        return None
    parts = [_with_stale(p, stale_after_days, steps, rank) for p in parts]
    return _Option((*first.key[:-1], 1), tuple(parts))


# ---------------------------------------------------------------------------- split

#: How many candidate offers per sub-group the split search considers (best first by
#: relaxations then distance), and how many search nodes it may visit in total.
SPLIT_CANDIDATES_PER_GROUP: Final = 30
SPLIT_NODE_BUDGET: Final = 200_000


def separation_km(a: Offer, b: Offer) -> tuple[float, bool]:
    """How far apart two offers are, and whether that figure is exact.

    Same structure ⇒ 0; both located ⇒ great-circle distance; same commune ⇒ 0;
    otherwise the upper bound ``a.distance_km + b.distance_km`` (via the origin, by the
    triangle inequality): never claim siblings are closer than we know.
    """
    if a.structure_id is not None and a.structure_id == b.structure_id:
        return 0.0, True
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        return haversine_km(a.lat, a.lon, b.lat, b.lon), True
    if a.commune == b.commune:
        return 0.0, True
    return a.distance_km + b.distance_km, False


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
    ordered: bool = False,
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
    ``ordered``: the separation was ordered (the explanation says so).
    """
    n = len(need.children)
    pool: list[tuple[int, int, Offer]] = []  # (accepted-children mask, places, offer)
    for o in _in_offer_order(list(offers)):
        mask = 0
        for i, child in enumerate(need.children):
            if child_accepted(child, o, need):
                mask |= 1 << i
        if mask and o.free_places > 0:
            pool.append((mask, o.free_places, o))

    cand_memo: dict[int, list[_Cand]] = {}

    def cands(mask: int) -> list[_Cand]:
        got = cand_memo.get(mask)
        if got is None:
            size = mask.bit_count()
            got = []
            idx = [i for i in range(n) if mask >> i & 1]
            for acc, places, o in pool:
                if mask & ~acc == 0 and places >= size:
                    relaxed = disability.with_unstated(relaxed_of(o), need, o, idx)
                    got.append(_Cand(o, relaxed, _offer_order(o)))
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
            plan = _plan_proposals(need, chosen, ordered)
            return plan, [i for i in range(n) if i not in taken]
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


def _plan_proposals(
    need: Need, chosen: list[tuple[int, _Cand]], ordered: bool = False
) -> list[Proposal]:
    """Turn a chosen split into proposals, each explaining where the other siblings are."""
    out: list[Proposal] = []
    n = len(need.children)
    for mask, c in chosen:
        idx = tuple(i for i in range(n) if mask >> i & 1)
        value, reasons = score(need, c.offer, idx)
        others = [separation_km(c.offer, p.offer) for m, p in chosen if m != mask]
        apart = max((d for d, _ in others), default=None)
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
        if ordered:
            detail = f"séparation ordonnée ; {detail}"
        reasons = (*reasons, Reason("siblings_split", detail, 0.0))
        out.append(Proposal(c.offer, idx, value, reasons, c.relaxed, siblings_distance_km=apart))
    return out
