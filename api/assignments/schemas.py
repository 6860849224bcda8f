"""Optimize request and plan bodies."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.authorities import AUTHORITY_MAX_LENGTH, DEPARTMENT_PATTERN


class OptimizeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"authority": "69M"}, {"authority": "20R", "request_ids": []}]
        },
    )
    authority: str | None = Field(
        default=None,
        max_length=AUTHORITY_MAX_LENGTH,
        description="The competent authority whose waiting list is optimised (`69M`, `20R`…).",
    )
    department: str | None = Field(
        default=None,
        pattern=DEPARTMENT_PATTERN,
        description="Former field: accepted instead of `authority` when the department has "
        "exactly one authority; `69` is refused (422) with the choices `69D`, `69M`.",
    )
    request_ids: list[UUID] | None = Field(default=None, max_length=2000)
    candidates_per_request: int = Field(default=40, ge=1, le=200)
    priority: Literal["score", "placements"] = "score"
    """``score``: maximise the total score (the contract); ``placements``: place the most
    children first, then maximise the score — what a waiting-list screen usually wants."""


class AssignmentOut(BaseModel):
    request_id: UUID
    target: dict[str, str]
    department: str
    commune: str
    distance_km: float
    places: int
    score: float


class UrgencyCounts(BaseModel):
    """Children placed per urgency code (every code, 0 included)."""

    immediate: int
    days: int
    planned: int


class PlanOut(BaseModel):
    assignments: list[AssignmentOut]
    total: float
    """Sum of the matching scores of the assignments."""
    objective: float
    """What the optimiser maximises: ``total`` plus, per child placed, the waiting weight per
    30 days waited and the urgency weight per step of urgency (= ``total`` at weights 0)."""
    unassigned: list[UUID]
    method: str
    optimal: bool
    gap: float | None = None
    """Certified bound on how far ``objective`` may be below the optimum, relative to it
    (0.001 = within 0.1 %); 0 when proved optimal, null when nothing is certified (greedy)."""
    children_placed: int
    children_unplaced: int
    unplaced_waited_days_mean: float | None
    """Mean days since the decision of the children left unplaced (a sibling group counts
    each child); null when every child is placed."""
    unplaced_waited_days_max: float | None
    """The longest wait among the children left unplaced; null when every child is placed."""
    placed_by_urgency: UrgencyCounts


class Weights(BaseModel):
    """The settings the objective used (``PLACES_OPTIMIZE_WAITING_WEIGHT``,
    ``PLACES_OPTIMIZE_URGENCY_WEIGHT``)."""

    waiting: float
    urgency: float


class OptimizeOut(BaseModel):
    """``optimal`` is the proposed plan; ``greedy`` what first-come-first-served (oldest
    decision first) would do on the same data. Nothing is held: it only proposes."""

    requests: int
    children: int
    offers: int
    weights: Weights
    optimal: PlanOut
    greedy: PlanOut
    gain: float
    """optimal.total − greedy.total: the matching score won; it may be negative when the
    weights trade some score for placing children who waited longer or are more urgent."""
    objective_gain: float
    """optimal.objective − greedy.objective: never negative when the plan is proved optimal
    (first-come-first-served is one of the plans the optimiser weighed)."""
