"""The needs vocabulary in the API: timing, public and formula, ages in months (#16).

One place for the fields every body shares — a request's or a search's need
(:class:`NeedIn`), a child's age (:class:`ChildAgeIn`), an offer's (a unit's, an agrément's,
a carer's preferences: :class:`OfferNeedsIn`) — and for the deprecated forms they still
accept for one version: ``care_mode`` (a request's single mode of old), ``care_modes`` and
ages in years (``age_min``/``age_max``), mapped by ``matching.vocabulary``'s one legacy
mapping. Responses carry the new fields and, deprecated, the old ones derived
(:func:`legacy_offer_fields`, :func:`legacy_need_fields`).

Errors name the field: a rule that spans fields raises a ``ValidationError`` located at the
field it blames (``field_invalid``), so the 422 says ``care_mode`` or ``timing``, not
``body``.
"""

from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from api.codes import CARE_MODES, FORMULAS, PUBLICS, TIMINGS
from matching.vocabulary import (
    LEGACY_CARE_MODE,
    MAX_AGE_MONTHS,
    legacy_care_mode,
    legacy_care_modes,
    legacy_offer_sets,
    months_to_years,
    years_to_months,
)

Timing = Literal["urgence", "durable", "sequentiel"]
Public = Literal["mineur", "mna", "jeune_majeur"]
Formula = Literal["enfant", "parent_enfant"]
LegacyCareMode = Literal["urgence", "durable", "sequentiel", "mere_enfant", "mna", "jeune_majeur"]

assert set(get_args(Timing)) == set(TIMINGS)
assert set(get_args(Public)) == set(PUBLICS)
assert set(get_args(Formula)) == set(FORMULAS)
assert set(get_args(LegacyCareMode)) == set(CARE_MODES)

DEPRECATED: dict[str, Any] = {"deprecated": True}
"""Marks a field deprecated in the OpenAPI (the legacy forms, kept one version) without the
runtime warning of pydantic's ``deprecated=``, which every internal read would raise."""

NEEDS_COLUMNS = ("age_min_months", "age_max_months", "timings", "publics", "formulas")
"""An offer's needs columns (units, an agrément; ``preferred_`` + each for preferences)."""

_DEPRECATED_MODE = "Deprecated (one version): use `timing`, `public` and `formula`."
_DEPRECATED_MODES = "Deprecated (one version): use `timings`, `publics` and `formulas`."
_DEPRECATED_YEARS = "Deprecated (one version): years; use the `_months` field."


def field_invalid(title: str, field: str, message: str) -> ValidationError:
    """A validation error located at ``field`` (raised from a model validator)."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", message),
                loc=(field,),
                input=None,
            )
        ],
    )


class ChildAgeIn(BaseModel):
    """A child's age: ``age`` in completed years or ``age_months`` (exactly one). Years are
    taken as the youngest of that year (``age * 12``); below 3 years give months."""

    age: int | None = Field(
        default=None, ge=0, le=21, description="Age in completed years (0–21); or `age_months`."
    )
    age_months: int | None = Field(
        default=None,
        ge=0,
        le=MAX_AGE_MONTHS,
        description="Age in completed months (0–263), the truth: a pouponnière takes a child "
        "under 36 months. Exactly one of `age` and `age_months`.",
    )

    @model_validator(mode="after")
    def _one_age(self) -> "ChildAgeIn":
        if (self.age is None) == (self.age_months is None):
            raise field_invalid(
                type(self).__name__, "age_months", "exactement un de age ou age_months"
            )
        if self.age_months is None:
            assert self.age is not None
            self.age_months = self.age * 12
        self.age = None
        return self

    @property
    def months(self) -> int:
        """The age in months (resolved)."""
        assert self.age_months is not None
        return self.age_months


class NeedIn(BaseModel):
    """A request's or a search's need on three axes, with the deprecated ``care_mode``."""

    timing: Timing | None = Field(
        default=None,
        description="urgence · durable · sequentiel. Required unless the deprecated "
        "`care_mode` is given.",
    )
    public: Public | None = Field(
        default=None, description="mineur (default) · mna · jeune_majeur (18–21)."
    )
    formula: Formula | None = Field(
        default=None,
        description="enfant (default) · parent_enfant (the child with a parent: centre "
        "parental, CASF L222-5 4° and L222-5-3).",
    )
    parent_expecting: bool = Field(
        default=False,
        description="A future parent (formula `parent_enfant` only, CASF L222-5-3): the "
        "request may have no child yet; the expected child takes one place at 0 months.",
    )
    care_mode: LegacyCareMode | None = Field(
        default=None,
        json_schema_extra=DEPRECATED,
        description=_DEPRECATED_MODE + " Mapped: mere_enfant → (durable, mineur, "
        "parent_enfant), mna → (durable, mna, enfant), jeune_majeur → (durable, jeune_majeur, "
        "enfant), urgence / durable / sequentiel → (that timing, mineur, enfant). Given with "
        "a new field that says otherwise: 422 naming `care_mode`.",
    )

    @model_validator(mode="after")
    def _resolve_need(self) -> "NeedIn":
        title = type(self).__name__
        if self.care_mode is not None:
            mapped = LEGACY_CARE_MODE[self.care_mode]
            for name, value in zip(("timing", "public", "formula"), mapped, strict=True):
                given = getattr(self, name)
                if given is not None and given != value:
                    raise field_invalid(
                        title,
                        "care_mode",
                        f"care_mode (déprécié) {self.care_mode} contredit {name}={given}",
                    )
                setattr(self, name, str(value))
        if self.timing is None:
            raise field_invalid(title, "timing", "champ requis (ou care_mode, déprécié)")
        self.public = self.public or "mineur"
        self.formula = self.formula or "enfant"
        if self.parent_expecting and self.formula != "parent_enfant":
            raise field_invalid(
                title,
                "parent_expecting",
                f"seulement en formule parent_enfant (formule {self.formula})",
            )
        children = getattr(self, "children", None)
        if children is not None and not children and not self.parent_expecting:
            raise field_invalid(title, "children", "au moins un enfant (ou parent_expecting)")
        self.care_mode = None
        return self

    def need_fields(self) -> tuple[str, str, str]:
        """``(timing, public, formula)``, resolved."""
        assert self.timing is not None and self.public is not None and self.formula is not None
        return self.timing, self.public, self.formula


class OfferNeedsIn(BaseModel):
    """What an offer takes (a unit, an agrément, a carer's preferences): sets of codes and
    ages in months, with the deprecated ``care_modes`` and years still accepted.

    ``_required``: every field must end up known (creation); otherwise they stay None when
    not given (a PATCH). ``_default_months``: the age band when none is given.
    """

    _required: ClassVar[bool] = True
    _default_months: ClassVar[tuple[int, int] | None] = None

    age_min_months: int | None = Field(default=None, ge=0, le=MAX_AGE_MONTHS)
    age_max_months: int | None = Field(
        default=None,
        ge=0,
        le=MAX_AGE_MONTHS,
        description="Ages in completed months, both bounds included (a pouponnière's or a "
        "centre parental's unit: at most 35).",
    )
    timings: list[Timing] | None = Field(default=None, min_length=1, max_length=3)
    publics: list[Public] | None = Field(default=None, min_length=1, max_length=3)
    formulas: list[Formula] | None = Field(default=None, min_length=1, max_length=2)
    age_min: int | None = Field(default=None, ge=0, le=21, json_schema_extra=DEPRECATED)
    age_max: int | None = Field(
        default=None,
        ge=0,
        le=21,
        json_schema_extra=DEPRECATED,
        description=_DEPRECATED_YEARS + " `age_max` y is `age_max_months` y×12+11.",
    )
    care_modes: list[LegacyCareMode] | None = Field(
        default=None,
        min_length=1,
        json_schema_extra=DEPRECATED,
        description=_DEPRECATED_MODES + " Mapped so that every request it matched still "
        "matches (docs/domain.md, legacy mapping).",
    )

    @model_validator(mode="after")
    def _resolve_offer(self) -> "OfferNeedsIn":
        title = type(self).__name__
        blamed = "age_min_months"
        for years, months in (("age_min", "age_min_months"), ("age_max", "age_max_months")):
            value = getattr(self, years)
            if value is None:
                continue
            if years == "age_min":
                blamed = "age_min"
            if getattr(self, months) is not None:
                raise field_invalid(title, years, f"déprécié : donner {months} seul")
            low, high = years_to_months(value, value)
            setattr(self, months, low if years == "age_min" else high)
            setattr(self, years, None)
        if self.care_modes is not None:
            for name in ("timings", "publics", "formulas"):
                if getattr(self, name) is not None:
                    raise field_invalid(title, "care_modes", f"déprécié : donner {name} seul")
            timings, publics, formulas = legacy_offer_sets(self.care_modes)
            self.timings = list(timings)  # type: ignore[arg-type]
            self.publics = list(publics)  # type: ignore[arg-type]
            self.formulas = list(formulas)  # type: ignore[arg-type]
            self.care_modes = None
        if self._default_months is not None:
            if self.age_min_months is None:
                self.age_min_months = self._default_months[0]
            if self.age_max_months is None:
                self.age_max_months = self._default_months[1]
        if self._required:
            for name in ("age_min_months", "age_max_months", "timings", "publics", "formulas"):
                if getattr(self, name) is None:
                    raise field_invalid(title, name, "champ requis")
        if (
            self.age_min_months is not None
            and self.age_max_months is not None
            and self.age_min_months > self.age_max_months
        ):
            raise field_invalid(title, blamed, "âge minimum supérieur à l'âge maximum")
        for name in ("timings", "publics", "formulas"):  # stored sorted, once each
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, sorted(set(value)))
        return self

    def offer_values(self) -> dict[str, Any]:
        """The resolved columns (only those known)."""
        return {n: getattr(self, n) for n in NEEDS_COLUMNS if getattr(self, n) is not None}


def legacy_offer_fields(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The deprecated ``age_min``/``age_max`` (years, floor) and ``care_modes`` of an offer,
    derived from its new columns (``prefix``: ``preferred_`` for a carer's preferences)."""
    p = prefix
    out = dict(data)
    if f"{p}age_min_months" in out:
        out.setdefault(f"{p}age_min", months_to_years(out[f"{p}age_min_months"]))
        out.setdefault(f"{p}age_max", months_to_years(out[f"{p}age_max_months"]))
    if f"{p}timings" in out:
        modes = legacy_care_modes(out[f"{p}timings"], out[f"{p}publics"], out[f"{p}formulas"])
        out.setdefault(f"{p}care_modes", sorted(modes))
    return out


def legacy_need_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A request's deprecated ``care_mode`` and each child's ``age`` (years), derived."""
    out = dict(data)
    if "timing" in out:
        out.setdefault("care_mode", legacy_care_mode(out["timing"], out["public"], out["formula"]))
    if isinstance(out.get("children"), list):
        out["children"] = [
            {**c, "age": months_to_years(c["age_months"])}
            if isinstance(c, dict) and "age_months" in c
            else c
            for c in out["children"]
        ]
    return out


class OfferNeedsOut(BaseModel):
    """An offer's needs fields in responses, the deprecated ones derived."""

    age_min_months: int
    age_max_months: int
    timings: list[str]
    publics: list[str]
    formulas: list[str]
    age_min: int = Field(json_schema_extra=DEPRECATED, description=_DEPRECATED_YEARS)
    age_max: int = Field(json_schema_extra=DEPRECATED, description=_DEPRECATED_YEARS)
    care_modes: list[str] = Field(json_schema_extra=DEPRECATED, description=_DEPRECATED_MODES)

    @model_validator(mode="before")
    @classmethod
    def _derive_legacy(cls, data: Any) -> Any:
        return legacy_offer_fields(data) if isinstance(data, dict) else data
