"""Hard constraints: what an offer must satisfy, whatever the score or the relaxation.

These are the domain's non-negotiable rules (age band in months, sex, timing, public,
formula, carer active — not on leave —, carer's agrément valid, enough free places for the
group). They are never relaxed: the relaxation ladder only widens *where* and *when* we
look, and splits a sibling group as a last resort. Disability profiles are graded, not a
hard constraint (issue #16): an offer silent on a child's profile takes the child only as
a stated relaxation (``matching.disability``). Each failure is reported as a
``Violation`` so that an empty answer can say why, and so tests can assert that no
proposal ever breaks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matching.models import Child, Need, Offer
from matching.vocabulary import (
    FORMULA_LABELS,
    PUBLIC_LABELS,
    TIMING_LABELS,
    age_label,
)

# Stable constraint codes (used as keys of SearchResult.rejected).
AGE = "age"
SEX = "sex"
AVAILABLE_GENDER = "available_gender"
TIMING = "timing"
PUBLIC = "public"
FORMULA = "formula"
STATUS = "status"
AGREMENT = "agrement"
FREE_PLACES = "free_places"

CONSTRAINTS: tuple[str, ...] = (
    AGE,
    SEX,
    AVAILABLE_GENDER,
    TIMING,
    PUBLIC,
    FORMULA,
    STATUS,
    AGREMENT,
    FREE_PLACES,
)
_PER_OFFER = frozenset({STATUS, AGREMENT, TIMING, PUBLIC, FORMULA})
"""Constraints about the offer itself or the need's axes, reported once (``child`` None),
not per child."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed hard constraint; ``child`` is the index in the need, ``None`` for the group."""

    constraint: str
    child: int | None
    detail: str


def band_label(age_min_months: int, age_max_months: int) -> str:
    """An offer's age band as said aloud: "0–35 mois", "3–17 ans", "24 mois – 6 ans" (the
    upper bound in years is the last whole year: 6 years = up to 6 years 11 months)."""
    low, high = age_label(age_min_months), age_label(age_max_months)
    if low.endswith(" mois") and high.endswith(" mois"):
        return f"{age_min_months}–{age_max_months} mois"
    if low.endswith(" ans") and high.endswith(" ans"):
        return f"{age_min_months // 12}–{age_max_months // 12} ans"
    return f"{low} – {high}"


def need_violations(need: Need, offer: Offer) -> list[Violation]:
    """The three axes of the need (the same for every child of the group)."""
    out: list[Violation] = []
    if need.timing not in offer.timings:
        label = TIMING_LABELS.get(need.timing, need.timing)
        out.append(Violation(TIMING, None, f"non proposé : {label}"))
    if need.public not in offer.publics:
        label = PUBLIC_LABELS.get(need.public, need.public)
        out.append(Violation(PUBLIC, None, f"public non accueilli : {label}"))
    if need.formula not in offer.formulas:
        label = FORMULA_LABELS.get(need.formula, need.formula)
        out.append(Violation(FORMULA, None, f"formule non proposée : {label}"))
    return out


def need_accepted(need: Need, offer: Offer) -> bool:
    """Fast boolean form of :func:`need_violations`."""
    return (
        need.timing in offer.timings
        and need.public in offer.publics
        and need.formula in offer.formulas
    )


def child_violations(child: Child, offer: Offer, index: int | None = None) -> list[Violation]:
    """Constraints that concern one child alone (everything but the number of places and
    the need's axes). An expected child (0 months) has no sex to check."""
    out: list[Violation] = []
    if not offer.age_min_months <= child.age_months <= offer.age_max_months:
        age = "enfant attendu (0 mois)" if child.expected else age_label(child.age_months)
        band = band_label(offer.age_min_months, offer.age_max_months)
        out.append(Violation(AGE, index, f"{age} hors tranche {band}"))
    if not child.expected:
        if child.sex not in offer.sexes:
            out.append(Violation(SEX, index, f"sexe {child.sex} non accueilli"))
        if offer.available_gender not in ("any", child.sex):
            out.append(
                Violation(
                    AVAILABLE_GENDER,
                    index,
                    f"places libres réservées au sexe {offer.available_gender}",
                )
            )
    if offer.status != "active":
        out.append(Violation(STATUS, index, f"statut {offer.status}, pas en activité"))
    if not offer.agrement_valid:
        out.append(Violation(AGREMENT, index, "agrément non valide (suspendu, retiré ou expiré)"))
    return out


def child_accepted(child: Child, offer: Offer, need: Need) -> bool:
    """Fast boolean form of :func:`child_violations` and :func:`need_violations` (hot path of
    searches): ``offer`` takes this child of ``need``."""
    return (
        offer.age_min_months <= child.age_months <= offer.age_max_months
        and (
            child.expected
            or (
                child.sex in offer.sexes
                and (offer.available_gender == "any" or offer.available_gender == child.sex)
            )
        )
        and need_accepted(need, offer)
        and offer.status == "active"
        and offer.agrement_valid
    )


def violations(need: Need, offer: Offer, children: Sequence[int] | None = None) -> list[Violation]:
    """Every hard constraint ``offer`` fails for the given children of ``need``.

    ``children`` are indices into ``need.children`` (default: the whole group). The
    offer must accept each child and have a free place for each of them: a sibling
    group is placed together or (after an explicit split) in sub-groups.
    """
    indices = range(len(need.children)) if children is None else children
    out: list[Violation] = need_violations(need, offer) if len(indices) else []
    for i in indices:
        out.extend(child_violations(need.children[i], offer, i))
    wanted = len(indices)
    if offer.free_places < wanted:
        out.append(
            Violation(
                FREE_PLACES,
                None,
                f"{offer.free_places} place(s) libre(s) pour {wanted} enfant(s)",
            )
        )
    # One violation per (constraint, child) is enough; status and agrément are per offer.
    seen: set[tuple[str, int | None]] = set()
    unique: list[Violation] = []
    for v in out:
        per_offer = v.constraint in _PER_OFFER
        k = (v.constraint, None if per_offer else v.child)
        if k not in seen:
            seen.add(k)
            unique.append(Violation(v.constraint, None, v.detail) if per_offer else v)
    return unique


def accepts(need: Need, offer: Offer, children: Sequence[int] | None = None) -> bool:
    """True when ``offer`` can take the given children of ``need`` (default: all) together."""
    indices = range(len(need.children)) if children is None else children
    if offer.free_places < len(indices):
        return False
    return all(child_accepted(need.children[i], offer, need) for i in indices)


def failed_constraints(
    need: Need, offer: Offer, children: Sequence[int] | None = None
) -> list[str]:
    """Codes of the failed constraints (sorted, unique): the short form for tests and stats."""
    return sorted({v.constraint for v in violations(need, offer, children)})
