"""Bodies of holds (réservations), admissions and exits."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.requests.schemas import RequestStatus

HoldStatus = Literal["held", "admitted", "released", "refused", "expired", "exited"]
TargetKind = Literal["unit", "carer"]


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: TargetKind
    id: UUID


class HoldIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_id": "3d6f0a9e-5b1c-4f7a-8e2d-9c0b1a2f3e4d",
                    "target": {"kind": "unit", "id": "0b6c1f0e-3a57-4f43-9b8e-1f2d3c4b5a69"},
                    "expires_in_minutes": 1440,
                }
            ]
        },
    )
    request_id: UUID
    target: TargetIn
    expires_in_minutes: int = Field(
        1440, ge=1, le=10080, description="ROR « réservé »: a child expected within 24 h."
    )


class Target(BaseModel):
    kind: TargetKind
    id: UUID


class HoldOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                    "request_id": "3d6f0a9e-5b1c-4f7a-8e2d-9c0b1a2f3e4d",
                    "target": {"kind": "unit", "id": "0b6c1f0e-3a57-4f43-9b8e-1f2d3c4b5a69"},
                    "places": 2,
                    "status": "held",
                    "expires_at": "2026-11-26T08:30:00Z",
                    "reason": None,
                    "reason_code": None,
                    "request_status": "held",
                    "created_at": "2026-11-25T08:30:00Z",
                    "updated_at": "2026-11-25T08:30:00Z",
                }
            ]
        }
    )
    id: UUID
    request_id: UUID
    target: Target
    places: int = Field(description="One place per child of the request.")
    status: HoldStatus
    expires_at: datetime
    reason: str | None = Field(
        description="Free text beside the code (the authority's own; never exported)."
    )
    reason_code: str | None = Field(
        None, description="Coded reason of a refusal, release or exit (docs/domain.md)."
    )
    request_status: RequestStatus
    created_at: datetime
    updated_at: datetime


class HoldPage(BaseModel):
    items: list[HoldOut]
    total: int
