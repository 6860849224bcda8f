"""Bodies of the agrément endpoints: what the issuing authority sends (registration, edit,
suspension, withdrawal), what the carer may send (renewal request), and ``AgrementOut``, the
one representation every reader gets (never the home's location)."""

from datetime import date
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.codes import AgrementReadState, DerogationReason, SuspensionReason, WithdrawalReason
from api.disability import DISABILITY_DESCRIPTION, DisabilityLevelCode
from api.needs import OfferNeedsIn, OfferNeedsOut
from api.registry.schemas import DisabilityProfile


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DerogationIn(Strict):
    """Above three children (CASF L421-5): how many (4–6), why, until when (optional)."""

    children: int = Field(ge=4, le=6)
    reason: DerogationReason
    until: date | None = None


class HomeIn(Strict):
    """The carer's home: stored to place them in their commune, never returned."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class EmployerIn(Strict):
    """Exactly one: an authority (the carer is its employee) or a private placement service
    (its FINESS number; a structure of category 236)."""

    authority: str | None = Field(default=None, max_length=8)
    finess: str | None = Field(default=None, min_length=9, max_length=9)


class AgrementIn(OfferNeedsIn, Strict):
    """Registering a carer: the agrément as the issuing authority (the home commune's)
    granted it. Ages default to 0–18 years (0–227 months)."""

    _default_months: ClassVar[tuple[int, int] | None] = (0, 18 * 12 + 11)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "number": "AF-69-000123",
                    "commune": "69266",
                    "home": {"lat": 45.77, "lon": 4.88},
                    "issued_on": "2024-03-01",
                    "capacity": 3,
                    "age_min_months": 0,
                    "age_max_months": 227,
                    "timings": ["durable", "urgence"],
                    "publics": ["mineur"],
                    "formulas": ["enfant"],
                    "employer": {"authority": "69M"},
                }
            ]
        },
    )
    number: str = Field(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9\-/ ]*$")
    commune: str = Field(pattern=r"^[0-9][0-9AB][0-9]{3}$")
    home: HomeIn
    issued_on: date
    valid_until: date | None = Field(
        default=None, description="Five years after `issued_on` by default (CASF L421-3)."
    )
    capacity: int = Field(ge=1, le=6)
    derogation: DerogationIn | None = None
    disability: dict[DisabilityProfile, DisabilityLevelCode] = Field(
        default={}, description=DISABILITY_DESCRIPTION + " The carer's is the agrément's."
    )
    employer: EmployerIn | None = Field(default=None, description="Default: the issuing authority.")
    open_to_other_authorities: bool | None = Field(
        default=None,
        description="Default: false for an authority's employee, true for a placement "
        "service's carer.",
    )


class AgrementPatch(OfferNeedsIn, Strict):
    """An edit of the agrément: only the fields sent change; `derogation: null` removes it."""

    _required: ClassVar[bool] = False

    issued_on: date | None = None
    valid_until: date | None = None
    capacity: int | None = Field(default=None, ge=1, le=6)
    derogation: DerogationIn | None = None
    disability: dict[DisabilityProfile, DisabilityLevelCode] | None = Field(
        default=None, description="The whole map, replacing the former (`{}`: silent on all)."
    )


class SuspendIn(Strict):
    """CASF L421-6: in an emergency, for four months at most; a coded reason is required."""

    from_: date | None = Field(default=None, alias="from", description="Default: today.")
    until: date | None = None
    reason: SuspensionReason


class ReinstateIn(Strict):
    pass


class WithdrawIn(Strict):
    on: date | None = Field(default=None, description="Default: today; never in the future.")
    reason: WithdrawalReason


class RenewalIn(Strict):
    requested_on: date | None = Field(default=None, description="Default: today.")


class DerogationOut(BaseModel):
    children: int
    reason: str
    until: date | None


class SuspensionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: date = Field(alias="from")
    until: date | None
    reason: str


class WithdrawalOut(BaseModel):
    on: date
    reason: str


class EmployerOut(BaseModel):
    kind: Literal["authority", "structure"]
    authority: str | None = None
    structure_id: UUID | None = None
    finess: str | None = None
    name: str | None = None


class AgrementOut(OfferNeedsOut):
    """The agrément as its readers see it (issuer, carer, employer); `state` is as of today
    (`places_agrement_state`): `expired` is derived from `valid_until`, never stored."""

    carer_id: UUID
    number: str
    issuing_authority: str
    department: str
    commune: str
    issued_on: date
    valid_until: date
    capacity: int
    derogation: DerogationOut | None
    disability: dict[str, DisabilityLevelCode] = Field(description=DISABILITY_DESCRIPTION)
    state: AgrementReadState
    suspension: SuspensionOut | None
    withdrawal: WithdrawalOut | None
    renewal_requested_on: date | None
    employer: EmployerOut
    open_to_other_authorities: bool
    version: int = Field(description="`agrement_version`, also the ETag.")


class AgrementPage(BaseModel):
    items: list[AgrementOut]
    total: int


class ToReviewOut(BaseModel):
    """A child placed with a carer whose agrément is no longer valid today: the placement
    (the admitted hold) and why, without the child."""

    placement_id: UUID
    request_id: UUID
    carer_id: UUID
    places: int
    admitted_at: str
    placing_authority: str
    employing_authority: str
    issuing_authority: str
    agrement_state: AgrementReadState
    suspension_reason: str | None
    withdrawal_reason: str | None


class ToReviewPage(BaseModel):
    items: list[ToReviewOut]
    total: int
