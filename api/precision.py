"""Least data per role for places: a lieu de vie et d'accueil (LVA, FINESS category 462) is
shown at commune precision to whoever does not need its door.

Why: an LVA is a very small structure where the permanent staff live with the children it
takes in — its address is often the staff's own home (domain.md, "Where a place is"). Its
commune is enough to search, compare distances and steer; the street and the exact point
are for the LVA itself, the authority of its territory (its placement service and
administrators: it authorises, places and inspects it) and the platform operator (who keeps
the registry). Everyone else (other placement services, national, other
establishments, carers) gets the commune's point, no street line, and — in search and
optimisation — a distance measured to the commune and rounded to the kilometre, as for
foster carers.

The rule is here once; the registry (``/v1/structures``), FHIR (``Location``,
``Organization``) and search (``/v1/search``, ``/v1/assignments/optimize``) apply it. Search
answers every caller at commune precision for LVAs: its distances are compared across
callers and never need the door. The SQL side is ``point_sql`` / ``rounded_km_sql``.
"""

from collections.abc import Mapping
from typing import Any, Final

from api.auth import Principal
from api.permissions import AUTHORITY_ROLES

COMMUNE_PRECISION_CATEGORIES: Final = frozenset({"462"})
"""FINESS categories shown at commune precision (462: lieu de vie et d'accueil)."""

_CATEGORIES_SQL = "ARRAY[" + ", ".join(f"'{c}'" for c in sorted(COMMUNE_PRECISION_CATEGORIES)) + "]"


def commune_precision(category: str) -> bool:
    """Whether establishments of this category are served at commune precision by default."""
    return category in COMMUNE_PRECISION_CATEGORIES


def exact_location_allowed(
    principal: Principal, *, category: str, finess: str, authority: str | None
) -> bool:
    """Whether ``principal`` may see the exact point and street address of an establishment
    (``authority``: the establishment's competent authority)."""
    if not commune_precision(category):
        return True
    if principal.role == "operator":  # keeps the registry
        return True
    if principal.role == "structure":
        return principal.finess == finess
    if principal.role in AUTHORITY_ROLES:
        return authority is not None and principal.authority == authority
    return False


def point_sql(structure: str, commune: str) -> str:
    """SQL of the point a search may show: the commune's for an LVA, else the structure's
    (``structure`` and ``commune`` are the aliases of ``structures`` and ``communes``)."""
    return (
        f"CASE WHEN {structure}.category = ANY({_CATEGORIES_SQL}) "
        f"THEN {commune}.location ELSE {structure}.location END"
    )


def rounded_km_sql(category: str, metres: str) -> str:
    """SQL of the distance a search may show, in km, from the metres to the searchable point
    (a snapshot's ``location``: an LVA's commune's, migration 0011): rounded to the
    kilometre for an LVA, else ``metres`` / 1000."""
    return (
        f"CASE WHEN {category} = ANY({_CATEGORIES_SQL}) "
        f"THEN round(({metres} / 1000.0)::numeric)::float8 ELSE {metres} / 1000.0 END"
    )


def structure_out(item: Mapping[str, Any], principal: Principal) -> dict[str, Any]:
    """A registry structure as ``principal`` may see it. ``item`` carries the repository's
    ``authority``, ``location`` (exact, with its ``precision``) and ``commune_location``;
    the answer carries ``location`` only."""
    out = {k: v for k, v in item.items() if k not in ("authority", "commune_location")}
    allowed = exact_location_allowed(
        principal, category=item["category"], finess=item["finess"], authority=item["authority"]
    )
    if not allowed and item.get("commune_location") is not None:
        out["location"] = {**item["commune_location"], "precision": "commune"}
    return out


def fhir_row(row: Mapping[str, Any], principal: Principal) -> dict[str, Any]:
    """A FHIR repository row as ``principal`` may see it: for an LVA outside its circle, the
    commune's point, no street line, and a position marked as not address-reliable."""
    out = dict(row)
    allowed = exact_location_allowed(
        principal, category=row["category"], finess=row["finess"], authority=row["authority"]
    )
    if not allowed:
        out["lat"], out["lon"] = row["commune_lat"], row["commune_lon"]
        out["address"] = None
        out["location_precision"] = "commune"
    return out
