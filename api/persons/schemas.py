"""Bodies of the persons and habilitations API."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

FunctionName = Literal[
    "orientation_officer",
    "ase_manager",
    "pmi_agrement",
    "inspector",
    "establishment_director",
    "establishment_staff",
    "carer",
    "national_analyst",
    "authority_admin",
    "platform_operator",
]


class HabilitationIn(BaseModel):
    """Grant ``function`` to the person ``sub`` (of ``issuer``: the identity provider; the
    service's own by default) on the authority of the path, and for an establishment's or a
    carer's function, on one FINESS or one carer of that authority."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"sub": "a1b2c3", "function": "orientation_officer"}]},
    )
    sub: str = Field(min_length=1, max_length=255, description="The person's `sub` (GET /v1/me).")
    issuer: str | None = Field(None, min_length=1, max_length=255)
    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    function: FunctionName
    finess: str | None = Field(None, min_length=9, max_length=9)
    carer_id: UUID | None = None


class PersonOut(BaseModel):
    id: int
    issuer: str
    sub: str
    display_name: str | None
    email: str | None


class HabilitationOut(BaseModel):
    id: int
    person: PersonOut
    function: str
    function_label: str
    authority: str | None
    finess: str | None
    carer_id: str | None
    granted_by: str
    granted_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None


class HabilitationPage(BaseModel):
    items: list[HabilitationOut]


class GrantOut(BaseModel):
    """A live habilitation of the person (``id``: the value of ``X-Places-Habilitation``)."""

    id: int
    function: str
    function_label: str
    authority: str | None
    finess: str | None
    carer_id: str | None


class MeOut(BaseModel):
    """Who the token names and what they may do now."""

    sub: str
    issuer: str
    person_id: int | None
    display_name: str | None
    email: str | None
    siret: str | None = Field(description="ProConnect: the employer's SIRET.")
    rpps: str | None = Field(description="Pro Santé Connect: the RPPS (SubjectNameID).")
    role: str | None = Field(description="Empty when acting under no habilitation.")
    function: str | None
    authority: str | None
    finess: str | None
    carer_id: str | None
    permissions: list[str]
    habilitations: list[GrantOut]


class SignedOutOut(BaseModel):
    signed_out_at: datetime
