"""Stable codes of the needs vocabulary, with their French labels.

The codes are part of the public contract (API payloads, database values, FHIR mapping
later), so they never change; labels are UI text and may be reworded freely. Every enum
is a ``StrEnum`` so that a member *is* its code (``CareMode.URGENCE == "urgence"``) and
can be stored or serialised without conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class CareMode(StrEnum):
    """Mode d'accueil requested by a placement service (one per request)."""

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
DISABILITY_PROFILES: Final = frozenset(DisabilityProfile)
DISABILITY_LEVELS: Final = frozenset(DisabilityLevel)
DISABILITY_SERVICE_KINDS: Final = frozenset(DisabilityServiceKind)
TEMPORALITIES: Final = frozenset(Temporality)
URGENCIES: Final = frozenset(Urgency)

#: Ages (years) a child may have in a request: jeunes majeurs are supported up to 21.
MIN_AGE: Final = 0
MAX_AGE: Final = 21
