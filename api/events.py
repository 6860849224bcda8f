"""The events of the live feeds: every type, its payload on the authority's feed, and what the
national feed may see of it — defined here once, for every writer (declarations, workflow,
carers, registry, requests, the FINESS import).

Every event belongs to one competent authority (``69M``, ``20R``, ``13``…: who is in charge
of child protection where it happens) and keeps its department: ``capacity.updated`` and
``structure.*`` the structure's, ``carer.availability_updated`` the carer's, ``request.*``
and the hold events the request's (a hold also names its target's department and
authority). The relay publishes it to its authority's feed and to the national one; both
payloads carry ``authority``.

A writer builds its event with one of the functions below and hands it to
``api.changes.emit``; nothing else writes ``outbox_events``. ``FIELDS`` is the schema: the
keys each payload carries (a test checks every event written against it, and
docs/api.md documents it). The national feed is for aggregated steering: it never sees a
file reference, a child, an origin or a free-text reason.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

CAPACITY_UPDATED: Final = "capacity.updated"
CARER_AVAILABILITY_UPDATED: Final = "carer.availability_updated"
STRUCTURE_CREATED: Final = "structure.created"
STRUCTURE_UPDATED: Final = "structure.updated"
REQUEST_CREATED: Final = "request.created"
REQUEST_UPDATED: Final = "request.updated"
HOLD_CREATED: Final = "hold.created"
ADMISSION_RECORDED: Final = "admission.recorded"
HOLD_RELEASED: Final = "hold.released"
HOLD_REFUSED: Final = "hold.refused"
HOLD_EXPIRED: Final = "hold.expired"
EXIT_RECORDED: Final = "exit.recorded"

HOLD_EVENTS: Final = (
    HOLD_CREATED,
    ADMISSION_RECORDED,
    HOLD_RELEASED,
    HOLD_REFUSED,
    HOLD_EXPIRED,
    EXIT_RECORDED,
)

#: ``source`` of a change: who spoke. ``api`` for a declaration or registration through the
#: API, ``finess`` for the FINESS import, else the workflow's transition.
Source = str


@dataclass(frozen=True, slots=True)
class Event:
    """One event to write in the outbox: ``data`` goes to the feed of its ``authority``,
    ``national`` to the national feed."""

    type: str
    department: str
    authority: str
    data: dict[str, Any]
    national: dict[str, Any]


_SNAPSHOT = frozenset(
    {
        "unit_id",
        "temporality",
        "version",
        "declared_at",
        "declared_by",
        "installed",
        "occupied",
        "reserved",
        "closed",
        "available",
        "additional",
        "available_gender",
    }
)
_CAPACITY = _SNAPSHOT | {"structure_id", "finess", "authority", "source"}
_CARER = frozenset(
    {
        "id",
        "department",
        "commune",
        "agrement_capacity",
        "age_min",
        "age_max",
        "care_modes",
        "disability_profiles",
        "status",
        "status_until",
        "available_places",
        "version",
        "declared_at",
        "authority",
        "source",
    }
)
_STRUCTURE = frozenset({"structure_id", "finess", "category", "units", "authority", "source"})
_STRUCTURE_UPDATED = _STRUCTURE | {"unit_added", "units_retired"}
_REQUEST = frozenset(
    {
        "id",
        "department",
        "authority",
        "reference",
        "children",
        "origin",
        "care_mode",
        "urgency",
        "measure",
        "status",
        "days_since_decision",
        "hold",
        "version",
        "created_at",
        "updated_at",
    }
)
_REQUEST_NATIONAL = frozenset(
    {
        "id",
        "department",
        "authority",
        "status",
        "care_mode",
        "urgency",
        "measure_kind",
        "children_count",
    }
)
_REQUEST_UPDATED_NATIONAL = _REQUEST_NATIONAL | {"previous_status", "event"}
_HOLD = frozenset(
    {
        "id",
        "request_id",
        "target",
        "places",
        "status",
        "expires_at",
        "reason",
        "request_status",
        "created_at",
        "updated_at",
        "department",
        "authority",
        "target_department",
        "target_authority",
    }
)

#: type → (authority feed keys, national feed keys).
FIELDS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    CAPACITY_UPDATED: (_CAPACITY, _CAPACITY),
    CARER_AVAILABILITY_UPDATED: (_CARER, _CARER),
    STRUCTURE_CREATED: (_STRUCTURE, _STRUCTURE),
    STRUCTURE_UPDATED: (_STRUCTURE_UPDATED, _STRUCTURE_UPDATED),
    REQUEST_CREATED: (_REQUEST, _REQUEST_NATIONAL),
    REQUEST_UPDATED: (_REQUEST_UPDATED_NATIONAL | {"reference"}, _REQUEST_UPDATED_NATIONAL),
    **{t: (_HOLD, _HOLD - {"reason"}) for t in HOLD_EVENTS},
}


def capacity_updated(
    department: str,
    snapshot: dict[str, Any],
    structure_id: str,
    finess: str,
    source: Source,
    *,
    authority: str,
) -> Event:
    """A unit's snapshot after a declaration (``source`` ``api``) or a workflow move
    (``source`` = the transition); ``department``/``authority``: its structure's."""
    data = {
        **snapshot,
        "structure_id": structure_id,
        "finess": finess,
        "authority": authority,
        "source": source,
    }
    return Event(CAPACITY_UPDATED, department, authority, data, data)


def carer_availability_updated(
    department: str, carer: dict[str, Any], source: Source, *, authority: str
) -> Event:
    """A carer as others may see them (commune level) after a declaration or a move;
    ``department``/``authority``: the carer's."""
    data = {**carer, "authority": authority, "source": source}
    return Event(CARER_AVAILABILITY_UPDATED, department, authority, data, data)


def _structure(
    structure_id: str, finess: str, category: str, units: int, authority: str, source: Source
) -> dict[str, Any]:
    return {
        "structure_id": structure_id,
        "finess": finess,
        "category": category,
        "units": units,
        "authority": authority,
        "source": source,
    }


def structure_created(
    department: str,
    structure_id: str,
    finess: str,
    category: str,
    units: int,
    source: Source,
    *,
    authority: str,
) -> Event:
    data = _structure(structure_id, finess, category, units, authority, source)
    return Event(STRUCTURE_CREATED, department, authority, data, data)


def structure_updated(
    department: str,
    structure_id: str,
    finess: str,
    category: str,
    units: int,
    source: Source,
    unit_added: str | None = None,
    units_retired: list[str] | None = None,
    *,
    authority: str,
) -> Event:
    """``unit_added``: the unit an establishment described; ``units_retired``: the default
    units of a FINESS import it replaced."""
    data = {
        **_structure(structure_id, finess, category, units, authority, source),
        "unit_added": unit_added,
        "units_retired": units_retired or [],
    }
    return Event(STRUCTURE_UPDATED, department, authority, data, data)


def request_national_view(request: Mapping[str, Any]) -> dict[str, Any]:
    """What the national feed may know of a request: no children, no reference, no origin,
    no dates — only what aggregated steering needs. ``request`` is a request row or its API
    view, with its ``authority``."""
    children_count = request.get("children_count")
    if children_count is None:
        children_count = len(request["children"])
    return {
        "id": str(request["id"]),
        "department": request["department"],
        "authority": request["authority"],
        "status": request["status"],
        "care_mode": request["care_mode"],
        "urgency": request["urgency"],
        "measure_kind": request.get("measure_kind") or request["measure"]["kind"],
        "children_count": children_count,
    }


def request_created(request_out: dict[str, Any], *, authority: str) -> Event:
    """The authority sees the request as its API view (with ``authority``: the request's);
    the nation its national view."""
    data = {**request_out, "authority": authority}
    return Event(
        REQUEST_CREATED, request_out["department"], authority, data, request_national_view(data)
    )


def request_updated(request: Mapping[str, Any], to_status: str, history_event: str) -> Event:
    """A status change; ``request`` is the locked row before it (with its ``authority``)."""
    national = {
        **request_national_view(request),
        "status": to_status,
        "previous_status": request["status"],
        "event": history_event,
    }
    data = {**national, "reference": request["reference"]}
    return Event(REQUEST_UPDATED, request["department"], request["authority"], data, national)


def hold_event(
    event_type: str,
    department: str,
    hold_out: dict[str, Any],
    target_department: str,
    *,
    authority: str,
    target_authority: str,
) -> Event:
    """A hold's event on the request's authority's feed (``department``/``authority``: the
    request's; ``target_*``: the unit's structure's or the carer's). The national feed sees
    the flow (who holds where, how many places) but not the free-text reason."""
    assert event_type in HOLD_EVENTS, event_type
    data = {
        **hold_out,
        "department": department,
        "authority": authority,
        "target_department": target_department,
        "target_authority": target_authority,
    }
    national = {k: v for k, v in data.items() if k != "reason"}
    return Event(event_type, department, authority, data, national)
