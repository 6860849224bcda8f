"""The domain's codes, one list each, as the schema's CHECK constraints and the API's
validation use them. The shared vocabulary comes from ``matching.vocabulary``; this module
imports no SQLAlchemy, so the routes that validate codes do not load the ORM at start-up."""

from matching.vocabulary import FINESS_CATEGORY_LABELS, CareMode, DisabilityProfile, Temporality

PDE_CATEGORIES = tuple(FINESS_CATEGORY_LABELS)
CARE_MODES = tuple(c.value for c in CareMode)
DISABILITY_PROFILES = tuple(p.value for p in DisabilityProfile)
TEMPORALITIES = tuple(t.value for t in Temporality)
CARER_STATUSES = ("active", "leave", "suspended")

REQUEST_STATUSES = ("waiting", "held", "placed", "exited", "cancelled")
URGENCIES = ("immediate", "days", "planned")
MEASURE_KINDS = ("judicial", "administrative")
HOLD_STATUSES = ("held", "admitted", "released", "refused", "expired", "exited")
REQUEST_EVENTS = ("created", "held", "admitted", "released", "refused", "expired", "exited")
REQUEST_EVENTS_ALL = (*REQUEST_EVENTS, "cancelled")
