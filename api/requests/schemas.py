"""Bodies of placement requests (demandes d'orientation).

Privacy is enforced by the schema itself: every model forbids unknown fields, so a child's
name, birth date or address sent by mistake is a 422 naming that field, never stored. The
child is described only by age (months, or years on input), sex, disability profiles and —
with a profile — its MDPH notification (yes/no) and the kind and commune of the service that
follows it; ``reference`` is the department's file number and refuses spaces and letters
outside ASCII, which keeps a name ("Léa Martin") out of it.
"""

from datetime import date, datetime
from typing import Any, Literal, NamedTuple, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from api.authorities import AUTHORITY_MAX_LENGTH, DEPARTMENT_PATTERN
from api.codes import (
    CARE_MODES,
    DISABILITY_PROFILES,
    OUTCOME_TEXT_MAX,
    REQUEST_STATUSES,
    CancellationReason,
    ExitReason,
    RefusalReason,
    WaitingSituation,
)
from api.disability import DisabilityServiceKind
from api.errors import field_error
from api.needs import DEPRECATED, ChildAgeIn, Formula, NeedIn, Public, Timing, legacy_need_fields
from api.needs import LegacyCareMode as CareMode
from api.registry.schemas import DisabilityProfile

RequestStatus = Literal["waiting", "held", "placed", "exited", "cancelled"]
Urgency = Literal["immediate", "days", "planned"]
MeasureKind = Literal["judicial", "administrative"]

# The literals are spelled out for the OpenAPI schema; they must stay the models' codes.
assert set(get_args(CareMode)) == set(CARE_MODES)
assert set(get_args(DisabilityProfile)) == set(DISABILITY_PROFILES)
assert set(get_args(RequestStatus)) == set(REQUEST_STATUSES)

REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
ORIGIN_DECIMALS = 2
"""A point origin is stored rounded to 0.01° (about 1 km): the family's home never is."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DisabilityServiceIn(Strict):
    """The service that follows a child with a disability: its kind and its commune (a
    service is public: its commune is enough). Its distance to each offer is scored."""

    commune: str = Field(pattern=r"^[0-9][0-9AB][0-9]{3}$", description="INSEE code.")
    kind: DisabilityServiceKind = Field(
        description="IME, SESSAD, DITEP, IEM (entered on a CDAPH orientation, CASF L241-6), "
        "CAMSP, CMP (entered directly) or `autre`."
    )


class ChildIn(Strict, ChildAgeIn):
    """Age in months (``age_months``) or years (``age``), never a birth date."""

    sex: Literal["F", "M"]
    disability_profiles: list[DisabilityProfile] = Field(default_factory=list, max_length=7)
    mdph_notified: bool | None = Field(
        default=None,
        description="The CDAPH notified a decision for the child (MDPH, CASF L241-6); null: "
        "not known. Only with a profile. Scored: a place taking the child with an outside "
        "service's support is worth more when the notification secures that support.",
    )
    disability_service: DisabilityServiceIn | None = Field(
        default=None,
        description="The service that follows the child (IME, SESSAD, DITEP…): its commune's "
        "distance to each offer is scored (`disability_service`). Only with a profile.",
    )

    @field_validator("mdph_notified")
    @classmethod
    def _notified_has_profile(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and not info.data.get("disability_profiles"):
            raise ValueError("une notification MDPH suppose un profil de handicap")
        return value

    @field_validator("disability_service")
    @classmethod
    def _service_has_profile(
        cls, value: "DisabilityServiceIn | None", info: ValidationInfo
    ) -> "DisabilityServiceIn | None":
        if value is not None and not info.data.get("disability_profiles"):
            raise ValueError("un service du handicap suppose un profil de handicap")
        return value


class ChildOut(BaseModel):
    age_months: int
    age: int = Field(
        json_schema_extra=DEPRECATED, description="Deprecated (one version): completed years."
    )
    sex: Literal["F", "M"]
    disability_profiles: list[DisabilityProfile] = []
    mdph_notified: bool | None = None
    disability_service: DisabilityServiceIn | None = None


class OriginIn(Strict):
    """Either ``{"commune": INSEE}`` or ``{"lat", "lon"}`` (rounded before storage)."""

    commune: str | None = Field(default=None, pattern=r"^[0-9][0-9AB][0-9]{3}$")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _one_form(self) -> "OriginIn":
        point = self.lat is not None or self.lon is not None
        if self.commune is not None and point:
            raise ValueError("either commune or lat/lon, not both")
        if self.commune is None and (self.lat is None or self.lon is None):
            raise ValueError("commune, or both lat and lon, required")
        return self


class SchoolIn(Strict):
    """The child's school, by its commune (a school is public: its commune is enough)."""

    commune: str = Field(pattern=r"^[0-9][0-9AB][0-9]{3}$", description="INSEE code.")


class PlacedSiblingIn(Strict):
    """Where a brother or sister already lives: exactly one of a unit id, a carer id (recorded
    and shown with the carer's commune only, never their home) or a commune (INSEE)."""

    unit: UUID | None = None
    carer: UUID | None = None
    commune: str | None = Field(default=None, pattern=r"^[0-9][0-9AB][0-9]{3}$")

    @model_validator(mode="after")
    def _one_form(self) -> "PlacedSiblingIn":
        given = [k for k in ("unit", "carer", "commune") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("exactement un de unit, carer ou commune")
        return self


MAX_SIBLINGS_PLACED = 8


class PlacedSibling(BaseModel):
    """A sibling's place as recorded: its kind, its id (unit or carer) and its commune."""

    kind: Literal["unit", "carer", "commune"]
    id: UUID | None = None
    commune: str


class SituationIn(Strict):
    """Where the child lives while waiting (``PUT /v1/requests/{id}/situation``, and at
    creation), from ``since`` (default: today in the request's department)."""

    code: WaitingSituation
    since: date | None = Field(
        default=None, description="The day the child began to live there; not in the future."
    )


class Situation(BaseModel):
    code: WaitingSituation
    since: date


class MeasureIn(Strict):
    kind: MeasureKind
    decided_on: date = Field(description="Date of the judge's or the department's decision.")

    @field_validator("decided_on")
    @classmethod
    def _not_too_old(cls, value: date) -> date:
        # The future is checked against the department's own calendar (see service).
        if value < date(2000, 1, 1):
            raise ValueError("decision before 2000-01-01")
        return value


class RequestIn(NeedIn, Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "authority": "69M",
                    "children": [
                        {
                            "age": 7,
                            "sex": "F",
                            "disability_profiles": ["tsa"],
                            "mdph_notified": True,
                            "disability_service": {"commune": "69266", "kind": "SESSAD"},
                        },
                        {"age_months": 34, "sex": "M", "disability_profiles": []},
                    ],
                    "origin": {"commune": "69123"},
                    "timing": "urgence",
                    "public": "mineur",
                    "formula": "enfant",
                    "urgency": "days",
                    "measure": {"kind": "judicial", "decided_on": "2026-11-20"},
                    "reference": "ASE69-2026-00123",
                }
            ]
        },
    )
    authority: str | None = Field(
        default=None,
        max_length=AUTHORITY_MAX_LENGTH,
        description="The competent authority (`69M`, `20R`…). Optional: the origin decides it "
        "(its commune's authority; for a point, the nearest commune's); when given it must be "
        "that one (422 naming `authority` otherwise).",
    )
    department: str | None = Field(
        default=None,
        pattern=DEPARTMENT_PATTERN,
        description="Geography of the origin; derived from the origin commune (for a point, "
        "the nearest commune) when absent.",
    )
    children: list[ChildIn] = Field(
        max_length=12,
        description="More than one child is a sibling group; none only for a parent expecting.",
    )
    origin: OriginIn
    urgency: Urgency
    measure: MeasureIn
    reference: str = Field(
        pattern=REFERENCE_PATTERN,
        description="The department's internal file number (letters, digits, . _ / -).",
    )
    separation_ordered: bool = Field(
        default=False,
        description="The judge (or the department) decided the siblings may be placed apart "
        "(Code civil art. 371-5): search then allows a split from its first step, not as a "
        "relaxation.",
    )
    situation: SituationIn | None = Field(
        default=None,
        description="Where the child lives while waiting (#18); absent: `inconnu` from the "
        "creation day.",
    )
    min_distance_km: float | None = Field(
        default=None,
        ge=0,
        le=1200,
        description="The place must be kept at least this far from the family (art. 375-7): "
        "search leaves nearer places out and scores distance from this minimum.",
    )
    school: SchoolIn | None = Field(
        default=None,
        description="The child's school: its distance to each offer is scored (a secondary "
        "criterion; the search's geography stays the family's, art. 375-7).",
    )
    siblings_placed: list[PlacedSiblingIn] = Field(
        default_factory=list,
        max_length=MAX_SIBLINGS_PLACED,
        description="Where brothers and sisters already live (Code civil art. 371-5): a unit, a "
        "carer or a commune each; an offer near one of them, or the very unit or carer, scores "
        "higher. An unknown one is a 422 naming `siblings_placed[i]`.",
    )


class Outcome(NamedTuple):
    """A transition's reason as stored: the code (``api.codes``) and the optional free text."""

    code: str | None
    text: str | None


ClientReleaseReason = Literal[
    "autre_solution_retenue",
    "refus_famille_ou_enfant",
    "delai_admission",
    "erreur_reservation",
    "autre",
]
"""``RELEASE_REASONS`` but Places's own (``agrement_suspendu``, ``agrement_retire``)."""

_TEXT = Field(
    default=None,
    min_length=1,
    max_length=OUTCOME_TEXT_MAX,
    description="Optional free text beside the code, at most 200 characters, never a name: "
    "kept for the authority, never exported nor shown nationally. Alone (old clients), it is "
    "recorded with the code `autre`.",
)


class _OutcomeIn(Strict):
    """A coded reason (``reason_code``) and optional short free text (``reason``)."""

    reason_code: str | None = None
    reason: str | None = _TEXT

    def outcome(self, *, required: bool = True) -> Outcome:
        """The code to store: the one given, else ``autre`` when only the text was given
        (clients from before the codes) or when none is required; else 422 naming
        ``reason_code``."""
        if self.reason_code is not None:
            return Outcome(self.reason_code, self.reason)
        if self.reason is None and required:
            raise field_error("reason_code", "motif requis (un code, voir la nomenclature)")
        return Outcome("autre", self.reason)


class RefusalIn(_OutcomeIn):
    reason_code: RefusalReason | None = Field(
        default=None, description="Why the establishment or the carer refuses (required)."
    )


class ReleaseIn(_OutcomeIn):
    reason_code: ClientReleaseReason | None = Field(
        default=None, description="Why the placing authority releases (optional: `autre`)."
    )


class CancellationIn(_OutcomeIn):
    reason_code: CancellationReason | None = Field(
        default=None, description="Why the request is cancelled (required)."
    )


class ExitIn(_OutcomeIn):
    reason_code: ExitReason | None = Field(
        default=None, description="Why the placement ends (required)."
    )


class Origin(BaseModel):
    commune: str | None
    lat: float
    lon: float


class Measure(BaseModel):
    kind: MeasureKind
    decided_on: date


class ActiveHold(BaseModel):
    """The request's live hold or placement, if any."""

    id: UUID
    status: Literal["held", "admitted"]
    target: dict[str, Any]
    places: int
    expires_at: datetime


class RequestOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3d6f0a9e-5b1c-4f7a-8e2d-9c0b1a2f3e4d",
                    "authority": "69M",
                    "department": "69",
                    "reference": "ASE69-2026-00123",
                    "children": [
                        {"age_months": 34, "age": 2, "sex": "F", "disability_profiles": []}
                    ],
                    "origin": {"commune": "69123", "lat": 45.764, "lon": 4.8357},
                    "timing": "urgence",
                    "public": "mineur",
                    "formula": "enfant",
                    "parent_expecting": False,
                    "care_mode": "urgence",
                    "urgency": "days",
                    "measure": {"kind": "judicial", "decided_on": "2026-11-20"},
                    "status": "waiting",
                    "days_since_decision": 5,
                    "hold": None,
                    "version": 1,
                    "created_at": "2026-11-25T08:30:00Z",
                    "updated_at": "2026-11-25T08:30:00Z",
                }
            ]
        }
    )
    id: UUID
    authority: str = Field(description="The competent authority the request belongs to.")
    department: str = Field(description="Geography of the origin.")
    reference: str
    children: list[ChildOut]
    origin: Origin
    timing: Timing
    public: Public
    formula: Formula
    parent_expecting: bool = False
    care_mode: CareMode = Field(
        json_schema_extra=DEPRECATED,
        description="Deprecated (one version), derived: parent_enfant → mere_enfant, else mna "
        "or jeune_majeur, else the timing.",
    )
    urgency: Urgency
    measure: Measure
    separation_ordered: bool = False
    min_distance_km: float | None = None
    school: SchoolIn | None = None
    siblings_placed: list[PlacedSibling] = []
    status: RequestStatus
    days_since_decision: int
    hold: ActiveHold | None
    situation: Situation | None = Field(
        default=None, description="The current waiting situation (the latest recorded)."
    )
    version: int
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _derive_legacy(cls, data: Any) -> Any:
        return legacy_need_fields(data) if isinstance(data, dict) else data


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int


class UnexecutedPage(RequestPage):
    after_days: int = Field(description="N: requests not placed N days after the decision.")


class HistoryItem(BaseModel):
    occurred_at: datetime
    event: str
    from_status: RequestStatus | None
    to_status: RequestStatus
    hold_id: UUID | None
    actor: str
    role: str
    reason: str | None
    reason_code: str | None = None


class HistoryOut(BaseModel):
    request_id: UUID
    items: list[HistoryItem]


class AuditEntryOut(BaseModel):
    id: int
    occurred_at: datetime
    actor: str
    role: str
    action: str
    object_type: str
    object_id: str
    department: str | None
    authority: str | None
    detail: dict[str, Any]
    person_id: int | None = Field(
        None, description="The person behind the token (persons table); null: a local role token."
    )
    function: str | None = Field(
        None, description="The habilitation's function the actor acted under (see docs/domain.md)."
    )
    actor_authority: str | None = Field(
        None,
        description="The authority the actor acted for; null for establishments, carers,"
        " national roles and the operator.",
    )


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    total: int
