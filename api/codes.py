"""The domain's codes, one list each, as the schema's CHECK constraints and the API's
validation use them. The shared vocabulary comes from ``matching.vocabulary``; this module
imports no SQLAlchemy, so the routes that validate codes do not load the ORM at start-up."""

from typing import Literal, get_args

from matching.vocabulary import (
    FINESS_CATEGORY_LABELS,
    CareMode,
    DisabilityProfile,
    Formula,
    Public,
    Temporality,
    Timing,
)

PDE_CATEGORIES = tuple(FINESS_CATEGORY_LABELS)
CARE_MODES = tuple(c.value for c in CareMode)
"""Deprecated (one version): the legacy care modes, accepted by the API and mapped."""
TIMINGS = tuple(t.value for t in Timing)
PUBLICS = tuple(p.value for p in Public)
FORMULAS = tuple(f.value for f in Formula)
DISABILITY_PROFILES = tuple(p.value for p in DisabilityProfile)
TEMPORALITIES = tuple(t.value for t in Temporality)
CARER_STATUSES = ("active", "leave")
"""What the carer declares: available, or on leave (``leave_from``–``status_until``). The
agrément's suspension is the issuer's (``AGREMENT_STATES``), never a carer's status."""

AgrementState = Literal["valid", "suspended", "withdrawn"]
AGREMENT_STATES: tuple[str, ...] = get_args(AgrementState)
"""Stored states of an agrément (CASF L421-3, L421-6). ``expired`` is derived from
``valid_until`` when reading (SQL function ``places_agrement_state``), never stored."""
AgrementReadState = Literal["valid", "suspended", "withdrawn", "expired", "not_yet_valid"]
SuspensionReason = Literal[
    "situation_de_danger",
    "enquete_administrative",
    "procedure_penale",
    "conditions_accueil",
    "sante",
    "anterieur_enregistrement",
]
SUSPENSION_REASONS: tuple[str, ...] = get_args(SuspensionReason)
"""Coded reasons of a suspension (CASF L421-6: in an emergency, for at most four months);
``anterieur_enregistrement``: a suspension recorded before Places kept reasons (0012)."""
WithdrawalReason = Literal[
    "conditions_non_remplies",
    "maltraitance",
    "demande_assistant",
    "cessation_activite",
    "autre",
]
WITHDRAWAL_REASONS: tuple[str, ...] = get_args(WithdrawalReason)
"""Coded reasons of a withdrawal of the agrément (CASF L421-6)."""
DerogationReason = Literal[
    "fratrie",
    "continuite_parcours",
    "accueil_urgence",
    "anterieur_enregistrement",
]
DEROGATION_REASONS: tuple[str, ...] = get_args(DerogationReason)
"""Coded reasons of a derogation above three children (CASF L421-5); a migrated carer with
4–6 children got ``anterieur_enregistrement`` (migration 0012)."""
HOLD_RELEASE_REASONS = {"suspend": "agrement_suspendu", "withdraw": "agrement_retire"}
"""The coded reason of the holds Places releases itself, by the issuer's decision (suspend,
withdraw) on the agrément of the carer they were on."""

REQUEST_STATUSES = ("waiting", "held", "placed", "exited", "cancelled")
URGENCIES = ("immediate", "days", "planned")
MEASURE_KINDS = ("judicial", "administrative")
HOLD_STATUSES = ("held", "admitted", "released", "refused", "expired", "exited")
REQUEST_EVENTS = ("created", "held", "admitted", "released", "refused", "expired", "exited")
REQUEST_EVENTS_ALL = (*REQUEST_EVENTS, "cancelled")
