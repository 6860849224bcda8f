"""The units of each kind of establishment in the synthetic national dataset, as a table.

Two tables. ``UNIT_KINDS``: each kind of unit, what it accepts (ages, sexes, care modes,
disability profiles) and how many places it installs. ``UNIT_MIXES``: for each FINESS
category, how many units an establishment has and of which kinds; none at all for the
categories of ``NO_UNITS`` (a service de placement familial's places are its carers').
``seed.national`` draws from these rows with its seeded stream; this module only
describes, it never draws.

How a row is read: a field with several options is drawn (``ages`` uniformly, weighted
pairs ``(value, weight)`` with ``Random.choices``), a field with one option is taken as is
and draws nothing; a probability of 0 draws nothing either.

Why each kind names the order of its draws: the same seed must give the same rows, ids
included, so values are drawn in the order the seed has always drawn them. Most kinds draw
name, ages, sexes, modes, profiles, places (``DRAW_ORDER``); MECS groups draw their places
first, experimental units their modes before their sexes. Changing an order, a weight or
the order of options changes every row drawn after it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, Literal

from matching.vocabulary import PLACEMENT_SERVICE_CATEGORY

Step = Literal["name", "ages", "sexes", "modes", "profiles", "places"]
Ages = tuple[int, int]

#: The usual order of a unit's draws (see the module docstring for why it is data).
DRAW_ORDER: Final[tuple[Step, ...]] = ("name", "ages", "sexes", "modes", "profiles", "places")
_PLACES_FIRST: Final[tuple[Step, ...]] = ("places", "name", "ages", "sexes", "modes", "profiles")
_MODES_BEFORE_SEXES: Final[tuple[Step, ...]] = (
    "name",
    "ages",
    "modes",
    "sexes",
    "profiles",
    "places",
)

#: Positions for ``Chance``: the first unit, the last one (for ``add``: after the last).
FIRST: Final = 0
LAST: Final = -1


@dataclass(frozen=True, slots=True)
class UnitKind:
    """One kind of unit: what it accepts, how many places, in which order it is drawn.

    ``name`` is a template: ``{name}`` is the unit's own pick among six drawn unit names,
    ``{number}`` its position from 1, ``{small}`` a drawn small name (as pouponnières have).
    ``single_sex`` is the probability that the unit takes one sex only (then boys with
    ``male_share``); at 0 it takes both and nothing is drawn. Each of ``extra_modes`` is
    added to ``modes`` with its probability. ``profiles`` is the probability of one or two
    disability profiles. With ``jeune_majeur_to_21`` a unit drawn up to 21 also takes
    jeunes majeurs.
    """

    name: str
    ages: tuple[Ages, ...]
    places: tuple[int, int]
    modes: tuple[str, ...]
    profiles: float
    extra_modes: tuple[tuple[str, float], ...] = ()
    single_sex: float = 0.0
    male_share: float = 0.6
    jeune_majeur_to_21: bool = False
    order: tuple[Step, ...] = DRAW_ORDER


@dataclass(frozen=True, slots=True)
class Chance:
    """With ``probability``, a unit of ``kind`` at ``position`` (``FIRST`` or ``LAST``)."""

    probability: float
    position: int
    kind: str


@dataclass(frozen=True, slots=True)
class UnitMix:
    """The units of one category of establishment.

    Either a weighted number of units (``counts``), each of a weighted kind (``kinds``), or
    a fixed ``layout`` of kinds, replaced with probability ``instead[0]`` by ``instead[1]``.
    Then each of ``replace`` turns the unit at its position into its kind, and each of
    ``add`` inserts one, in that order. ``first_name`` names the first unit instead of its
    kind's template.
    """

    counts: tuple[tuple[int, int], ...] = ((1, 1),)
    kinds: tuple[tuple[str, int], ...] = ()
    layout: tuple[str, ...] = ()
    instead: tuple[float, tuple[str, ...]] | None = None
    replace: tuple[Chance, ...] = ()
    add: tuple[Chance, ...] = ()
    first_name: str | None = None


def _foyer_band(low: int, high: int) -> UnitKind:
    """A foyer de l'enfance's emergency unit for one age band (the bands differ in ages only)."""
    return dataclasses.replace(_FOYER_URGENCE, ages=((low, high),))


_DURABLE = ("durable",)
_MECS_MODES = (("sequentiel", 0.15), ("urgence", 0.05))
_FOYER_URGENCE = UnitKind(
    name="Accueil d'urgence {name}",
    ages=((0, 18),),
    places=(6, 14),
    modes=("urgence",),
    extra_modes=(("durable", 0.4),),
    single_sex=0.05,
    male_share=0.85,
    profiles=0.13,
)

UNIT_KINDS: Final[dict[str, UnitKind]] = {
    # 462 lieu de vie et d'accueil: one small family-like unit.
    "lieu de vie": UnitKind(
        name="Lieu de vie",
        ages=((6, 18), (10, 18), (12, 18), (4, 16), (13, 21), (8, 18)),
        places=(3, 7),
        modes=_DURABLE,
        extra_modes=(("sequentiel", 0.3), ("urgence", 0.05)),
        single_sex=0.1,
        profiles=0.3,
    ),
    # 177 MECS: groups of children or adolescents, siblings, emergency; MNA and jeunes majeurs.
    "mecs enfants": UnitKind(
        name="Groupe {name}",
        ages=((3, 12), (6, 12), (4, 13), (6, 14)),
        places=(6, 12),
        modes=_DURABLE,
        extra_modes=_MECS_MODES,
        profiles=0.13,
        order=_PLACES_FIRST,
    ),
    "mecs ados": UnitKind(
        name="Groupe {name}",
        ages=((12, 18), (13, 18), (11, 16), (14, 18), (12, 17)),
        places=(6, 12),
        modes=_DURABLE,
        extra_modes=_MECS_MODES,
        single_sex=0.2,
        profiles=0.13,
        order=_PLACES_FIRST,
    ),
    "mecs fratrie": UnitKind(
        name="Groupe {name}",
        ages=((3, 18), (0, 18), (4, 16)),
        places=(6, 12),
        modes=_DURABLE,
        extra_modes=_MECS_MODES,
        profiles=0.13,
        order=_PLACES_FIRST,
    ),
    "mecs urgence": UnitKind(
        name="Groupe {name}",
        ages=((6, 18), (12, 18), (3, 12)),
        places=(6, 12),
        modes=("urgence",),
        extra_modes=_MECS_MODES,
        single_sex=0.1,
        profiles=0.13,
        order=_PLACES_FIRST,
    ),
    "mecs mna": UnitKind(
        name="Service MNA",
        ages=((15, 18),),
        places=(6, 12),
        modes=("mna", "durable"),
        single_sex=0.6,
        male_share=0.85,
        profiles=0.05,
        order=_PLACES_FIRST,
    ),
    "mecs jeunes majeurs": UnitKind(
        name="Appartements jeunes majeurs",
        ages=((18, 21),),
        places=(6, 12),
        modes=("jeune_majeur",),
        single_sex=0.1,
        profiles=0.13,
        order=_PLACES_FIRST,
    ),
    # 175 foyer de l'enfance: emergency reception for every age, by age band.
    "foyer 0-3": _foyer_band(0, 3),
    "foyer 0-6": _foyer_band(0, 6),
    "foyer 6-12": _foyer_band(6, 12),
    "foyer 12-18": _foyer_band(12, 18),
    "foyer 3-12": _foyer_band(3, 12),
    "foyer 13-18": _foyer_band(13, 18),
    "foyer mna": UnitKind(
        name="Mise à l'abri MNA",
        ages=((15, 18),),
        places=(6, 14),
        modes=("urgence", "mna"),
        single_sex=0.5,
        male_share=0.85,
        profiles=0.13,
    ),
    # 172 pouponnière: under 3.
    "pouponnière": UnitKind(
        name="Section {name}",
        ages=((0, 3),),
        places=(6, 12),
        modes=_DURABLE,
        extra_modes=(("urgence", 0.6),),
        profiles=0.08,
    ),
    # 176 village d'enfants: houses for sibling groups.
    "maison": UnitKind(
        name="Maison {number}",
        ages=((3, 18), (0, 18), (2, 16)),
        places=(4, 8),
        modes=_DURABLE,
        profiles=0.08,
    ),
    # 166 centre parental: a parent with a child under 3.
    "parent-enfant": UnitKind(
        name="Studios {name}",
        ages=((0, 3),),
        places=(6, 12),
        modes=("mere_enfant",),
        extra_modes=(("urgence", 0.3),),
        profiles=0.05,
    ),
    # 238 centre d'accueil familial spécialisé: always with a disability profile.
    "accueil spécialisé": UnitKind(
        name="Accueil spécialisé {name}",
        ages=((3, 18), (6, 21), (0, 18)),
        places=(6, 15),
        modes=_DURABLE,
        extra_modes=(("sequentiel", 0.5),),
        profiles=1.0,
    ),
    # 241 PJJ: adolescents, often boys only.
    "unité éducative": UnitKind(
        name="Unité éducative {name}",
        ages=((13, 18),),
        places=(6, 12),
        modes=_DURABLE,
        extra_modes=(("urgence", 0.5),),
        single_sex=0.5,
        male_share=0.8,
        profiles=0.1,
    ),
    # 378 établissement expérimental: varied, often for complex situations.
    "dispositif": UnitKind(
        name="Dispositif {name}",
        ages=((12, 18), (14, 21), (6, 16), (16, 21)),
        places=(4, 10),
        modes=_DURABLE,
        extra_modes=(("sequentiel", 0.4), ("urgence", 0.2)),
        single_sex=0.15,
        profiles=0.45,
        jeune_majeur_to_21=True,
        order=_MODES_BEFORE_SEXES,
    ),
}

_ONE_TO_THREE = ((1, 50), (2, 35), (3, 15))

#: Categories whose establishments have no unit at all: a service de placement familial
#: (236) places children with the assistants familiaux it employs, so its capacity is their
#: agréments, drawn by ``seed.carers``, never collective places at its office.
NO_UNITS: Final[frozenset[str]] = frozenset({PLACEMENT_SERVICE_CATEGORY})

UNIT_MIXES: Final[dict[str, UnitMix]] = {
    "462": UnitMix(kinds=(("lieu de vie", 1),)),
    "177": UnitMix(
        counts=((2, 25), (3, 30), (4, 22), (5, 15), (6, 8)),
        kinds=(("mecs enfants", 30), ("mecs ados", 50), ("mecs fratrie", 10), ("mecs urgence", 10)),
        replace=(Chance(0.2, LAST, "mecs mna"), Chance(0.2, FIRST, "mecs jeunes majeurs")),
    ),
    "175": UnitMix(
        layout=("foyer 3-12", "foyer 13-18"),
        instead=(0.3, ("foyer 0-6", "foyer 6-12", "foyer 12-18")),
        add=(Chance(0.3, FIRST, "foyer 0-3"), Chance(0.3, LAST, "foyer mna")),
    ),
    "172": UnitMix(
        counts=((1, 30), (2, 35), (3, 25), (4, 10)),
        kinds=(("pouponnière", 1),),
        first_name="Section {small}",
    ),
    "176": UnitMix(counts=((2, 15), (3, 25), (4, 30), (5, 20), (6, 10)), kinds=(("maison", 1),)),
    "166": UnitMix(
        counts=_ONE_TO_THREE, kinds=(("parent-enfant", 1),), first_name="Accueil mère-enfant"
    ),
    "238": UnitMix(counts=((1, 60), (2, 40)), kinds=(("accueil spécialisé", 1),)),
    "241": UnitMix(counts=((1, 40), (2, 40), (3, 20)), kinds=(("unité éducative", 1),)),
    "378": UnitMix(counts=_ONE_TO_THREE, kinds=(("dispositif", 1),)),
}
