"""Competent authorities at the edge: which authority a parameter, a body or a token names.

Every scope of the API is an authority (``69M``, ``69D``, ``20R``, ``6AE``, ``13``…; see
docs/domain.md, "Competent authorities"), read from the committed referential
(``geo.referential``). Clients that still name a department are understood when that
department has exactly one authority (``13`` → ``13``, ``2A`` → ``20R``, ``67`` → ``6AE``);
``69`` is split between the Métropole de Lyon and the Département du Rhône and is refused with
the two choices. This module is the one place that decides it: routes (query parameters,
bodies), tokens (``api.auth``) and the CLI all call it.
"""

from collections.abc import Sequence
from typing import Any

from api.errors import Invalid
from geo.referential import authorities_of_department, load_authorities, load_departments

DEPARTMENT_PATTERN = r"^(0[1-9]|[1-8][0-9]|9[0-5]|2A|2B|97[1-6])$"
"""A department code as clients write it (``2A``/``2B``, not ``20``; ``69``, not ``69M``)."""
AUTHORITY_MAX_LENGTH = 16
"""Codes have 2 or 3 characters; a longer value up to this is answered with the choices."""


def authority_codes() -> tuple[str, ...]:
    """The codes of every authority, in the referential's (department) order."""
    return tuple(load_authorities())


def is_authority(code: str) -> bool:
    return code in load_authorities()


def describe(codes: Sequence[str]) -> str:
    """``69M (Métropole de Lyon) et 69D (Département du Rhône)``: codes with their names."""
    authorities = load_authorities()
    named = [f"{c} ({authorities[c].name})" if c in authorities else c for c in codes]
    if len(named) < 2:
        return "".join(named)
    return ", ".join(named[:-1]) + " et " + named[-1]


def single_department(authority: str | None) -> str | None:
    """The department of an authority that covers exactly one (``69M`` → ``69``, ``13`` →
    ``13``); None for ``20R``, ``6AE``, an unknown code or None. Geography only."""
    found = load_authorities().get(authority or "")
    if found is None or len(found.departments) != 1:
        return None
    return found.departments[0]


def ambiguity(department: str, field: str = "department") -> dict[str, Any] | None:
    """Why ``department`` names no single authority, as an ``errors[]`` item naming ``field``
    with the ``choices`` (its authorities; for an unknown department, the department codes);
    None when it names exactly one."""
    choices = authorities_of_department(department)
    if len(choices) == 1:
        return None
    if not choices:
        message = f"département {department} inconnu"
        return {"field": field, "message": message, "choices": list(load_departments())}
    # Named in the order a reader expects (the Métropole first); the choices sorted.
    listed = sorted(choices, key=lambda c: (load_authorities()[c].kind == "departement", c))
    message = (
        f"le département {department} relève de {len(choices)} autorités compétentes, "
        f"{describe(listed)} : précisez laquelle (authority)"
    )
    return {"field": field, "message": message, "choices": list(choices)}


def of_department(department: str, field: str = "department") -> str:
    """The one authority of ``department``, or a 422 naming ``field`` with the choices."""
    error = ambiguity(department, field)
    if error is not None:
        raise Invalid(f"{field}: {error['message']}.", errors=[error])
    return authorities_of_department(department)[0]


def check_authority(code: str, field: str = "authority") -> str:
    """``code`` if it is an authority, else a 422 naming ``field`` with the valid codes."""
    if is_authority(code):
        return code
    message = f"autorité compétente {code} inconnue"
    raise Invalid(
        f"{field}: {message}.",
        errors=[{"field": field, "message": message, "choices": list(authority_codes())}],
    )


def resolve_authority(
    authority: str | None, department: str | None, field: str = "authority"
) -> str | None:
    """The authority a request names: ``authority`` (checked; 422 naming ``field`` when
    unknown), else the single authority of ``department`` (422 naming ``department`` with the
    choices when it has several, or none), else None. Given both, the authority must be
    competent in the department (422 naming ``department`` otherwise)."""
    if authority is not None:
        code = check_authority(authority, field)
        if department is not None and department not in load_authorities()[code].departments:
            message = f"l'autorité {code} n'est pas compétente dans le département {department}"
            raise Invalid(
                f"department: {message}.",
                errors=[
                    {
                        "field": "department",
                        "message": message,
                        "choices": list(load_authorities()[code].departments),
                    }
                ],
            )
        return code
    if department is not None:
        return of_department(department)
    return None
