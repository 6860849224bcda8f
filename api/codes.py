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

# --- Coded outcomes of the workflow and the waiting situation (issue #18) --------------------
# Stable codes (API, CHECK constraints, statistics); French labels for the pages and exports.
# Free text beside a code is optional, at most ``OUTCOME_TEXT_MAX`` characters, stays with the
# authority (never exported, never national). ``autre``: none of the codes, or a reason given
# as free text only (old clients), or a row written before codes existed (migration 0019).

RefusalReason = Literal[
    "profil_inadapte",
    "pas_de_place_reelle",
    "fratrie_non_accueillable",
    "age_hors_agrement",
    "distance",
    "securite_du_groupe",
    "autre",
]
REFUSAL_REASONS: tuple[str, ...] = get_args(RefusalReason)
"""Why an establishment or a carer refuses a hold (``POST /v1/holds/{id}/refuse``)."""
REFUSAL_LABELS = {
    "profil_inadapte": "Profil de l'enfant inadapté au projet de l'unité",
    "pas_de_place_reelle": "Pas de place réellement libre",
    "fratrie_non_accueillable": "Fratrie impossible à accueillir ensemble",
    "age_hors_agrement": "Âge hors de l'agrément ou de l'autorisation",
    "distance": "Trop loin (famille, école, soins)",
    "securite_du_groupe": "Sécurité du groupe accueilli",
    "autre": "Autre motif",
}
ReleaseReason = Literal[
    "autre_solution_retenue",
    "refus_famille_ou_enfant",
    "delai_admission",
    "erreur_reservation",
    "agrement_suspendu",
    "agrement_retire",
    "autre",
]
RELEASE_REASONS: tuple[str, ...] = get_args(ReleaseReason)
"""Why the placing authority releases a hold; ``agrement_suspendu`` / ``agrement_retire`` are
Places's own releases (``HOLD_RELEASE_REASONS``) and cannot be sent by a client."""
RELEASE_LABELS = {
    "autre_solution_retenue": "Autre solution retenue pour l'enfant",
    "refus_famille_ou_enfant": "Refus de la famille ou de l'enfant",
    "delai_admission": "Admission impossible dans le délai",
    "erreur_reservation": "Réservation faite par erreur",
    "agrement_suspendu": "Agrément de l'assistant familial suspendu",
    "agrement_retire": "Agrément de l'assistant familial retiré",
    "autre": "Autre motif",
}
CancellationReason = Literal[
    "mainlevee_mesure",
    "retour_famille",
    "placement_hors_places",
    "majorite",
    "fugue",
    "doublon",
    "autre",
]
CANCELLATION_REASONS: tuple[str, ...] = get_args(CancellationReason)
"""Why a waiting request is cancelled (``POST /v1/requests/{id}/cancel``)."""
CANCELLATION_LABELS = {
    "mainlevee_mesure": "Mainlevée ou fin de la mesure avant exécution",
    "retour_famille": "Maintien ou retour dans la famille",
    "placement_hors_places": "Enfant accueilli par une autre voie (tiers, hors Places)",
    "majorite": "Majorité ou fin de prise en charge",
    "fugue": "Fugue, enfant introuvable",
    "doublon": "Demande en double",
    "autre": "Autre motif",
}
ExitReason = Literal[
    "retour_famille",
    "majorite",
    "reorientation",
    "fin_mesure",
    "fugue",
    "autre",
]
EXIT_REASONS: tuple[str, ...] = get_args(ExitReason)
"""Why a placement ends (``POST /v1/placements/{id}/exit``)."""
EXIT_LABELS = {
    "retour_famille": "Retour dans la famille",
    "majorite": "Majorité ou fin de prise en charge jeune majeur",
    "reorientation": "Réorientation vers un autre lieu d'accueil",
    "fin_mesure": "Fin ou mainlevée de la mesure",
    "fugue": "Fugue prolongée",
    "autre": "Autre motif",
}
OUTCOME_TEXT_MAX = 200
"""Free text beside a code: short, the authority's own (never exported nor national)."""
OUTCOME_REASONS: dict[str, tuple[str, ...]] = {
    "refused": REFUSAL_REASONS,
    "released": RELEASE_REASONS,
    "cancelled": CANCELLATION_REASONS,
    "exited": EXIT_REASONS,
}
"""``request_events.event`` → the codes its ``reason_code`` takes (CHECK in migration 0019);
an expiry has none (the deadline passed)."""

WaitingSituation = Literal[
    "domicile",
    "accueil_urgence",
    "hopital",
    "hotel_derogation",
    "autre_placement",
    "inconnu",
]
WAITING_SITUATIONS: tuple[str, ...] = get_args(WaitingSituation)
"""Where a child whose measure is not executed lives meanwhile (``request_situations``)."""
WAITING_SITUATION_LABELS = {
    "domicile": "Au domicile familial",
    "accueil_urgence": "En accueil d'urgence",
    "hopital": "Maintenu à l'hôpital faute de place",
    "hotel_derogation": "À l'hôtel ou en structure jeunesse et sport (dérogation temporaire)",
    "autre_placement": "Dans un autre lieu d'accueil, en attente de réorientation",
    "inconnu": "Non renseigné",
}
