"""The default unit an establishment imported from FINESS gets from its category.

The FINESS extract says what an establishment *is* (its category) but not how it is
organised: no units, no ages, no capacity. Without a unit an establishment could never
declare a place, so the import gives it (unless it is a placement service, below) one
unit describing what its category usually accepts, with 0 installed places and no
capacity snapshot (so it is never proposed by a search until it declares). It stays
until the establishment describes its own units through the API: the import creates it
only for a structure that has no unit at all, and keeps it in step with the category (a
later extract may recategorise the establishment) without ever touching its declared
capacity.

Ages in months (a band "6–18 ans" is 72–227 months: until the eve of the 19th birthday);
timing / public / formula in the needs vocabulary (docs/domain.md).

| category | default unit | ages (months) | timings | publics | formula |
| --- | --- | --- | --- | --- | --- |
| 166 centre parental | Accueil parent-enfant | 0–35 | durable | mineur | parent_enfant |
| 172 pouponnière | Pouponnière | 0–35 | durable, urgence | mineur | enfant |
| 175 foyer de l'enfance | Accueil d'urgence | 0–227 | urgence | mineur | enfant |
| 176 village d'enfants | Maisons (fratries) | 0–227 | durable | mineur | enfant |
| 177 MECS | Hébergement | 72–227 | durable | mineur | enfant |
| 236 placement familial | *none* (its places are its carers') | | | | |
| 238 accueil fam. spécialisé | Accueil familial spécialisé | 0–227 | durable | mineur | enfant |
| 241 établissement de placement PJJ | Hébergement éducatif | 156–227 | durable | mineur | enfant |
| 378 expérimental | Dispositif expérimental | 144–263 | durable | mineur | enfant |
| 462 lieu de vie et d'accueil | Lieu de vie | 72–227 | durable | mineur | enfant |

The pouponnière and the centre parental take children under 3 only (décret n° 74-58 of
15 January 1974; CASF L222-5 4° and L222-5-3): 0–35 months.

A service de placement familial (236) gets no default unit: it places children with the
assistants familiaux it employs, so its capacity is the sum of its carers' agréments, never
collective places at its office (a unit there would count them twice and be proposed by a
search at the office's address). A structure recategorised to 236 loses its default unit
unless it was declared on.

Both sexes everywhere (the extract does not say), no disability profile (a profile is a
promise the establishment makes itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from api.codes import PDE_CATEGORIES
from matching.vocabulary import PLACEMENT_SERVICE_CATEGORY


@dataclass(frozen=True, slots=True)
class DefaultUnit:
    """What an imported establishment's single unit accepts until it says otherwise."""

    name: str
    age_min_months: int
    age_max_months: int
    timings: tuple[str, ...]
    publics: tuple[str, ...] = ("mineur",)
    formulas: tuple[str, ...] = ("enfant",)
    sexes: tuple[str, ...] = ("F", "M")


DEFAULT_UNITS: dict[str, DefaultUnit] = {
    "166": DefaultUnit("Accueil parent-enfant", 0, 35, ("durable",), formulas=("parent_enfant",)),
    "172": DefaultUnit("Pouponnière", 0, 35, ("durable", "urgence")),
    "175": DefaultUnit("Accueil d'urgence", 0, 227, ("urgence",)),
    "176": DefaultUnit("Maisons (fratries)", 0, 227, ("durable",)),
    "177": DefaultUnit("Hébergement", 72, 227, ("durable",)),
    "238": DefaultUnit("Accueil familial spécialisé", 0, 227, ("durable",)),
    "241": DefaultUnit("Hébergement éducatif", 156, 227, ("durable",)),
    "378": DefaultUnit("Dispositif expérimental", 144, 263, ("durable",)),
    "462": DefaultUnit("Lieu de vie", 72, 227, ("durable",)),
}

#: Categories whose establishments get no default unit (see the module docstring).
NO_DEFAULT_UNIT: frozenset[str] = frozenset({PLACEMENT_SERVICE_CATEGORY})

assert set(DEFAULT_UNITS) == set(PDE_CATEGORIES) - NO_DEFAULT_UNIT, (
    "one default unit per PDE category but those of NO_DEFAULT_UNIT"
)
