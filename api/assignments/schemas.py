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


class PlanOut(BaseModel):
    assignments: list[AssignmentOut]
    total: float
    unassigned: list[UUID]
    method: str
    optimal: bool
    gap: float | None = None
    """Certified bound on how far ``total`` may be below the optimum, relative to it (0.001 =
    within 0.1 %); 0 when proved optimal, null when nothing is certified (greedy)."""


class OptimizeOut(BaseModel):
    """``optimal`` is the proposed plan; ``greedy`` what first-come-first-served (oldest
    decision first) would do on the same data. Nothing is held: it only proposes."""

    requests: int
    offers: int
    optimal: PlanOut
    greedy: PlanOut
    gain: float
    """optimal.total − greedy.total (never negative)."""
