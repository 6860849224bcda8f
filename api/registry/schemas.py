"""Response bodies of the registry."""

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from api.capacity.schemas import CapacitySnapshot


class DepartmentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"code": "69", "name": "Rhône", "region_code": "84"}]}
    )
    code: str
    name: str
    region_code: str


class Location(BaseModel):
    lat: float
    lon: float


class UnitOut(BaseModel):
    id: UUID
    name: str
    age_min: int
    age_max: int
    sexes: list[str]
    care_modes: list[str]
    disability_profiles: list[str]
    installed: int
    capacity: CapacitySnapshot | None
    """The ``current`` snapshot; null until the unit has declared once."""
    forecasts: list[CapacitySnapshot] = []


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
                            "location": {"lat": 45.76, "lon": 4.84},
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


class FosterCarerOut(BaseModel):
    """A carer as others may see them: commune level, never their home's location."""

    id: UUID
    department: str
    commune: str
    agrement_capacity: int
    age_min: int
    age_max: int
    care_modes: list[str]
    disability_profiles: list[str]
    status: str
    status_until: date | None
    available_places: int
    version: int
    declared_at: datetime


class FosterCarerPage(BaseModel):
    items: list[FosterCarerOut]
    total: int
