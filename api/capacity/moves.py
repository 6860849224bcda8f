"""One truth for capacity: how the workflow takes places and gives them back (capacity's
side of holds, admissions, releases, refusals, expiries and exits).

The rule (also in the README):

* A unit's ``current`` capacity snapshot is the only truth about its places. Every change to
  it — a declaration or a workflow move — writes a ``capacity_declarations`` history row in
  the same transaction, with the same counts and version, so the snapshot always equals the
  last history row.
* A declaration is the establishment's word: the counts it sends replace the previous ones.
  One exception: it cannot declare ``reserved`` lower than the places held through Places on
  that unit right now (holds in status ``held``) ⇒ 422 naming ``reserved``. Reservations the
  establishment makes outside Places come on top of those.
* The workflow never creates nor destroys places (``installed``, ``additional`` and
  ``closed`` belong to the establishment); it moves the request's ``n`` places (one per
  child) between counts of the ``current`` snapshot:

  ============================  =========================  ==============================
  transition                    from                       to
  ============================  =========================  ==============================
  hold                          available (409 if < n)     reserved
  admit                         reserved                   occupied
  release / refuse / expire     reserved                   available
  exit                          occupied                   available
  ============================  =========================  ==============================

  An exit moves at most what is still ``occupied``: if the establishment already declared
  the child gone, that place is already counted available. Each move bumps the version,
  writes the history row (``source`` = the transition, ``declared_by`` = who made it,
  ``system:expiry`` for expiry) and emits ``capacity.updated`` (``source`` = the transition).
* A foster carer's ``available_places`` is the carer's truth. hold: ``available_places -= n``
  (409 if fewer, or if the carer is on leave today; 409 ``reason`` ``agrement_not_valid``
  when their agrément is not valid today — CASF L421-3/L421-6, and the trigger
  ``holds_agrement_valid`` refuses it anyway); admit: no change (the place was taken at
  hold time); release / refuse / expire / exit: ``available_places += n``, capped at the
  agrément capacity — but nothing when the agrément is not valid today (suspended,
  withdrawn, expired: the place is not free, and the trigger would refuse it). Each writes
  a ``carer_declarations`` row and emits ``carer.availability_updated`` (``source`` = the
  transition). Who may hold a carer at all (the employer's openness) is the holds
  service's check, before the move.
* Concurrency: a move locks the snapshot (or carer) row ``FOR UPDATE`` before it checks
  anything; transitions lock hold → request → snapshot/carer, always in that order, so
  concurrent holds on the last place serialize and exactly one wins, without deadlocks.
"""

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg

from api import changes, events
from api.capacity import repository
from api.capacity.schemas import CapacitySnapshot
from api.errors import Conflict, Forbidden, field_error
from api.registry.schemas import FosterCarerOut

Move = Literal["hold", "admit", "release", "refuse", "expire", "exit"]

#: For a unit: which count the places leave, and which they join.
UNIT_MOVES: dict[str, tuple[str, str]] = {
    "hold": ("available", "reserved"),
    "admit": ("reserved", "occupied"),
    "release": ("reserved", "available"),
    "refuse": ("reserved", "available"),
    "expire": ("reserved", "available"),
    "exit": ("occupied", "available"),
}

#: ``source`` of the history rows the workflow writes. A unit's freshness (when did the
#: establishment last speak?) must look at the other sources only.
WORKFLOW_SOURCES: tuple[str, ...] = tuple(UNIT_MOVES)


@dataclass(frozen=True, slots=True)
class Target:
    """A hold's target, resolved: its kind, id, and the department and authority (the unit's
    structure's, or the carer's) whose feed hears of it."""

    kind: Literal["unit", "carer"]
    id: UUID
    department: str
    authority: str
    finess: str | None = None
    structure_id: UUID | None = None
    carer_id: str | None = None
    employing_authority: str | None = None
    """A carer's employer's authority (whose feed also hears of holds on them)."""
    open_to_other_authorities: bool = True
    """A carer: may another authority than ``employing_authority`` hold them."""


async def resolve(conn: asyncpg.Connection, kind: str, target_id: UUID) -> Target:
    """Find the target or refuse with a 422 naming ``target.id``."""
    if kind == "unit":
        row = await conn.fetchrow(
            """
            SELECT u.id, s.id AS structure_id, s.finess, s.department, s.authority
              FROM units u
              JOIN structures s ON s.id = u.structure_id
             WHERE u.id = $1
            """,
            target_id,
        )
        if row is None:
            raise field_error("target.id", f"unité {target_id} inconnue")
        return Target(
            "unit",
            row["id"],
            row["department"],
            row["authority"],
            row["finess"],
            row["structure_id"],
        )
    row = await conn.fetchrow(
        "SELECT id, department, authority, employing_authority, open_to_other_authorities"
        " FROM foster_carers WHERE id = $1",
        target_id,
    )
    if row is None:
        raise field_error("target.id", f"assistant familial {target_id} inconnu")
    return Target(
        "carer",
        row["id"],
        row["department"],
        row["authority"],
        carer_id=str(row["id"]),
        employing_authority=row["employing_authority"],
        open_to_other_authorities=row["open_to_other_authorities"],
    )


def check_may_hold(target: Target, authority: str) -> None:
    """A carer is held by their employer's authority, or by another when the employer
    opened them to others (closed by default for an authority's employees: the law makes
    them its employees). 403 with ``reason`` ``closed_to_other_authorities``: who may hold
    is a right the employer grants, not a state a retry could meet."""
    if target.kind != "carer" or target.open_to_other_authorities:
        return
    if target.employing_authority == authority:
        return
    raise Forbidden(
        f"Assistant familial réservé à son employeur ({target.employing_authority}) : il "
        "n'est pas ouvert aux autres autorités.",
        reason="closed_to_other_authorities",
        employing_authority=target.employing_authority,
    )


async def move(
    conn: asyncpg.Connection, target: Target, transition: Move, places: int, actor: str
) -> None:
    """Apply ``transition`` for ``places`` to the target's capacity, or refuse with 409."""
    if target.kind == "unit":
        await _move_unit(conn, target, transition, places, actor)
    else:
        await _move_carer(conn, target, transition, places, actor)


async def _move_unit(
    conn: asyncpg.Connection, target: Target, transition: Move, places: int, actor: str
) -> None:
    snapshot = await repository.lock_current_snapshot(conn, target.id)
    if snapshot is None:
        # Only reachable for a new hold: any other transition follows a hold, which needed it.
        raise Conflict(
            "Cette unité n'a jamais déclaré sa capacité : aucune place n'est connue comme "
            "disponible."
        )
    source, destination = UNIT_MOVES[transition]
    counts: dict[str, Any] = dict(snapshot)
    if transition == "hold" and counts["available"] < places:
        raise Conflict(
            f"Places insuffisantes : {counts['available']} disponible(s) pour un groupe de "
            f"{places} enfant(s).",
            available=counts["available"],
            requested=places,
        )
    # ``reserved`` always covers the live holds (declarations cannot lower it below them);
    # ``occupied`` may have been lowered by the establishment: move what is there.
    moved = min(places, counts[source])
    counts[source] -= moved
    counts[destination] += moved
    row = await repository.write_current_snapshot(
        conn, target.id, snapshot["version"] + 1, actor, transition, counts
    )
    out = CapacitySnapshot.model_validate(dict(row)).model_dump(mode="json")
    assert target.finess is not None
    await changes.emit(
        conn,
        events.capacity_updated(
            target.department,
            out,
            str(target.structure_id),
            target.finess,
            transition,
            authority=target.authority,
        ),
    )


async def _move_carer(
    conn: asyncpg.Connection, target: Target, transition: Move, places: int, actor: str
) -> None:
    carer = await repository.lock_carer(conn, target.id)
    assert carer is not None  # resolved in this transaction; carers are never deleted
    if transition == "admit":
        return  # the place was taken when the hold was made
    if transition == "hold":
        if not carer["agrement_valid"]:
            raise Conflict(
                f"L'agrément de l'assistant familial n'est pas valide aujourd'hui "
                f"(« {carer['agrement_today']} ») : aucune réservation possible.",
                reason="agrement_not_valid",
                agrement_state=carer["agrement_today"],
            )
        if not carer["not_on_leave"]:
            raise Conflict(
                "L'assistant familial est en congé aujourd'hui (statut « leave ») : aucune "
                "réservation possible.",
                reason="carer_on_leave",
            )
        if carer["available_places"] < places:
            raise Conflict(
                f"Places insuffisantes : {carer['available_places']} disponible(s) pour un "
                f"groupe de {places} enfant(s).",
                available=carer["available_places"],
                requested=places,
            )
        available = carer["available_places"] - places
    elif carer["agrement_valid"]:
        available = min(carer["available_places"] + places, carer["agrement_capacity"])
    else:
        # The agrément is suspended, withdrawn or expired: the place given back is not free.
        available = carer["available_places"]
    row = await repository.write_carer(
        conn,
        target.id,
        available,
        carer["status"],
        carer["status_until"],
        actor,
        transition,
        leave_from=carer["leave_from"],
    )
    out = FosterCarerOut.model_validate(dict(row)).model_dump(mode="json")
    await changes.emit(
        conn,
        events.carer_availability_updated(
            target.department, out, transition, authority=target.authority, before=carer
        ),
    )
