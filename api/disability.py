"""Disability, graded, as the API reads and writes it (issue #16, deliverable 5).

An offer (a unit, an agrément — the carer's is the agrément's) states per profile a level:
``{"disability": {"tsa": "specialised", "troubles_psychiques_comportement":
"with_support"}}``; it is stored as two disjoint arrays (``disability_specialised``,
``disability_supported``: migration 0018). The former list ``disability_profiles`` is still
accepted on writes — each profile ``with_support``, what "accepts" said — and returned,
deprecated, as the union of both levels, for one version (docs/api.md).
"""

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from api.errors import field_error
from matching.vocabulary import DISABILITY_LEVELS, DISABILITY_SERVICE_KINDS, DisabilityLevel

DisabilityLevelCode = Literal["specialised", "with_support"]
DisabilityServiceKind = Literal["IME", "SESSAD", "DITEP", "IEM", "CAMSP", "CMP", "autre"]
assert set(get_args(DisabilityLevelCode)) == set(DISABILITY_LEVELS)
assert set(get_args(DisabilityServiceKind)) == set(DISABILITY_SERVICE_KINDS)

DISABILITY_DESCRIPTION = (
    "Per disability profile, what the offer states: `specialised` (its project and staff are "
    "built for it) or `with_support` (it takes the child with an outside service's support). "
    "A profile left out is unstated: a child with it is proposed only as the relaxation "
    "`disability_unstated`, after the offers with a word on it."
)
LEGACY_DESCRIPTION = (
    "Deprecated (kept one version): the profiles with a word, whatever the level. On writes "
    "each is `with_support`; give `disability` instead (not both)."
)


def levels(
    disability: Mapping[Any, str] | None,
    legacy: Sequence[str] | None,
    field: str = "disability",
) -> tuple[list[str], list[str]]:
    """``(specialised, supported)``, sorted, from a write's ``disability`` map or its legacy
    ``disability_profiles`` list (each ``with_support``). Both given is a 422 naming
    ``field``: one way to say it."""
    if disability is not None and legacy:
        raise field_error(field, "disability ou disability_profiles (déprécié), pas les deux")
    if disability is None:
        return [], sorted(set(legacy or ()))
    specialised = sorted(p for p, v in disability.items() if v == DisabilityLevel.SPECIALISED)
    supported = sorted(p for p, v in disability.items() if v == DisabilityLevel.WITH_SUPPORT)
    return specialised, supported


def as_out(row: Any) -> dict[str, Any]:
    """The response's ``disability`` map and the deprecated ``disability_profiles`` (their
    union), from a row's two arrays."""
    specialised = list(row["disability_specialised"])
    supported = list(row["disability_supported"])
    disability = {p: DisabilityLevel.SPECIALISED.value for p in specialised}
    disability.update({p: DisabilityLevel.WITH_SUPPORT.value for p in supported})
    return {
        "disability": dict(sorted(disability.items())),
        "disability_profiles": sorted(disability),
    }
