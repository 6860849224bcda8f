"""Request and response bodies of capacity declarations."""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.needs import OfferNeedsIn

Temporality = Literal["current", "h1", "h24", "h48", "d7"]
Gender = Literal["any", "F", "M"]
CareMode = Literal["urgence", "durable", "sequentiel", "mere_enfant", "mna", "jeune_majeur"]
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


class PreferencesIn(OfferNeedsIn):
    """The carer's preferences, within their agrément (its ages in months, timings, publics
    and formulas): what search matches them on. Checked against the agrément by the service
    (422 naming ``preferences.age_min_months``…). The deprecated years and ``care_modes``
    are still accepted and mapped."""

    model_config = ConfigDict(extra="forbid")


class AvailabilityIn(BaseModel):
    """A carer's own part (#15): free places within the agrément, leave (from ``leave_from``,
    or now, until ``until``), preferences within the agrément (omitted: unchanged).
    ``suspended`` is not the carer's word but the agrément's: the body still accepts it, so
    that the service answers with the right refusal (403 for the carer, 422 for anyone else,
    both naming ``status``) instead of a bare enum error."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"available_places": 1, "status": "active", "until": None},
                {
                    "available_places": 1,
                    "status": "leave",
                    "leave_from": "2026-12-20",
                    "until": "2027-01-03",
                    "preferences": {
                        "age_min_months": 36,
                        "age_max_months": 155,
                        "timings": ["durable"],
                        "publics": ["mineur"],
                        "formulas": ["enfant"],
                    },
                },
            ]
        },
    )
    available_places: int = Field(ge=0, le=6)
    status: Literal["active", "leave", "suspended"] = Field(
        description="`active` or `leave`; `suspended` is refused (the agrément's, decided "
        "by its issuer: POST /v1/agrements/{id}/suspend)."
    )
    leave_from: date | None = Field(
        default=None, description="Planned start of the leave (absent: the leave starts now)."
    )
    until: date | None = Field(default=None, description="End of the leave (inclusive).")
    preferences: PreferencesIn | None = None


class OpennessIn(BaseModel):
    """Whether the employer proposes the carer to other authorities' searches and holds."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"open_to_other_authorities": True}]}
    )
    open_to_other_authorities: bool
