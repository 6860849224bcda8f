"""Hard constraints: what an offer must satisfy, whatever the score or the relaxation.

These are the domain's non-negotiable rules (age band, sex, care mode, carer active — not
on leave —, carer's agrément valid, enough free places for the group). They are never
relaxed: the relaxation ladder only widens *where* and *when* we look, and splits a sibling
group as a last resort. Disability profiles are graded, not a hard constraint (issue #16):
an offer silent on a child's profile takes the child only as a stated relaxation
(``matching.disability``). Each failure is reported as a ``Violation`` so that an empty answer can
say why, and so tests can assert that no proposal ever breaks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matching.models import Child, Need, Offer
from matching.vocabulary import CARE_MODE_LABELS

# Stable constraint codes (used as keys of SearchResult.rejected).
AGE = "age"
SEX = "sex"
AVAILABLE_GENDER = "available_gender"
CARE_MODE = "care_mode"
STATUS = "status"
AGREMENT = "agrement"
FREE_PLACES = "free_places"

CONSTRAINTS: tuple[str, ...] = (
    AGE,
    SEX,
    AVAILABLE_GENDER,
    CARE_MODE,
    STATUS,
    AGREMENT,
    FREE_PLACES,
)
_PER_OFFER = frozenset({STATUS, AGREMENT})
"""Constraints about the offer itself, reported once (``child`` None), not per child."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed hard constraint; ``child`` is the index in the need, ``None`` for the group."""

    constraint: str
    child: int | None
    detail: str


def child_violations(
    child: Child, offer: Offer, care_mode: str, index: int | None = None
) -> list[Violation]:
    """Constraints that concern one child alone (everything but the number of places)."""
    out: list[Violation] = []
    if not offer.age_min <= child.age <= offer.age_max:
        out.append(
            Violation(
                AGE,
                index,
                f"{child.age} ans hors tranche {offer.age_min}–{offer.age_max} ans",
            )
        )
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
    if care_mode not in offer.care_modes:
        label = CARE_MODE_LABELS.get(care_mode, care_mode)
        out.append(Violation(CARE_MODE, index, f"mode non proposé : {label}"))
    if offer.status != "active":
        out.append(Violation(STATUS, index, f"statut {offer.status}, pas en activité"))
    if not offer.agrement_valid:
        out.append(Violation(AGREMENT, index, "agrément non valide (suspendu, retiré ou expiré)"))
    return out


def child_accepted(child: Child, offer: Offer, care_mode: str) -> bool:
    """Fast boolean form of :func:`child_violations` (hot path of searches)."""
    return (
        offer.age_min <= child.age <= offer.age_max
        and child.sex in offer.sexes
        and (offer.available_gender == "any" or offer.available_gender == child.sex)
        and care_mode in offer.care_modes
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
    out: list[Violation] = []
    for i in indices:
        out.extend(child_violations(need.children[i], offer, need.care_mode, i))
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
    return all(child_accepted(need.children[i], offer, need.care_mode) for i in indices)


def failed_constraints(
    need: Need, offer: Offer, children: Sequence[int] | None = None
) -> list[str]:
    """Codes of the failed constraints (sorted, unique): the short form for tests and stats."""
    return sorted({v.constraint for v in violations(need, offer, children)})
