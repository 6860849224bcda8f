"""Places matching engine: pure scoring, relaxation and assignment (no I/O).

The API layer retrieves candidate offers with SQL and hands them over; everything here
is deterministic, side-effect free and tested on in-memory data.

- ``search(need, fetch, limit, max_distance_km)`` — ranked, explained proposals in one
  total order, relaxing the ladder of the need's urgency (``LADDERS``) only as needed;
  ``fetch(step)`` is the only injection point.
- ``optimize`` / ``greedy`` — global assignment of waiting requests vs first come,
  first served.
- ``score`` / ``violations`` — the explainable score and the hard constraints.
"""

from matching.assignment import Assignment, Plan, default_score, greedy, optimize
from matching.constraints import (
    CONSTRAINTS,
    Violation,
    accepts,
    child_accepted,
    failed_constraints,
    violations,
)
from matching.models import (
    Child,
    Need,
    Offer,
    PlacedSibling,
    Point,
    Proposal,
    Reason,
    SearchResult,
    as_children,
    haversine_km,
)
from matching.relaxation import (
    EMERGENCY_FIRST,
    LADDER,
    LADDER_MARKDOWN,
    LADDER_REASONS,
    LADDERS,
    STALE_AFTER_DAYS,
    STEP_CODES,
    Area,
    Step,
    check_ladder,
    is_emergency,
    ladder_for,
    ladder_markdown,
    ladders_markdown,
    search,
    separation_km,
    split_plan,
)
from matching.score import (
    WEIGHTS,
    nearest_placed_sibling,
    school_distance_km,
    score,
    score_value,
    weights_markdown,
)
from matching.vocabulary import (
    CARE_MODE_LABELS,
    DISABILITY_PROFILE_LABELS,
    FINESS_CATEGORY_LABELS,
    TEMPORALITY_LABELS,
    AvailableGender,
    CareMode,
    DisabilityProfile,
    OfferKind,
    OfferStatus,
    Sex,
    Temporality,
    Urgency,
)

__all__ = [
    "CARE_MODE_LABELS",
    "CONSTRAINTS",
    "DISABILITY_PROFILE_LABELS",
    "EMERGENCY_FIRST",
    "FINESS_CATEGORY_LABELS",
    "LADDER",
    "LADDERS",
    "LADDER_MARKDOWN",
    "LADDER_REASONS",
    "STALE_AFTER_DAYS",
    "STEP_CODES",
    "TEMPORALITY_LABELS",
    "WEIGHTS",
    "Area",
    "Assignment",
    "AvailableGender",
    "CareMode",
    "Child",
    "DisabilityProfile",
    "Need",
    "Offer",
    "OfferKind",
    "OfferStatus",
    "PlacedSibling",
    "Plan",
    "Point",
    "Proposal",
    "Reason",
    "SearchResult",
    "Sex",
    "Step",
    "Temporality",
    "Urgency",
    "Violation",
    "accepts",
    "as_children",
    "check_ladder",
    "child_accepted",
    "default_score",
    "failed_constraints",
    "greedy",
    "haversine_km",
    "is_emergency",
    "ladder_for",
    "ladder_markdown",
    "ladders_markdown",
    "nearest_placed_sibling",
    "optimize",
    "school_distance_km",
    "score",
    "score_value",
    "search",
    "separation_km",
    "split_plan",
    "violations",
    "weights_markdown",
]
