"""Stable codes of the needs vocabulary, with their French labels.

The codes are part of the public contract (API payloads, database values, FHIR mapping
later), so they never change; labels are UI text and may be reworded freely. Every enum
is a ``StrEnum`` so that a member *is* its code (``CareMode.URGENCE == "urgence"``) and
can be stored or serialised without conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Timing(StrEnum):
    """When and for how long the child is taken in (axis 1 of a need)."""

    URGENCE = "urgence"
    DURABLE = "durable"
    SEQUENTIEL = "sequentiel"


class Public(StrEnum):
    """Who is taken in (axis 2): a minor, an unaccompanied minor (MNA, CASF L221-2-2), a
    young adult of 18 to 21 (contrat jeune majeur, CASF L222-5 1° and L112-3)."""

    MINEUR = "mineur"
    MNA = "mna"
    JEUNE_MAJEUR = "jeune_majeur"


class Formula(StrEnum):
    """How (axis 3): the child alone, or with a parent (mother or father — centre parental,
    CASF L222-5 4° and L222-5-3; a parent expecting a child may be taken in)."""

    ENFANT = "enfant"
    PARENT_ENFANT = "parent_enfant"


class CareMode(StrEnum):
    """Deprecated (one version): the single "mode d'accueil" of old, which mixed timing,
    public and formula. Still accepted by the API and mapped by :data:`LEGACY_CARE_MODE`.
    """

    URGENCE = "urgence"
    DURABLE = "durable"
    SEQUENTIEL = "sequentiel"
    MERE_ENFANT = "mere_enfant"
    MNA = "mna"
    JEUNE_MAJEUR = "jeune_majeur"


class DisabilityProfile(StrEnum):
    """Disability profile stated by an MDPH notification, or a chronic care need."""

    TSA = "tsa"
    DEFICIENCE_INTELLECTUELLE = "deficience_intellectuelle"
    TROUBLES_PSYCHIQUES_COMPORTEMENT = "troubles_psychiques_comportement"
    DEFICIENCE_MOTRICE = "deficience_motrice"
    DEFICIENCE_SENSORIELLE = "deficience_sensorielle"
    POLYHANDICAP = "polyhandicap"
    SOINS_TECHNIQUES = "soins_techniques"


class DisabilityLevel(StrEnum):
    """What an offer states about one disability profile (issue #16, deliverable 5).

    ``specialised``: its project and staff are built for the profile (an accueil familial
    spécialisé, a MECS with a unit for children with autism…); ``with_support``: it takes
    a child with the profile with the support of an outside service (SESSAD, CMP…). No word
    on a profile is a third state, never stored: the offer takes such a child only as a
    stated relaxation (``matching.disability``)."""

    SPECIALISED = "specialised"
    WITH_SUPPORT = "with_support"


class DisabilityServiceKind(StrEnum):
    """The medico-social or health service that follows a child with a disability.

    IME, SESSAD, DITEP, IEM: établissements et services médico-sociaux (CASF L312-1 I 2°),
    entered on a CDAPH orientation decision (MDPH notification, CASF L241-6); CAMSP (CSP
    L2132-4) and CMP (secteur de psychiatrie infanto-juvénile) are entered directly."""

    IME = "IME"
    SESSAD = "SESSAD"
    DITEP = "DITEP"
    IEM = "IEM"
    CAMSP = "CAMSP"
    CMP = "CMP"
    AUTRE = "autre"


class Sex(StrEnum):
    """Sex of a child, as accepted by units and agréments."""

    F = "F"
    M = "M"


class AvailableGender(StrEnum):
    """Gender the currently free places are reserved for (ROR 'genre de la capacité')."""

    ANY = "any"
    F = "F"
    M = "M"


class OfferKind(StrEnum):
    """What a proposal points at: a unit of a structure, or an assistant familial."""

    UNIT = "unit"
    CARER = "carer"


class OfferStatus(StrEnum):
    """Status of a carer (units are always ``active`` while they have free places): the
    carer's own word. Suspension is not one: it is their agrément's (``Offer.agrement_valid``)."""

    ACTIVE = "active"
    LEAVE = "leave"


class Temporality(StrEnum):
    """When declared places are free (ROR TRE_R331: 01 courant … 05 +7 jours)."""

    CURRENT = "current"
    H1 = "h1"
    H24 = "h24"
    H48 = "h48"
    D7 = "d7"


class Urgency(StrEnum):
    """How soon the placement service needs the place."""

    IMMEDIATE = "immediate"
    DAYS = "days"
    PLANNED = "planned"


# Keyed by the enums' members, typed by their codes: a member *is* its code, so a plain code
# (as read from a payload or a row) looks a label up.
TIMING_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        Timing.URGENCE: "Accueil d'urgence",
        Timing.DURABLE: "Accueil durable",
        Timing.SEQUENTIEL: "Accueil séquentiel (relais, week-ends, vacances)",
    }
)

PUBLIC_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        Public.MINEUR: "Mineur",
        Public.MNA: "Mineur non accompagné (MNA)",
        Public.JEUNE_MAJEUR: "Jeune majeur (18–21 ans)",
    }
)

FORMULA_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        Formula.ENFANT: "Accueil de l'enfant",
        Formula.PARENT_ENFANT: "Accueil parent-enfant",
    }
)

CARE_MODE_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        CareMode.URGENCE: "Accueil d'urgence",
        CareMode.DURABLE: "Accueil durable",
        CareMode.SEQUENTIEL: "Accueil séquentiel (relais, week-ends, vacances)",
        CareMode.MERE_ENFANT: "Accueil mère-enfant",
        CareMode.MNA: "Mineur non accompagné (MNA)",
        CareMode.JEUNE_MAJEUR: "Jeune majeur (18–21 ans)",
    }
)

DISABILITY_PROFILE_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        DisabilityProfile.TSA: "Troubles du spectre de l'autisme (TSA)",
        DisabilityProfile.DEFICIENCE_INTELLECTUELLE: "Déficience intellectuelle",
        DisabilityProfile.TROUBLES_PSYCHIQUES_COMPORTEMENT: (
            "Troubles psychiques et du comportement"
        ),
        DisabilityProfile.DEFICIENCE_MOTRICE: "Déficience motrice",
        DisabilityProfile.DEFICIENCE_SENSORIELLE: "Déficience sensorielle",
        DisabilityProfile.POLYHANDICAP: "Polyhandicap",
        DisabilityProfile.SOINS_TECHNIQUES: "Maladie chronique, soins techniques",
    }
)

DISABILITY_LEVEL_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        DisabilityLevel.SPECIALISED: "accueil spécialisé",
        DisabilityLevel.WITH_SUPPORT: "accueil avec soutien extérieur",
    }
)

DISABILITY_SERVICE_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        DisabilityServiceKind.IME: "Institut médico-éducatif (IME)",
        DisabilityServiceKind.SESSAD: (
            "Service d'éducation spéciale et de soins à domicile (SESSAD)"
        ),
        DisabilityServiceKind.DITEP: (
            "Dispositif intégré thérapeutique, éducatif et pédagogique (DITEP)"
        ),
        DisabilityServiceKind.IEM: "Institut d'éducation motrice (IEM)",
        DisabilityServiceKind.CAMSP: "Centre d'action médico-sociale précoce (CAMSP)",
        DisabilityServiceKind.CMP: "Centre médico-psychologique (CMP)",
        DisabilityServiceKind.AUTRE: "Autre service",
    }
)

TEMPORALITY_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        Temporality.CURRENT: "libre maintenant",
        Temporality.H1: "libre dans 1 h",
        Temporality.H24: "libre sous 24 h",
        Temporality.H48: "libre sous 48 h",
        Temporality.D7: "libre sous 7 jours",
    }
)

#: Hours until a place of each temporality is free; orders temporalities.
TEMPORALITY_HOURS: Final[Mapping[str, int]] = MappingProxyType(
    {
        Temporality.CURRENT: 0,
        Temporality.H1: 1,
        Temporality.H24: 24,
        Temporality.H48: 48,
        Temporality.D7: 168,
    }
)

#: FINESS categories (TRE_R66) of child-protection structures, for explanations.
FINESS_CATEGORY_LABELS: Final = MappingProxyType(
    {
        "166": "Centre parents-enfants (moins de 3 ans)",
        "172": "Pouponnière à caractère social",
        "175": "Foyer de l'enfance",
        "176": "Village d'enfants",
        "177": "Maison d'enfants à caractère social (MECS)",
        "236": "Service de placement familial",
        "238": "Centre d'accueil familial spécialisé",
        "241": "Établissement de placement (PJJ)",
        "378": "Établissement expérimental enfance protégée",
        "462": "Lieu de vie et d'accueil (LVA)",
    }
)

#: The service de placement familial employs assistants familiaux: its places are its
#: carers' homes, so it has no unit (no collective place at its office) and its capacity is
#: the sum of its carers' (the synthetic dataset and the FINESS import give it no unit).
PLACEMENT_SERVICE_CATEGORY: Final = "236"

#: Categories dedicated to children under 3 (pouponnière, centre parents-enfants).
INFANT_CATEGORIES: Final = frozenset({"172", "166"})

#: Small, family-like collective settings (LVA, village d'enfants, accueil familial
#: spécialisé): promoted after assistants familiaux by the national strategy.
FAMILY_LIKE_CATEGORIES: Final = frozenset({"462", "176", "238"})

CARE_MODES: Final = frozenset(CareMode)
TIMINGS: Final = frozenset(Timing)
PUBLICS: Final = frozenset(Public)
FORMULAS: Final = frozenset(Formula)
DISABILITY_PROFILES: Final = frozenset(DisabilityProfile)
DISABILITY_LEVELS: Final = frozenset(DisabilityLevel)
DISABILITY_SERVICE_KINDS: Final = frozenset(DisabilityServiceKind)
TEMPORALITIES: Final = frozenset(Temporality)
URGENCIES: Final = frozenset(Urgency)

#: Ages (years) a child may have in a request: jeunes majeurs are supported up to 21.
MIN_AGE: Final = 0
MAX_AGE: Final = 21
#: Ages are counted in months (the truth everywhere): 0 … 21 years 11 months.
MAX_AGE_MONTHS: Final = MAX_AGE * 12 + 11
#: Below this age (months) an age is shown in months: "34 mois", not "2 ans".
MONTHS_SHOWN_BELOW: Final = 36
#: Categories whose units take children under 3 only, so at most 35 months: the pouponnière
#: à caractère social (FINESS 172; décret n° 74-58 of 15 January 1974: "enfants de moins de
#: trois ans") and the centre parental / parents-enfants (166; CASF L222-5 4° and L222-5-3:
#: parents "avec leurs enfants de moins de trois ans", and future parents).
UNDER_3_CATEGORIES: Final = frozenset({"172", "166"})
UNDER_3_MAX_AGE_MONTHS: Final = 35


def years_to_months(age_min: int, age_max: int) -> tuple[int, int]:
    """An offer's band in whole years → months: ``y_min*12 .. y_max*12 + 11`` (a unit "0–3
    ans" of old took a child until the eve of their 4th birthday: 0–47 months)."""
    return age_min * 12, age_max * 12 + 11


def months_to_years(months: int) -> int:
    """Completed years of an age in months (the deprecated ``age`` of responses)."""
    return months // 12


def age_label(months: int) -> str:
    """An age as a placement officer says it: months below 3 years ("34 mois", "2 ans 10
    mois" is the same child), years above ("7 ans")."""
    if months < MONTHS_SHOWN_BELOW:
        return f"{months} mois"
    return f"{months // 12} ans"


#: The ONE mapping of a legacy care-mode code (a request's) to (timing, public, formula).
LEGACY_CARE_MODE: Final[Mapping[str, tuple[str, str, str]]] = MappingProxyType(
    {
        CareMode.URGENCE: (Timing.URGENCE, Public.MINEUR, Formula.ENFANT),
        CareMode.DURABLE: (Timing.DURABLE, Public.MINEUR, Formula.ENFANT),
        CareMode.SEQUENTIEL: (Timing.SEQUENTIEL, Public.MINEUR, Formula.ENFANT),
        CareMode.MERE_ENFANT: (Timing.DURABLE, Public.MINEUR, Formula.PARENT_ENFANT),
        CareMode.MNA: (Timing.DURABLE, Public.MNA, Formula.ENFANT),
        CareMode.JEUNE_MAJEUR: (Timing.DURABLE, Public.JEUNE_MAJEUR, Formula.ENFANT),
    }
)

_TIMING_CODES: Final = frozenset({CareMode.URGENCE, CareMode.DURABLE, CareMode.SEQUENTIEL})


def legacy_offer_sets(
    care_modes: Iterable[str],
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """An offer's legacy set of care modes → its (timings, publics, formulas).

    Built so that every request that matched the old set matches the new sets (property
    tested): the timing codes present, plus ``durable`` when mna / jeune_majeur /
    mere_enfant is (those were durable placements); ``mineur`` when any mode for minors
    (urgence, durable, séquentiel, mère-enfant) is, plus mna and jeune_majeur as such;
    ``parent_enfant`` for mère-enfant, ``enfant`` for any other mode. Unknown codes are
    ignored. The new sets may match more than the old one did (a unit offering urgence and
    mna now takes an MNA in emergency): that is the point of the split.
    """
    modes = frozenset(care_modes)
    timings = set(modes & _TIMING_CODES)
    if modes & {CareMode.MNA, CareMode.JEUNE_MAJEUR, CareMode.MERE_ENFANT}:
        timings.add(Timing.DURABLE)
    publics = set(modes & {CareMode.MNA, CareMode.JEUNE_MAJEUR})
    if modes & (_TIMING_CODES | {CareMode.MERE_ENFANT}):
        publics.add(Public.MINEUR)
    formulas: set[str] = set()
    if CareMode.MERE_ENFANT in modes:
        formulas.add(Formula.PARENT_ENFANT)
    if modes & (CARE_MODES - {CareMode.MERE_ENFANT}):
        formulas.add(Formula.ENFANT)
    return (
        frozenset(str(t) for t in timings),
        frozenset(str(p) for p in publics),
        frozenset(str(f) for f in formulas),
    )


def legacy_care_mode(timing: str, public: str, formula: str) -> str:
    """The deprecated ``care_mode`` of a request, derived for responses: parent_enfant →
    mere_enfant, else the public when it is mna or jeune_majeur, else the timing."""
    if formula == Formula.PARENT_ENFANT:
        return CareMode.MERE_ENFANT.value
    if public in (Public.MNA, Public.JEUNE_MAJEUR):
        return str(public)
    return str(timing)


def legacy_care_modes(
    timings: Iterable[str], publics: Iterable[str], formulas: Iterable[str]
) -> frozenset[str]:
    """The deprecated ``care_modes`` of an offer, derived for responses: its timings when it
    takes minors alone, plus mere_enfant / mna / jeune_majeur for those codes."""
    t, p, f = frozenset(timings), frozenset(publics), frozenset(formulas)
    out: set[str] = set()
    if Formula.ENFANT in f and Public.MINEUR in p:
        out |= t
    if Formula.PARENT_ENFANT in f:
        out.add(CareMode.MERE_ENFANT.value)
    out |= p & {Public.MNA.value, Public.JEUNE_MAJEUR.value}
    return frozenset(str(x) for x in out)
