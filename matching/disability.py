"""Disability, graded (issue #16, deliverable 5): what an offer says of a child's profiles.

An offer states per profile a level (``DisabilityLevel``): ``specialised`` (its project and
staff are built for it) or ``with_support`` (it takes the child with an outside service's
support); on the other profiles it has said nothing (``unstated``). A child with a profile
is admissible:

- on an offer with a word on each of its profiles — the order within a ladder step is
  specialised, then with support (``rank``);
- on an offer silent on one of them only as a *stated relaxation*: the proposal lists
  ``disability_unstated`` in ``relaxed`` (``DISABILITY_UNSTATED_LABEL`` says it in French)
  and ranks, at its ladder step, after every offer with a word (``relaxation._option_key``).

Before, a unit that had declared no profile never took a child with any, even the most
frequent (troubles psychiques et du comportement): most children with a profile found
nothing near. An unstated offer is not a refusal — the unit or carer was never asked —
so the placement officer sees it, last and marked, and calls to ask.

The MDPH notification (``Child.mdph_notified``, CASF L241-6) changes the score only
(``score.disability_value``): a notified child has the CDAPH's orientation to a
medico-social service (IME, SESSAD, DITEP, IEM: CASF L312-1 I 2°), so a place that takes
the child with an outside service's support can rely on it; without a notification that
support is not secured, and a place with support is worth less. It does not forbid an
unstated offer: the relaxation is stated either way, and the notified service's support is
what an unstated offer would need too.

A level is the worst over the profiles concerned: a child with two profiles, one
specialised and one unstated, is unstated there. Children without a profile have no level
(rank 0): for them the score keeps specialised places for the children who need them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from matching.models import Child, Need, Offer
from matching.vocabulary import DisabilityLevel

UNSTATED: Final = "unstated"
"""The level of a profile the offer has said nothing about (never stored)."""

DISABILITY_UNSTATED: Final = "disability_unstated"
"""The relaxation code a proposal lists when its offer is silent on a child's profile."""

DISABILITY_UNSTATED_LABEL: Final = (
    "Lieu ne s'étant pas prononcé sur le profil de handicap de l'enfant (à vérifier)"
)

#: Order within a ladder step (smallest first): specialised < with support < unstated.
LEVEL_RANK: Final = {
    DisabilityLevel.SPECIALISED.value: 0,
    DisabilityLevel.WITH_SUPPORT.value: 1,
    UNSTATED: 2,
}


def profile_level(offer: Offer, profile: str) -> str:
    """``specialised``, ``with_support`` or ``unstated``: what ``offer`` says of ``profile``."""
    if profile in offer.disability_specialised:
        return DisabilityLevel.SPECIALISED.value
    if profile in offer.disability_supported:
        return DisabilityLevel.WITH_SUPPORT.value
    return UNSTATED


def child_level(child: Child, offer: Offer) -> str | None:
    """The worst level of the child's profiles on ``offer``; None for a child without one."""
    if not child.disability_profiles:
        return None
    return worst(profile_level(offer, p) for p in child.disability_profiles)


def worst(levels: Iterable[str]) -> str:
    """The worst of some levels (``LEVEL_RANK``); a non-empty iterable."""
    return max(levels, key=lambda level: LEVEL_RANK[level])


def rank(need: Need, offer: Offer, children: Iterable[int] | None = None) -> int:
    """``LEVEL_RANK`` of the worst level over the given children (0 without profiles)."""
    indices = range(len(need.children)) if children is None else children
    worst = 0
    for i in indices:
        level = child_level(need.children[i], offer)
        if level is not None:
            worst = max(worst, LEVEL_RANK[level])
    return worst


def unstated(need: Need, offer: Offer, children: Sequence[int] | None = None) -> bool:
    """Whether ``offer`` is silent on a profile of one of the given children: it can take
    them only with the ``disability_unstated`` relaxation."""
    return rank(need, offer, children) == LEVEL_RANK[UNSTATED]


def with_unstated(
    relaxed: tuple[str, ...], need: Need, offer: Offer, children: Sequence[int] | None = None
) -> tuple[str, ...]:
    """``relaxed`` (ladder codes, in ladder order) with ``disability_unstated`` appended when
    the offer needs it for these children."""
    return (*relaxed, DISABILITY_UNSTATED) if unstated(need, offer, children) else relaxed
