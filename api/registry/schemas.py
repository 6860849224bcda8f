"""Response bodies of the registry."""

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api import disability as disability_codes
from api.capacity.schemas import CapacitySnapshot
from api.codes import AgrementReadState
from api.disability import DisabilityLevelCode
from api.needs import OfferNeedsIn, OfferNeedsOut, legacy_offer_fields

DisabilityProfile = Literal[
    "tsa",
    "deficience_intellectuelle",
    "troubles_psychiques_comportement",
    "deficience_motrice",
    "deficience_sensorielle",
    "polyhandicap",
    "soins_techniques",
]
Category = Literal["166", "172", "175", "176", "177", "236", "238", "241", "378", "462"]


class DepartmentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": "69", "name": "Rhône", "region_code": "84"}]}
    )
    code: str
    name: str
    region_code: str


class AuthorityOut(BaseModel):
    """A competent authority for child protection: the scope of a placement service."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "69M",
                    "name": "Métropole de Lyon",
                    "kind": "metropole",
                    "departments": ["69"],
                }
            ]
        }
    )
    code: str = Field(description="`69M`, `69D`, `20R`, `6AE`, or a department's own code.")
    name: str
    kind: Literal[
        "departement",
        "metropole",
        "collectivite_unique",
        "collectivite_europeenne",
        "ville_departement",
    ]
    departments: list[str] = Field(description="The departments it covers (in whole or part).")


class Location(BaseModel):
    lat: float
    lon: float
    precision: Literal["address", "commune"] = "address"
    """``address``: the establishment's geocoded point; ``commune``: its commune's point (a
    FINESS record without coordinates, or a lieu de vie shown to a caller who does not need
    its door — see domain.md)."""


def _graded(data: Any) -> Any:
    """Rows carry the two levels' arrays (0018): the ``disability`` map and the deprecated
    ``disability_profiles`` (their union) instead."""
    if isinstance(data, Mapping) and "disability_specialised" in data:
        data = {
            k: v
            for k, v in data.items()
            if k not in ("disability_specialised", "disability_supported")
        } | disability_codes.as_out(data)
    return data


class UnitOut(OfferNeedsOut):
    id: UUID
    name: str
    sexes: list[str]
    disability: dict[str, DisabilityLevelCode] = Field(
        description=disability_codes.DISABILITY_DESCRIPTION
    )
    disability_profiles: list[str] = Field(
        deprecated=True, description=disability_codes.LEGACY_DESCRIPTION
    )
    installed: int
    capacity: CapacitySnapshot | None
    """The ``current`` snapshot; null until the unit has declared once."""
    forecasts: list[CapacitySnapshot] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        return _graded(data)


class StructureOut(BaseModel):
    id: UUID
    finess: str
    name: str
    category: str
    department: str
    commune: str
    location: Location
    units: list[UnitOut]


class StructurePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "6f1c8f7e-2b1a-4c1e-9a55-6d1b0c9e2f10",
                            "finess": "690000018",
                            "name": "MECS Les Tilleuls",
                            "category": "177",
                            "department": "69",
                            "commune": "69123",
                            "location": {"lat": 45.76, "lon": 4.84, "precision": "address"},
                            "units": [],
                        }
                    ],
                    "total": 1,
                }
            ]
        }
    )
    items: list[StructureOut]
    total: int


class Preferences(OfferNeedsOut):
    """The carer's preferences, within their agrément's."""


class FosterCarerOut(OfferNeedsOut):
    """A carer as others may see them: commune level, never their home's location. Their
    own part (free places, status, leave, preferences, ``version``) and what of their
    agrément and employer decides whether they are proposed: ``agrement_state`` as of today
    (SQL ``places_agrement_state``), ``valid_until``, ``employing_authority``,
    ``open_to_other_authorities``. The ages in months and ``timings``/``publics``/``formulas``
    (and, deprecated, ``age_min``/``age_max``/``care_modes``) are the agrément's;
    ``preferences`` the carer's, within them."""

    id: UUID
    department: str
    commune: str
    agrement_capacity: int
    disability: dict[str, DisabilityLevelCode] = Field(
        description="The agrément's word per disability profile (the issuer's): "
        + disability_codes.DISABILITY_DESCRIPTION
    )
    disability_profiles: list[str] = Field(
        deprecated=True, description=disability_codes.LEGACY_DESCRIPTION
    )
    status: str
    leave_from: date | None
    status_until: date | None
    available_places: int
    preferences: Preferences
    agrement_state: AgrementReadState
    valid_until: date
    employing_authority: str
    open_to_other_authorities: bool
    version: int
    declared_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _nest_preferences(cls, data: Any) -> Any:
        """Rows carry the preferences flat (``preferred_age_min_months``…): nest them; and the
        two disability levels' arrays (``_graded``)."""
        data = _graded(data)
        if (
            isinstance(data, dict)
            and "preferences" not in data
            and "preferred_age_min_months" in data
        ):
            data = dict(data)
            data["preferences"] = {
                name: data.pop(f"preferred_{name}")
                for name in ("age_min_months", "age_max_months", "timings", "publics", "formulas")
            }
        return legacy_offer_fields(data) if isinstance(data, dict) else data


class FosterCarerPage(BaseModel):
    items: list[FosterCarerOut]
    total: int


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class UnitIn(OfferNeedsIn):
    """A unit: ``timings``/``publics``/``formulas`` and ages in months (the deprecated
    ``care_modes`` and years ``age_min``/``age_max`` are still accepted and mapped)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    sexes: list[Literal["F", "M"]] = Field(min_length=1, max_length=2)
    disability: dict[DisabilityProfile, DisabilityLevelCode] | None = Field(
        default=None, description=disability_codes.DISABILITY_DESCRIPTION
    )
    disability_profiles: list[DisabilityProfile] = Field(
        # Marked in the OpenAPI only: pydantic's ``deprecated`` would warn on every read.
        default=[],
        json_schema_extra={"deprecated": True},
        description=disability_codes.LEGACY_DESCRIPTION,
    )
    installed: int = Field(ge=0, le=5000)


class StructureIn(BaseModel):
    """Registering an establishment (platform operator): its FINESS number must carry a valid
    Luhn key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "finess": "690000018",
                    "name": "MECS Les Tilleuls",
                    "category": "177",
                    "commune": "69123",
                    "location": {"lat": 45.7640, "lon": 4.8357},
                    "units": [
                        {
                            "name": "Les Grands",
                            "age_min_months": 144,
                            "age_max_months": 227,
                            "sexes": ["F", "M"],
                            "timings": ["durable"],
                            "publics": ["mineur"],
                            "formulas": ["enfant"],
                            "disability": {"troubles_psychiques_comportement": "with_support"},
                            "installed": 10,
                        }
                    ],
                }
            ]
        },
    )
    finess: str = Field(min_length=9, max_length=9)
    finess_ej: str | None = Field(default=None, min_length=9, max_length=9)
    name: str = Field(min_length=1, max_length=300)
    category: Category
    commune: str = Field(pattern=r"^[0-9][0-9AB][0-9]{3}$")
    address: str | None = Field(default=None, max_length=500)
    location: LocationIn | None = None
    units: list[UnitIn] = Field(default=[], max_length=50)
