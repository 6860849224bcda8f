"""Who may do what: the one table of functions, roles and permissions.

A person's habilitation names a **function** on a territory (docs/domain.md, "Persons and
habilitations", shows this table as a matrix). Each function belongs to a **role** — the kind
of territory it acts on and how the services check scope (``department`` and
``authority_admin``: one authority; ``structure``: one FINESS; ``carer``: one carer;
``national`` and ``operator``: none) — and holds a set of **permissions**, which the routes
require (``api.auth.require``). Nothing else in the code decides what a function may do.

Local tokens (``places token``, tests, benchmarks; only with ``PLACES_LOCAL_ROLES=true``) carry a
role and no function: they get the union of the permissions of the functions of that role,
which is what each role could do before persons existed.
"""

from dataclasses import dataclass
from typing import Literal

Role = Literal["structure", "carer", "department", "national", "authority_admin", "operator"]
ROLES: tuple[str, ...] = (
    "structure",
    "carer",
    "department",
    "national",
    "authority_admin",
    "operator",
)
AUTHORITY_ROLES = frozenset({"department", "authority_admin"})
"""Roles scoped to one competent authority (the token's or the habilitation's)."""
SCOPE_CLAIM = {
    "structure": "finess",
    "carer": "carer_id",
    "department": "authority",
    "authority_admin": "authority",
}
"""The territory each role is scoped by: the claim of a local token, the column of a
habilitation."""

PERMISSIONS: dict[str, str] = {
    "offer.read": "Read the offer: registry, units' capacity, FHIR, open data, authorities.",
    "capacity.declare": "Declare capacity: own units (FINESS), own availability (carer), the"
    " carers of the authority (authority roles), any (operator).",
    "unit.describe": "Describe a unit of the establishment (operator: any).",
    "registry.manage": "Register establishments, import the FINESS referential.",
    "carers.read": "List the carers of the authority.",
    "agrement.manage": "Register carers and decide on their agrément (edit, suspend, reinstate,"
    " withdraw): the authority that issued it (CASF L421-3, L421-6).",
    "placement": "Children's data of the authority: placement requests, holds, admissions,"
    " search, assignment plans, the authority's live feed.",
    "holds.respond": "See and refuse the holds placed on one's own units or on oneself.",
    "stats.read": "Aggregated statistics.",
    "feed.national": "The national live feed (aggregates, no child-level fields).",
    "audit.read": "The authority's audit trail (who read or changed its data).",
    "habilitations.manage": "Grant and revoke habilitations: an authority administrator on"
    " their authority (any function but operator and authority administrator); the platform"
    " operator grants authority administrators.",
    "metrics.read": "The service's operational metrics (GET /metrics: latencies, backlogs,"
    " pools; no personal data).",
}


@dataclass(frozen=True, slots=True)
class Function:
    label: str
    """French label, as shown to users."""
    role: str
    permissions: frozenset[str]


def _f(label: str, role: str, *permissions: str) -> Function:
    unknown = set(permissions) - PERMISSIONS.keys()
    assert not unknown, unknown
    return Function(label, role, frozenset(("offer.read", *permissions)))


_DEPARTMENT_WORK = ("capacity.declare", "carers.read", "placement", "stats.read")
FUNCTIONS: dict[str, Function] = {
    "orientation_officer": _f("chargé·e d'orientation", "department", *_DEPARTMENT_WORK),
    "ase_manager": _f("cadre ASE", "department", *_DEPARTMENT_WORK, "audit.read"),
    "pmi_agrement": _f(
        "service d'agrément PMI",
        "department",
        "capacity.declare",
        "carers.read",
        "agrement.manage",
        "stats.read",
    ),
    "inspector": _f("inspecteur·rice", "department", "carers.read", "stats.read", "audit.read"),
    "establishment_director": _f(
        "directeur·rice d'établissement",
        "structure",
        "capacity.declare",
        "unit.describe",
        "holds.respond",
    ),
    "establishment_staff": _f(
        "personnel d'établissement", "structure", "capacity.declare", "holds.respond"
    ),
    "carer": _f("assistant·e familial·e", "carer", "capacity.declare", "holds.respond"),
    "national_analyst": _f("analyste national·e", "national", "stats.read", "feed.national"),
    "authority_admin": _f(
        "administrateur·rice d'autorité",
        "authority_admin",
        *_DEPARTMENT_WORK,
        "agrement.manage",
        "audit.read",
        "habilitations.manage",
    ),
    "platform_operator": _f(
        "opérateur·rice de la plateforme",
        "operator",
        "capacity.declare",
        "unit.describe",
        "registry.manage",
        "stats.read",
        "feed.national",
        "habilitations.manage",
        "metrics.read",
    ),
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    role: frozenset().union(*(f.permissions for f in FUNCTIONS.values() if f.role == role))
    for role in ROLES
}
"""A local role token's permissions: the union of its role's functions'."""

ADMINISTRATIVE_FUNCTIONS = frozenset({"authority_admin", "platform_operator"})
"""Functions an authority administrator may not grant: only the operator grants authority
administrators, and operators are made with ``places``' command line (database access)."""


def permissions(role: str, function: str | None) -> frozenset[str]:
    """What a principal may do: its function's permissions, or its role's (local tokens)."""
    if function is not None:
        return FUNCTIONS[function].permissions
    return ROLE_PERMISSIONS.get(role, frozenset())


def roles_with(permission: str) -> frozenset[str]:
    """The roles of which some function holds ``permission`` (documentation, OpenAPI)."""
    return frozenset(f.role for f in FUNCTIONS.values() if permission in f.permissions)
