"""Optimize request and plan bodies."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class OptimizeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"department": "69"}, {"department": "69", "request_ids": []}]
        },
    )
    department: str = Field(pattern=r"^(0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])$")
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
