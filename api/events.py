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
docs/api.md documents it).

The national feed is for aggregated steering (issue #14) of the **offer**: of carers it
sees counts per authority only — no carer id, commune or status of one carer ("authority
69M carers: places +1"); the offer's events (``capacity.updated``, ``structure.*``) keep
their unit and establishment ids: establishments are public. Of **children** it sees
nothing (#18, statistical secrecy on every national view of children): an event about a
request, a hold or a placement has an empty national payload (``NOT_NATIONAL``) and the
relay publishes it on its authority's feed only. Before, those events carried exact counts
per authority ("authority 13: waiting −1, held +1"), which a subscriber could add up into
the exact number of children waiting per authority that ``/v1/stats/children`` hides below
5; national steering reads the children's figures there, with secrecy.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from matching.vocabulary import legacy_care_mode

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
CARER_AGREMENT_UPDATED: Final = "carer.agrement_updated"
PLACEMENT_TO_REVIEW: Final = "placement.to_review"

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


NOT_NATIONAL: Final[dict[str, Any]] = {}
"""The national payload of an event the national feed does not carry (``realtime.bus``
publishes an event with an empty national payload on its authority's feed only)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event to write in the outbox: ``data`` goes to the feed of its ``authority``,
    ``national`` to the national feed (``NOT_NATIONAL``: not there)."""

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
        "age_min_months",
        "age_max_months",
        "timings",
        "publics",
        "formulas",
        "age_min",
        "age_max",
        "care_modes",
        "disability",
        "disability_profiles",
        "status",
        "leave_from",
        "status_until",
        "available_places",
        "preferences",
        "agrement_state",
        "valid_until",
        "employing_authority",
        "open_to_other_authorities",
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
        "timing",
        "public",
        "formula",
        "parent_expecting",
        "care_mode",
        "urgency",
        "measure",
        "separation_ordered",
        "min_distance_km",
        "school",
        "siblings_placed",
        "status",
        "days_since_decision",
        "hold",
        "situation",
        "version",
        "created_at",
        "updated_at",
    }
)
_REQUEST_UPDATED = frozenset(
    {
        "id",
        "department",
        "authority",
        "status",
        "timing",
        "public",
        "formula",
        "parent_expecting",
        "care_mode",
        "urgency",
        "measure_kind",
        "children_count",
        "previous_status",
        "event",
        "reference",
    }
)
_HOLD = frozenset(
    {
        "id",
        "request_id",
        "target",
        "places",
        "status",
        "expires_at",
        "reason",
        "reason_code",
        "request_status",
        "created_at",
        "updated_at",
        "department",
        "authority",
        "placing_authority",
        "target_department",
        "target_authority",
    }
)
#: National view of a carer's change: per authority, the places and the carers by status
#: that moved (no id, commune nor status of the carer).
_CARER_NATIONAL = frozenset(
    {"department", "authority", "available_places", "carer_count", "source"}
)

_AGREMENT = frozenset(
    {
        "carer_id",
        "number",
        "department",
        "commune",
        "issuing_authority",
        "employing_authority",
        "action",
        "state",
        "previous_state",
        "valid_until",
        "capacity",
        "available_places",
        "version",
        "authority",
    }
)
#: National view of an agrément decision: per authority, the carers that moved between
#: states and the free places that went with them — no carer, number nor commune.
_AGREMENT_NATIONAL = frozenset(
    {"department", "authority", "action", "carer_count", "available_places"}
)
_TO_REVIEW = frozenset(
    {
        "placement_id",
        "carer_id",
        "places",
        "agrement_state",
        "action",
        "placing_authority",
        "employing_authority",
        "issuing_authority",
        "department",
        "authority",
    }
)
#: type → (authority feed keys, national feed keys).
FIELDS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    CAPACITY_UPDATED: (_CAPACITY, _CAPACITY),
    CARER_AVAILABILITY_UPDATED: (_CARER, _CARER_NATIONAL),
    STRUCTURE_CREATED: (_STRUCTURE, _STRUCTURE),
    STRUCTURE_UPDATED: (_STRUCTURE_UPDATED, _STRUCTURE_UPDATED),
    REQUEST_CREATED: (_REQUEST, frozenset()),
    REQUEST_UPDATED: (_REQUEST_UPDATED, frozenset()),
    **{t: (_HOLD, frozenset()) for t in HOLD_EVENTS},
    CARER_AGREMENT_UPDATED: (_AGREMENT, _AGREMENT_NATIONAL),
    PLACEMENT_TO_REVIEW: (_TO_REVIEW, frozenset()),
}


def moved(before: str | None, after: str | None, n: int = 1) -> dict[str, int]:
    """``n`` things leaving status ``before`` for ``after``: ``{before: -n, after: +n}``
    (a status that is ``None`` — created, or unchanged — is left out)."""
    if before == after or n == 0:
        return {}
    delta: dict[str, int] = {}
    if before is not None:
        delta[before] = -n
    if after is not None:
        delta[after] = n
    return delta


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
    department: str,
    carer: dict[str, Any],
    source: Source,
    *,
    authority: str,
    before: Mapping[str, Any],
) -> Event:
    """A carer as their authority may see them (commune level) after a declaration or a move;
    ``department``/``authority``: the carer's; ``before``: the carer's row before the change
    (``status``, ``available_places``), for the national feed's counts."""
    data = {**carer, "authority": authority, "source": source}
    national = {
        "department": department,
        "authority": authority,
        "available_places": carer["available_places"] - before["available_places"],
        "carer_count": moved(before["status"], carer["status"]),
        "source": source,
    }
    return Event(CARER_AVAILABILITY_UPDATED, department, authority, data, national)


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


def request_created(request_out: dict[str, Any], *, authority: str) -> Event:
    """The authority sees the request as its API view (with ``authority``: the request's);
    the nation nothing (``NOT_NATIONAL``)."""
    data = {**request_out, "authority": authority}
    return Event(REQUEST_CREATED, request_out["department"], authority, data, NOT_NATIONAL)


def request_updated(request: Mapping[str, Any], to_status: str, history_event: str) -> Event:
    """A status change; ``request`` is the locked row before it (with its ``authority``)."""
    children_count = request.get("children_count")
    if children_count is None:
        children_count = len(request["children"])
    data = {
        "id": str(request["id"]),
        "department": request["department"],
        "authority": request["authority"],
        "status": to_status,
        "timing": request["timing"],
        "public": request["public"],
        "formula": request["formula"],
        "parent_expecting": request["parent_expecting"],
        # Deprecated (one version), derived.
        "care_mode": legacy_care_mode(request["timing"], request["public"], request["formula"]),
        "urgency": request["urgency"],
        "measure_kind": request.get("measure_kind") or request["measure"]["kind"],
        "children_count": children_count,
        "previous_status": request["status"],
        "event": history_event,
        "reference": request["reference"],
    }
    return Event(REQUEST_UPDATED, request["department"], request["authority"], data, NOT_NATIONAL)


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
    request's; ``target_*``: the unit's structure's or the carer's); not on the national
    feed (``NOT_NATIONAL``: the flows between authorities are ``/v1/stats/flows``, with
    secrecy)."""
    data = {
        **hold_out,
        "department": department,
        "authority": authority,
        "placing_authority": authority,
        "target_department": target_department,
        "target_authority": target_authority,
    }
    return Event(event_type, department, authority, data, NOT_NATIONAL)


def carer_agrement_updated(
    agrement: Mapping[str, Any],
    action: str,
    previous_state: str | None,
    places_before: int,
    *,
    authority: str,
    department: str,
    counted: bool = True,
) -> Event:
    """An issuer's decision on an agrément (``action``: register, edit, suspend, reinstate,
    withdraw, renewal_request), one event for the feed of ``authority`` — the issuer's, and
    the employing authority's when it is another (the caller emits one per feed).
    ``agrement`` is the row after the change (``api.agrements.repository.COLUMNS``); the
    authority's payload names the carer at commune level, the national one counts carers that
    moved between states (``previous_state`` None: a new carer) and the free places — on the
    issuer's event only (``counted``): the employer's copy counts nothing, so that the nation
    sums each carer once."""
    data = {
        "carer_id": str(agrement["carer_id"]),
        "number": agrement["number"],
        "department": agrement["department"],
        "commune": agrement["commune"],
        "issuing_authority": agrement["issuing_authority"],
        "employing_authority": agrement["employing_authority"],
        "action": action,
        "state": agrement["state"],
        "previous_state": previous_state,
        "valid_until": agrement["valid_until"].isoformat(),
        "capacity": agrement["capacity"],
        "available_places": agrement["available_places"],
        "version": agrement["version"],
        "authority": authority,
    }
    national = {
        "department": department,
        "authority": authority,
        "action": action,
        "carer_count": moved(previous_state, agrement["state"]) if counted else {},
        "available_places": agrement["available_places"] - places_before if counted else 0,
    }
    return Event(CARER_AGREMENT_UPDATED, department, authority, data, national)


def placement_to_review(
    placement: Mapping[str, Any],
    action: str,
    *,
    authority: str,
    department: str,
) -> Event:
    """A child placed with a carer whose agrément ``action`` (suspend, withdraw) made not
    valid: for the feed of ``authority`` (the placing authority's, or the employing one's).
    No child, request nor reference in it; not on the national feed (``NOT_NATIONAL``)."""
    data = {
        "placement_id": str(placement["placement_id"]),
        "carer_id": str(placement["carer_id"]),
        "places": placement["places"],
        "agrement_state": placement["agrement_state"],
        "action": action,
        "placing_authority": placement["placing_authority"],
        "employing_authority": placement["employing_authority"],
        "issuing_authority": placement["issuing_authority"],
        "department": department,
        "authority": authority,
    }
    return Event(PLACEMENT_TO_REVIEW, department, authority, data, NOT_NATIONAL)


def for_employer(event: Event, employing_authority: str) -> Event:
    """The copy of a hold event for the authority that employs the carer held, when it is
    not the holding one (#15: an employer learns, live, that another authority holds its
    carer). Same type and payload on its feed, ``authority`` being that feed's and
    ``placing_authority`` the holder's; like the original, not on the national feed."""
    data = {**event.data, "authority": employing_authority}
    return Event(event.type, event.department, employing_authority, data, NOT_NATIONAL)
