"""Request body of a carer's availability declaration."""

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"available_places": 1, "status": "active", "until": None}]
        },
    )
    available_places: int = Field(ge=0, le=6)
    status: Literal["active", "leave", "suspended"]
    until: date | None = None
