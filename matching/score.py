"""Explainable score of an offer for (some children of) a need, in [0, 1].

The score is a weighted sum: each criterion yields a value in [0, 1], multiplied by its
weight; weights sum to 1 and live in ``WEIGHTS`` only. Each term becomes a ``Reason``
(criterion, short French detail, contribution), so a proposal shows exactly what made
its score. Hard constraints are not scored — they are filtered before (see
``constraints``); the score only orders acceptable offers.

Weights are defined once, in ``WEIGHTS``; ``CRITERIA_DOC`` says how each value is
computed and ``weights_markdown()`` renders both for the README. Why each criterion:

- ``distance`` — ties with the family (Code civil art. 375-7: visits);
- ``school`` — the school's distance, a second origin: continuity of schooling, secondary
  to the family (the ladder's geography stays the family's);
- ``siblings_placed`` — near (or with) a brother or sister already placed elsewhere
  (art. 371-5: ties between siblings are kept even apart);
- ``family_type`` — the national strategy promotes family placements (assistants
  familiaux), above all for the youngest; for babies the pouponnière is the specialised
  alternative, and teenagers may do well in collective settings;
- ``freshness`` — a stale declaration or a forecast place is less sure to be there;
- ``needs`` — a unit dedicated to the need (one timing, public and formula) has the project
  and staff for it (the three axes themselves are hard constraints);
- ``disability`` — graded (``matching.disability``): a place built for the child's profile
  beats one taking it with an outside service's support, which beats one that said nothing;
  for a child without a profile it keeps scarce specialised places for the children who
  need them;
- ``disability_service`` — the service that follows the child (IME, SESSAD, DITEP…) keeps
  following them: its commune's distance to the place matters as the school's does;
- ``siblings`` — a proposal taking the whole group beats a part of a split;
- ``department`` — outside the department is possible but costs, and is marked.

Why a hyperbolic distance decay rather than exp(-d/τ): exp flattens to nothing after a
few hundred km, so far offers (overseas, national searches) would all tie and the score
would not be *strictly* decreasing with distance in floating point; 1/(1 + d/τ) keeps a
usable slope up to the antipodes while still halving every τ near the origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import Final

from matching.constraints import violations
from matching.disability import UNSTATED, profile_level
from matching.models import Child, Need, Offer, PlacedSibling, Reason, haversine_km
from matching.vocabulary import (
    DISABILITY_PROFILE_LABELS,
    DISABILITY_SERVICE_LABELS,
    FAMILY_LIKE_CATEGORIES,
    FINESS_CATEGORY_LABELS,
    FORMULA_LABELS,
    INFANT_CATEGORIES,
    MONTHS_SHOWN_BELOW,
    PLACEMENT_SERVICE_CATEGORY,
    PUBLIC_LABELS,
    TEMPORALITY_LABELS,
    TIMING_LABELS,
    DisabilityLevel,
)

#: The only place weights are defined. They sum to 1, so the score is in [0, 1].
WEIGHTS: Final = MappingProxyType(
    {
        "distance": 0.13,
        "school": 0.05,
        "siblings_placed": 0.07,
        "family_type": 0.15,
        "freshness": 0.15,
        "needs": 0.10,
        "disability": 0.10,
        "disability_service": 0.05,
        "siblings": 0.10,
        "department": 0.10,
    }
)

#: Distance at which the distance value halves (km).
DISTANCE_SCALE_KM: Final = 20.0
#: Declaration age at which the freshness value halves (days).
FRESHNESS_SCALE_DAYS: Final = 7.0
#: A place free later is worth less than a place free now.
TEMPORALITY_FACTOR: Final = MappingProxyType(
    {"current": 1.0, "h1": 0.95, "h24": 0.8, "h48": 0.65, "d7": 0.4}
)
#: Value of a specialised place (a profile stated ``specialised``) for a child without such
#: needs.
SPECIALISED_PLACE_FOR_CHILD_WITHOUT_NEEDS: Final = 0.6
#: Value of each level for one of the child's profiles (``with_support``: secured by an MDPH
#: notification or not — ``matching.disability``); a child's value is their profiles' mean.
DISABILITY_LEVEL_VALUE: Final = MappingProxyType(
    {DisabilityLevel.SPECIALISED.value: 1.0, DisabilityLevel.WITH_SUPPORT.value: 0.5, UNSTATED: 0.0}
)
WITH_SUPPORT_MDPH_NOTIFIED: Final = 0.75
#: Family-type value of a collective structure, by age band (years, upper bound excluded).
COLLECTIVE_BY_AGE: Final = ((3, 0.0), (6, 0.2), (13, 0.35), (99, 0.5))
#: Family-type value of an infant structure (pouponnière…) for a child under 3, and of a
#: family-like structure (LVA…) for a child under 3 / from 3 years.
INFANT_STRUCTURE_UNDER_3: Final = 0.9
FAMILY_LIKE_UNDER_3: Final = 0.4
FAMILY_LIKE_FROM_3: Final = 0.7

CONSTRAINTS_DETAIL: Final = "âge, sexe, mode d'accueil, statut et places conformes"

#: Criteria that fall back to the family's distance value when they do not apply (no school
#: given, no sibling placed, or an offer without a known point): their weight then goes back
#: to proximity to the family, so a request without them scores exactly as before (#16).
FAMILY_FALLBACK: Final = frozenset({"school", "siblings_placed"})

#: FINESS categories placed at their commune's point (lieu de vie et d'accueil), like carers:
#: distances from them are shown in whole kilometres (``api.precision``).
COMMUNE_PRECISION_CATEGORIES: Final = frozenset({"462"})

assert math.isclose(math.fsum(WEIGHTS.values()), 1.0), "weights must sum to 1"


def whole_km(offer: Offer) -> bool:
    """A carer (public point = their commune's) or a lieu de vie: distances from it are
    rounded to the kilometre, so that moving an origin never locates more than the commune."""
    return offer.kind == "carer" or offer.category in COMMUNE_PRECISION_CATEGORIES


def school_distance_km(need: Need, offer: Offer) -> float | None:
    """Distance from the school's point to the offer's public point (whole km for a carer or a
    lieu de vie); None without a school or without the offer's point."""
    if need.school is None or offer.lat is None or offer.lon is None:
        return None
    d = haversine_km(need.school.lat, need.school.lon, offer.lat, offer.lon)
    return float(round(d)) if whole_km(offer) else d


def service_distance_km(child: Child, offer: Offer) -> float | None:
    """Distance from the child's disability service (its commune's point) to the offer's
    public point (whole km for a carer or a lieu de vie); None without a service or a point."""
    service = child.disability_service
    if service is None or offer.lat is None or offer.lon is None:
        return None
    d = haversine_km(service.lat, service.lon, offer.lat, offer.lon)
    return float(round(d)) if whole_km(offer) else d


def nearest_placed_sibling(need: Need, offer: Offer) -> tuple[float, PlacedSibling] | None:
    """The already placed sibling nearest to ``offer`` and how far, in whole km: 0 with the
    very unit or carer, or another unit of the same structure. None when no sibling is placed
    or the offer has no point to measure from."""
    best: tuple[float, PlacedSibling] | None = None
    for place in need.siblings_placed:
        if place.key == offer.key or (
            place.structure_id is not None and place.structure_id == offer.structure_id
        ):
            d = 0.0
        elif offer.lat is None or offer.lon is None:
            continue
        else:
            d = float(round(haversine_km(place.lat, place.lon, offer.lat, offer.lon)))
        if best is None or d < best[0]:
            best = (d, place)
    return best


def distance_value(distance_km: float, min_distance_km: float | None = None) -> float:
    """Strictly decreasing, 1 at 0 km, ½ at ``DISTANCE_SCALE_KM``.

    With a minimum distance ordered (``Need.min_distance_km``), proximity to the family no
    longer counts: the value is measured from that minimum instead (1 just beyond it), so
    the nearest place that respects the order still comes first — the child's other ties
    (school, siblings) do not gain from crossing the country. Offers nearer than the
    minimum are never proposed (``relaxation.search``)."""
    if min_distance_km is not None:
        distance_km = max(0.0, distance_km - min_distance_km)
    return 1.0 / (1.0 + distance_km / DISTANCE_SCALE_KM)


def freshness_value(declared_age_days: float, temporality: str) -> float:
    """Older declarations and later temporalities are less reliable, hence worth less."""
    return TEMPORALITY_FACTOR.get(temporality, 0.0) / (
        1.0 + declared_age_days / FRESHNESS_SCALE_DAYS
    )


def family_type_value(child: Child, offer: Offer) -> float:
    """National strategy: family placements first, the more so the younger the child.

    A service de placement familial (FINESS 236) places in its assistants familiaux' homes:
    as an offer it is family placement, valued as a carer (issue #16)."""
    if offer.kind == "carer" or offer.category == PLACEMENT_SERVICE_CATEGORY:
        return 1.0
    if child.age_months < MONTHS_SHOWN_BELOW:
        if offer.category in INFANT_CATEGORIES:
            return INFANT_STRUCTURE_UNDER_3
        if offer.category in FAMILY_LIKE_CATEGORIES:
            return FAMILY_LIKE_UNDER_3
    elif offer.category in FAMILY_LIKE_CATEGORIES:
        return FAMILY_LIKE_FROM_3
    for upper, value in COLLECTIVE_BY_AGE:
        if child.age_months < upper * 12:
            return value
    return COLLECTIVE_BY_AGE[-1][1]


def _combinations(offer: Offer) -> int:
    """How many (timing, public, formula) combinations an offer takes."""
    return len(offer.timings) * len(offer.publics) * len(offer.formulas)


def needs_value(offer: Offer, need: Need) -> float:
    """A unit or carer dedicated to the requested need (one timing, public and formula) has
    the project and staff for it; one taking many combinations is less specialised."""
    if not (
        need.timing in offer.timings
        and need.public in offer.publics
        and need.formula in offer.formulas
    ):
        return 0.0
    n = _combinations(offer)
    return 1.0 if n == 1 else 0.5 + 0.5 / n


def disability_value(child: Child, offer: Offer) -> float:
    """Graded: the mean over the child's profiles of the offer's level's value (a place with
    support is worth more to a child whose MDPH notification secures that support); for a
    child without a profile, keep scarce specialised places for the children who need them."""
    profiles = child.disability_profiles
    if not profiles:
        return SPECIALISED_PLACE_FOR_CHILD_WITHOUT_NEEDS if offer.disability_specialised else 1.0
    total = 0.0
    for p in profiles:
        level = profile_level(offer, p)
        if level == DisabilityLevel.WITH_SUPPORT and child.mdph_notified:
            total += WITH_SUPPORT_MDPH_NOTIFIED
        else:
            total += DISABILITY_LEVEL_VALUE[level]
    return total / len(profiles)


def department_value(need: Need, offer: Offer) -> float:
    if need.origin_department is None:
        return 0.5
    return 1.0 if offer.department == need.origin_department else 0.0


def _indices(need: Need, children: Sequence[int] | None) -> Sequence[int]:
    return range(len(need.children)) if children is None else children


def _values(need: Need, offer: Offer, idx: Sequence[int]) -> tuple[float, ...]:
    """Criterion values in ``WEIGHTS`` order (a plain loop: this is the hot path)."""
    children = need.children
    family = disability = service = 0.0
    family_value = distance_value(offer.distance_km, need.min_distance_km)
    for i in idx:
        child = children[i]
        family += family_type_value(child, offer)
        disability += disability_value(child, offer)
        service_km = None if child.disability_service is None else service_distance_km(child, offer)
        service += family_value if service_km is None else distance_value(service_km)
    n = len(idx)
    school_km = school_distance_km(need, offer) if need.school is not None else None
    placed = nearest_placed_sibling(need, offer) if need.siblings_placed else None
    return (
        family_value,
        family_value if school_km is None else distance_value(school_km),
        family_value if placed is None else distance_value(placed[0]),
        family / n,
        freshness_value(offer.declared_age_days, offer.temporality),
        needs_value(offer, need),
        disability / n,
        service / n,
        n / len(children),
        department_value(need, offer),
    )


_ORDER: Final = tuple(WEIGHTS)
_W: Final = tuple(WEIGHTS[k] for k in _ORDER)


def _total(contributions: Sequence[float]) -> float:
    return min(1.0, max(0.0, math.fsum(contributions)))


def score_value(need: Need, offer: Offer, children: Sequence[int] | None = None) -> float:
    """The score alone, without building explanations (hot path of global assignment).

    Always equal to ``score(need, offer, children)[0]``.
    """
    values = _values(need, offer, _indices(need, children))
    return _total([w * v for w, v in zip(_W, values, strict=True)])  # as in score()


def _km(d: float) -> str:
    text = f"{d:.0f}" if d >= 10 else f"{d:.1f}"
    return text.replace(".", ",") + " km"


def _days(days: float) -> str:
    if days < 1:
        return "aujourd'hui"
    return f"il y a {days:.0f} j"


def score(
    need: Need, offer: Offer, children: Sequence[int] | None = None
) -> tuple[float, tuple[Reason, ...]]:
    """Score and explanation of ``offer`` for the given children of ``need`` (default all).

    Does not check hard constraints (call ``constraints.accepts`` first); the reasons'
    contributions sum to the returned score.
    """
    idx = _indices(need, children)
    values = _values(need, offer, idx)
    contributions = [w * v for w, v in zip(_W, values, strict=True)]
    kids = [need.children[i] for i in idx]
    details = {
        "distance": _distance_detail(need, offer),
        "school": _school_detail(need, offer),
        "siblings_placed": _placed_detail(need, offer),
        "family_type": _family_detail(kids, offer),
        "freshness": (
            f"{TEMPORALITY_LABELS.get(offer.temporality, offer.temporality)}, "
            f"déclaré {_days(offer.declared_age_days)}"
        ),
        "needs": _needs_detail(offer, need),
        "disability": _disability_detail(kids, offer),
        "disability_service": _service_detail(kids, offer),
        "siblings": _siblings_detail(len(kids), len(need.children)),
        "department": _department_detail(need, offer),
    }
    reasons = (
        *(Reason(k, details[k], c) for k, c in zip(_ORDER, contributions, strict=True)),
        Reason("constraints", _constraints_detail(need, offer, idx), 0.0),
    )
    return _total(contributions), reasons


def _constraints_detail(need: Need, offer: Offer, idx: Sequence[int]) -> str:
    """Say the hard constraints are met — or, if a caller scored a bad offer, which fail."""
    failed = violations(need, offer, idx)
    if not failed:
        return CONSTRAINTS_DETAIL
    return "non conformes : " + " ; ".join(v.detail for v in failed)


def _distance_detail(need: Need, offer: Offer) -> str:
    if need.min_distance_km is None:
        return _km(offer.distance_km)
    return f"{_km(offer.distance_km)} (éloignement demandé : au moins {_km(need.min_distance_km)})"


def _school_detail(need: Need, offer: Offer) -> str:
    km = school_distance_km(need, offer)
    if km is not None:
        return f"école à {_km_of(offer, km)}"
    if need.school is None:
        return "école non précisée : compte comme la distance à la famille"
    return "distance à l'école inconnue : compte comme la distance à la famille"


def _placed_detail(need: Need, offer: Offer) -> str:
    found = nearest_placed_sibling(need, offer)
    if found is None:
        if not need.siblings_placed:
            return "aucun frère ou sœur déjà placé : compte comme la distance à la famille"
        return (
            "distance aux frères et sœurs placés inconnue : compte comme la distance à la famille"
        )
    d, place = found
    if place.key == offer.key:
        return "un frère ou une sœur y est déjà accueilli"
    if d == 0 and place.structure_id is not None and place.structure_id == offer.structure_id:
        return "même établissement qu'un frère ou une sœur déjà placé"
    return f"à {d:.0f} km d'un frère ou d'une sœur déjà placé (commune {place.commune})"


def _km_of(offer: Offer, km: float) -> str:
    """Whole kilometres for a carer or a lieu de vie, as their family distance."""
    return f"{km:.0f} km" if whole_km(offer) else _km(km)


def _family_detail(kids: Sequence[Child], offer: Offer) -> str:
    if offer.kind == "carer":
        return "accueil familial (assistant familial)"
    if offer.category == PLACEMENT_SERVICE_CATEGORY:
        return "placement familial (service de placement familial, FINESS 236)"
    label = FINESS_CATEGORY_LABELS.get(offer.category or "", "structure")
    if offer.category in INFANT_CATEGORIES and any(c.age_months < MONTHS_SHOWN_BELOW for c in kids):
        return f"{label}, adaptée aux moins de 3 ans"
    if offer.category in FAMILY_LIKE_CATEGORIES:
        return f"{label}, cadre de type familial"
    return f"{label}, accueil collectif"


def _needs_detail(offer: Offer, need: Need) -> str:
    label = ", ".join(
        (
            TIMING_LABELS.get(need.timing, need.timing),
            PUBLIC_LABELS.get(need.public, need.public).lower(),
            FORMULA_LABELS.get(need.formula, need.formula).lower(),
        )
    )
    n = _combinations(offer)
    if n == 1:
        return f"{label} (dédié)"
    return f"{label} (parmi {n} combinaisons)"


_LEVEL_DETAIL: Final = {
    DisabilityLevel.SPECIALISED.value: "accueil spécialisé",
    DisabilityLevel.WITH_SUPPORT.value: "accueil avec soutien extérieur",
    UNSTATED: "ne s'est pas prononcé (assouplissement)",
}


def _disability_detail(kids: Sequence[Child], offer: Offer) -> str:
    needed = sorted(set().union(*(c.disability_profiles for c in kids)))
    if needed:
        parts = [
            f"{DISABILITY_PROFILE_LABELS.get(p, p)} : {_LEVEL_DETAIL[profile_level(offer, p)]}"
            for p in needed
        ]
        if any(c.mdph_notified for c in kids):
            parts.append("notification MDPH")
        return " ; ".join(parts)
    if offer.disability_specialised:
        return "place spécialisée, à préserver pour les enfants qui en ont besoin"
    return "aucun besoin spécifique"


def _service_detail(kids: Sequence[Child], offer: Offer) -> str:
    parts = []
    for c in kids:
        service = c.disability_service
        if service is None:
            continue
        km = service_distance_km(c, offer)
        kind = DISABILITY_SERVICE_LABELS.get(service.kind, service.kind)
        where = "distance inconnue" if km is None else f"à {_km_of(offer, km)}"
        parts.append(f"{kind} (commune {service.commune}) {where}")
    if not parts:
        return "aucun service du handicap précisé : compte comme la distance à la famille"
    return " ; ".join(parts)


def _siblings_detail(taken: int, total: int) -> str:
    if total == 1:
        return "enfant seul"
    if taken == total:
        return f"fratrie de {total} accueillie ensemble"
    return f"fratrie répartie : {taken} enfant(s) sur {total} ici"


def _department_detail(need: Need, offer: Offer) -> str:
    if need.origin_department is None:
        return f"département {offer.department} (origine non précisée)"
    if offer.department == need.origin_department:
        return f"dans le département d'origine ({offer.department})"
    return f"hors département d'origine ({offer.department})"


#: One line per criterion for the README table (same order as ``WEIGHTS``).
CRITERIA_DOC: Final = MappingProxyType(
    {
        "distance": (
            "1 / (1 + d / 20 km): 1 at the door, ½ at 20 km, ~0.09 at 200 km; with a minimum"
            " distance ordered, d counts from that minimum"
        ),
        "school": (
            "the same decay on the distance from the school's commune to the offer's public point"
            " (whole km for carers and lieux de vie); no school given: the family distance's value"
        ),
        "siblings_placed": (
            "1 with the very unit or carer (or structure) of a sibling already placed, else the"
            " same decay on the whole km to the nearest one; none placed: the family distance's"
            " value"
        ),
        "family_type": (
            "assistant familial or service de placement familial (236) 1; under 3: "
            "pouponnière / centre parents-enfants 0.9, "
            "LVA / village d'enfants 0.4, other structures 0; from 3: LVA / village 0.7, "
            "other structures 0.2 (3–5), 0.35 (6–12), 0.5 (13+)"
        ),
        "freshness": (
            "now 1, 1 h 0.95, 24 h 0.8, 48 h 0.65, 7 days 0.4 — × 1 / (1 + age / 7 days)"
        ),
        "needs": (
            "1 if dedicated to the requested need (one timing, public and formula), else"
            " ½ + ½ / combinations offered (timings × publics × formulas)"
        ),
        "disability": (
            "mean over the child's profiles: specialised 1, with support 0.5 (0.75 with an MDPH"
            " notification), unstated 0; a child without a profile: 1, or 0.6 on a place"
            " specialised for some profile"
        ),
        "disability_service": (
            "the same decay on the distance from the commune of the child's disability service"
            " (IME, SESSAD, DITEP…) to the offer's public point (whole km for carers and lieux"
            " de vie); no service: the family distance's value"
        ),
        "siblings": "share of the group's children taken (1 together)",
        "department": "1 in the origin department, 0 outside, ½ if unknown",
    }
)


def weights_markdown() -> str:
    """The weights table, for the README."""
    lines = ["| criterion | weight | value in [0, 1] |", "| --- | ---: | --- |"]
    lines += [f"| `{k}` | {w:.2f} | {CRITERIA_DOC[k]} |" for k, w in WEIGHTS.items()]
    return "\n".join(lines)
