"""Request and response bodies of capacity declarations."""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Temporality = Literal["current", "h1", "h24", "h48", "d7"]
Gender = Literal["any", "F", "M"]
Count = Field(default=None, ge=0, le=5000)


class CapacityIn(BaseModel):
    """Omitted counts keep their last declared value; ``available`` is always declared."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "temporality": "current",
                    "installed": 12,
                    "occupied": 10,
                    "reserved": 0,
                    "closed": 0,
                    "available": 2,
                    "additional": 0,
                    "available_gender": "any",
                }
            ]
        },
    )
    temporality: Temporality
    available: int = Field(ge=0, le=5000)
    installed: int | None = Count
    occupied: int | None = Count
    reserved: int | None = Count
    closed: int | None = Count
    additional: int | None = Count
    available_gender: Gender | None = None


class CapacitySnapshot(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit_id": "0b6c1f0e-3a57-4f43-9b8e-1f2d3c4b5a69",
                    "temporality": "current",
                    "version": 4,
                    "declared_at": "2026-11-25T08:30:00Z",
                    "declared_by": "structure-690000000",
                    "installed": 12,
                    "occupied": 10,
                    "reserved": 0,
                    "closed": 0,
                    "available": 2,
                    "additional": 0,
                    "available_gender": "any",
                }
            ]
        }
    )
    unit_id: UUID
    temporality: Temporality
    version: int
    declared_at: datetime
    declared_by: str
    installed: int
    occupied: int
    reserved: int
    closed: int
    available: int
    additional: int
    available_gender: Gender


class AvailabilityIn(BaseModel):
    """A carer's declaration: free places and status."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"available_places": 1, "status": "active", "until": None}]
        },
    )
    available_places: int = Field(ge=0, le=6)
    status: Literal["active", "leave", "suspended"]
    until: date | None = None
