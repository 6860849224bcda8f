"""Search request and response bodies (contract: Searching)."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.needs import NeedIn
from api.requests.schemas import MAX_SIBLINGS_PLACED, PlacedSiblingIn, SchoolIn
from api.requests.schemas import ChildIn as RequestChildIn


class ChildIn(RequestChildIn):
    """A child as matching needs it: age (months, or years), sex, disability profiles and,
    with a profile, the MDPH notification and the service that follows the child. Nothing
    else."""


class OriginIn(BaseModel):
    """Either a commune (INSEE code) or coordinates — of the family or the school."""

    model_config = ConfigDict(extra="forbid")
    commune: str | None = Field(default=None, pattern=r"^[0-9][0-9AB][0-9]{3}$")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _one_form(self) -> "OriginIn":
        has_point = self.lat is not None or self.lon is not None
        if self.commune is not None and has_point:
            raise ValueError("soit commune, soit lat/lon, pas les deux")
        if self.commune is None and (self.lat is None or self.lon is None):
            raise ValueError("commune, ou bien lat et lon, requis")
        return self


class SearchIn(NeedIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "children": [
                        {
                            "age": 7,
                            "sex": "F",
                            "disability_profiles": ["tsa"],
                            "mdph_notified": True,
                            "disability_service": {"commune": "69266", "kind": "SESSAD"},
                        },
                        {"age": 9, "sex": "M", "disability_profiles": []},
                    ],
                    "origin": {"commune": "69123"},
                    "timing": "durable",
                    "max_distance_km": 60,
                    "limit": 10,
                }
            ]
        },
    )
    children: list[ChildIn] = Field(
        max_length=8, description="None only for a parent expecting (`parent_expecting`)."
    )
    origin: OriginIn | None = Field(
        default=None,
        description="The family's commune or point: the ladder's geography (radius, "
        "neighbouring departments) is measured from it (Code civil art. 375-7: visits). "
        "Optional when `school` is given: the school's commune is then the origin.",
    )
    school: SchoolIn | None = Field(
        default=None,
        description="The child's school (commune): a second origin, whose distance to each "
        "offer is scored as a secondary criterion (`school`). Default: the request's.",
    )
    siblings_placed: list[PlacedSiblingIn] | None = Field(
        default=None,
        max_length=MAX_SIBLINGS_PLACED,
        description="Where brothers and sisters already live (art. 371-5): each a `unit`, a "
        "`carer` or a `commune`; proximity to the nearest is scored (`siblings_placed`). "
        "Default: the request's. Unknown: 422 naming `siblings_placed[i]`.",
    )
    urgency: Literal["immediate", "days", "planned"] = Field(
        default="days",
        description="Chooses the relaxation ladder (docs/domain.md, Matching): `immediate` "
        "places free now, widening geographically; `days` and `planned` places announced "
        "within 24 h / 48 h / 7 days near the family before anything beyond the neighbouring "
        "departments.",
    )
    max_distance_km: float = Field(default=50, gt=0, le=1200)
    limit: int = Field(
        default=10,
        ge=1,
        le=50,
        description="How many options (an offer for the whole group, or one split plan): the "
        "first k for `limit=k` are the first k for any larger limit.",
    )
    request_id: UUID | None = Field(
        default=None,
        description="The placement request searched for: units and carers that refused one of "
        "its holds are left out, and its `separation_ordered` and `min_distance_km` apply "
        "unless given here.",
    )
    separation_ordered: bool | None = Field(
        default=None,
        description="The siblings may be placed apart (Code civil art. 371-5): a split is "
        "allowed from the first step, not as a relaxation. Default: the request's, else false.",
    )
    min_distance_km: float | None = Field(
        default=None,
        ge=0,
        le=1200,
        description="Keep the place at least this far from the family (art. 375-7): nearer "
        "places are left out and distance is scored from this minimum. Default: the request's.",
    )


class Target(BaseModel):
    kind: Literal["unit", "carer"]
    id: UUID


class StructureRef(BaseModel):
    id: UUID
    name: str
    finess: str


class ReasonOut(BaseModel):
    criterion: str
    detail: str
    contribution: float


class ProposalOut(BaseModel):
    target: Target
    structure: StructureRef | None
    category: str | None
    department: str
    commune: str
    outside_department: bool
    distance_km: float
    free_places: int
    age_min_months: int = Field(description="Youngest age the offer takes, in months.")
    age_max_months: int = Field(
        description="Oldest age the offer takes, in months (a carer: the agrément's preferred"
        " ages); with `age_min_months`, what tells two offers of one commune apart."
    )
    ages: str = Field(description='The age band said aloud: "0–35 mois", "3–17 ans".')
    temporality: str
    declared_age_days: float
    children: list[int]
    score: float
    reasons: list[ReasonOut]
    relaxed: list[str] = Field(
        description="Every relaxation this proposal needs, as facts: the ladder's codes in "
        "ladder order, then `disability_unstated` when the offer has said nothing on a "
        "child's disability profile."
    )
    disability_level: Literal["specialised", "with_support", "unstated"] | None = Field(
        default=None,
        description="What the offer states of its children's disability profiles, the worst "
        "over them (it ranks by it within its step: specialised, with support, unstated); null "
        "when none of them has a profile.",
    )
    step: str = Field(description="The ladder step the proposal ranks at.")
    stale: bool = Field(
        description="The declaration is older than `PLACES_STALE_AFTER_DAYS`: it ranks after "
        "the fresh ones of its step."
    )
    option: int = Field(
        description="Rank of the option this proposal belongs to (0 first); the parts of one "
        "split plan share it."
    )
    siblings_distance_km: float | None = Field(
        description="A part of a split: how far (at most) the other siblings would be."
    )
    school_distance_km: float | None = Field(
        default=None,
        description="Distance from the school's commune (whole km for a carer or a lieu de "
        "vie, as `distance_km`); null without a school.",
    )
    siblings_placed_distance_km: float | None = Field(
        default=None,
        description="Whole km to the nearest sibling already placed (0: with them, or in "
        "their establishment); null without siblings placed.",
    )
    disability_service_distance_km: float | None = Field(
        default=None,
        description="Distance from the commune of its children's disability service (the "
        "farthest, if several; whole km for a carer or a lieu de vie); null without one.",
    )


class SearchOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "proposals": [
                        {
                            "target": {
                                "kind": "carer",
                                "id": "2d1f0b7c-0d43-4b8b-9a53-5f1d9c1e0a11",
                            },
                            "structure": None,
                            "category": None,
                            "department": "69",
                            "commune": "69266",
                            "outside_department": False,
                            "distance_km": 12.0,
                            "free_places": 2,
                            "age_min_months": 36,
                            "age_max_months": 131,
                            "ages": "3–10 ans",
                            "temporality": "current",
                            "declared_age_days": 0.4,
                            "children": [0, 1],
                            "score": 0.87,
                            "reasons": [
                                {"criterion": "distance", "detail": "12 km", "contribution": 0.31}
                            ],
                            "relaxed": [],
                            "step": "none",
                            "stale": False,
                            "option": 0,
                            "siblings_distance_km": None,
                        }
                    ],
                    "relaxations": [],
                    "tried": ["none"],
                    "unmatched_children": [],
                }
            ]
        }
    )
    proposals: list[ProposalOut]
    relaxations: list[str]
    tried: list[str]
    """Every ladder step whose candidates were fetched, so an empty answer says what was tried."""
    rejected: dict[str, int] = {}
    unmatched_children: list[int] = []
    origin_department: str
