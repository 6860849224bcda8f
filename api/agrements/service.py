"""Agréments, decided by the authority that issued them (CASF L421-3 to L421-6).

Who may do what:

* **Writes** (register, edit, suspend, reinstate, withdraw) need ``agrement.manage`` (the
  PMI agrément service, the authority's administrator) *and* the principal's authority must
  be the issuer — the competent authority of the carer's home commune (``authority``).
  Anyone else gets 403: another authority, the carer, the employer, the placement service's
  other functions, the platform operator (agréments are not child data, but they are the
  department's decisions, never the operator's).
* **Renewal request**: the carer themself, or the issuer.
* **Reads**: the issuer (``carers.read``), the carer themself, the employer (the employing
  authority with ``carers.read``, or the placement service whose FINESS is the employer).

Every write is one transaction through ``api.changes``: Idempotency-Key claimed first
(a replay returns the stored answer, even after the version moved on), If-Match checked on
the locked row (428 when missing, 409 when stale), the change, an audit entry
(``agrement.<action>``) and ``carer.agrement_updated`` on the issuer's feed and, when it is
another, the employing authority's.

Suspension and withdrawal take their consequences in the same transaction: the free places
go to 0 (the trigger of 0012 refuses the state change otherwise); the holds still pending
on the carer are released through the holds workflow (``api.holds.service.apply_locked``,
coded reason ``agrement_suspendu`` / ``agrement_retire``: the request goes back to waiting,
its history row and the hold's events reach the holding authority's feed); children already
placed there become "to review" (``GET /v1/placements/to-review``) and
``placement.to_review`` tells the placing and the employing authorities' feeds.

Lock order — the workflow's, hold → request → carer, so that a suspension and a transition
on one of the carer's holds cannot deadlock: the pending holds are locked first (id
order), each is released (which locks its request, then the carer), and only then is the
carer's row locked for the decision. A hold created between the first lock and the carer's
(it had to wait for nothing we held) would escape the release: after the carer's lock the
pending holds are counted again, and if one appeared the transaction is rolled back and run
again (``_ATTEMPTS``); once the carer is locked, no new hold can be made on them.
"""

from collections.abc import Awaitable, Callable, Mapping
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from api import changes, disability, events
from api.agrements import repository
from api.agrements.schemas import (
    AgrementIn,
    AgrementPatch,
    RenewalIn,
    SuspendIn,
    WithdrawIn,
)
from api.auth import Principal
from api.authorities import single_department
from api.capacity import repository as capacity_repository
from api.changes import Idempotency, Written
from api.codes import HOLD_RELEASE_REASONS
from api.errors import Conflict, Forbidden, NotFound, PreconditionRequired, field_error
from api.holds import service as holds_service
from api.needs import NEEDS_COLUMNS, legacy_offer_fields
from api.registry.schemas import FosterCarerOut
from geo.bounds import in_france
from geo.finess import is_valid_finess

OBJECT_TYPE = "agrement"
AGREMENT_YEARS = 5
"""CASF L421-3 (and R421-…): an agrément is granted for five years."""
MAX_CAPACITY_WITHOUT_DEROGATION = 3
"""CASF L421-5: three children at most, unless a derogation says otherwise."""
SUSPENSION_MONTHS = 4
"""CASF L421-6: an emergency suspension lasts four months at most."""
PLACEMENT_SERVICE_CATEGORY = "236"
"""FINESS category of a private placement service (service de placement familial)."""
_ATTEMPTS = 3


def add_months(day: date, months: int) -> date:
    """``day`` plus whole months, the last day of the month when it has no such day (as
    PostgreSQL's ``date + interval``: 2024-02-29 + 5 years = 2029-02-28)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, d))
        except ValueError:
            continue
    raise AssertionError("unreachable")


class _HoldAppeared(Exception):
    """A hold was made on the carer between the holds' lock and the carer's: run again."""


# --- representation ------------------------------------------------------------------------


def agrement_out(row: asyncpg.Record) -> dict[str, Any]:
    """The contract's ``AgrementOut`` (JSON-ready): never the home's location."""

    def day(value: date | None) -> str | None:
        return value.isoformat() if value is not None else None

    if row["employer_structure"] is not None:
        employer: dict[str, Any] = {
            "kind": "structure",
            "structure_id": str(row["employer_structure"]),
            "finess": row["employer_finess"],
            "name": row["employer_name"],
        }
    else:
        employer = {"kind": "authority", "authority": row["employer_authority"]}
    return legacy_offer_fields(
        {
            "carer_id": str(row["carer_id"]),
            "number": row["number"],
            "issuing_authority": row["issuing_authority"],
            "department": row["agrement_department"],
            "commune": row["commune"],
            "issued_on": day(row["issued_on"]),
            "valid_until": day(row["valid_until"]),
            "capacity": row["capacity"],
            "derogation": None
            if row["derogation_children"] is None
            else {
                "children": row["derogation_children"],
                "reason": row["derogation_reason"],
                "until": day(row["derogation_until"]),
            },
            "age_min_months": row["age_min_months"],
            "age_max_months": row["age_max_months"],
            "timings": list(row["timings"]),
            "publics": list(row["publics"]),
            "formulas": list(row["formulas"]),
            "disability": disability.as_out(row)["disability"],
            "state": row["state"],
            "suspension": None
            if row["suspended_from"] is None
            else {
                "from": day(row["suspended_from"]),
                "until": day(row["suspended_until"]),
                "reason": row["suspension_reason"],
            },
            "withdrawal": None
            if row["withdrawn_on"] is None
            else {"on": day(row["withdrawn_on"]), "reason": row["withdrawal_reason"]},
            "renewal_requested_on": day(row["renewal_requested_on"]),
            "employer": employer,
            "open_to_other_authorities": row["open_to_other_authorities"],
            "version": row["version"],
        }
    )


# --- rules -------------------------------------------------------------------------------


def check_terms(terms: dict[str, Any]) -> None:
    """The agrément's terms as the law bounds them (422 naming the field): the dates in
    order, at most three children without a derogation (CASF L421-5), the derogation's
    number of children covering the capacity and ending within the agrément, the ages in
    order. Six at most is the schema's (``capacity`` ≤ 6)."""
    if terms["valid_until"] <= terms["issued_on"]:
        raise field_error("valid_until", "doit être postérieure à la date de délivrance")
    capacity = terms["capacity"]
    children = terms["derogation_children"]
    if capacity > MAX_CAPACITY_WITHOUT_DEROGATION and children is None:
        raise field_error(
            "capacity",
            "au-delà de 3 enfants, une dérogation est requise (CASF L421-5)",
        )
    if children is not None and children < capacity:
        raise field_error(
            "derogation.children",
            f"la dérogation ({children} enfants) doit couvrir la capacité ({capacity})",
        )
    until = terms["derogation_until"]
    if until is not None and until > terms["valid_until"]:
        raise field_error("derogation.until", "au-delà de la fin de validité de l'agrément")
    if until is not None and until < terms["issued_on"]:
        raise field_error("derogation.until", "antérieure à la délivrance de l'agrément")
    if terms["age_min_months"] > terms["age_max_months"]:
        raise field_error("age_min_months", "âge minimum supérieur à l'âge maximum")


def _derogation(body: AgrementIn | AgrementPatch) -> dict[str, Any]:
    d = body.derogation
    return {
        "derogation_children": d.children if d else None,
        "derogation_reason": d.reason if d else None,
        "derogation_until": d.until if d else None,
    }


def require_issuer(principal: Principal, agrement: asyncpg.Record) -> None:
    """The issuing authority's agrément service or administrator, nobody else."""
    if (
        principal.for_authority
        and principal.authority == agrement["issuing_authority"]
        and principal.may("agrement.manage")
    ):
        return
    raise Forbidden(
        f"Seule l'autorité qui a délivré l'agrément ({agrement['issuing_authority']}) en "
        "décide, par son service d'agrément."
    )


def may_read(principal: Principal, agrement: asyncpg.Record) -> bool:
    """The issuer, the carer themself, the employer (authority or placement service)."""
    if principal.role == "carer":
        return principal.carer_id == str(agrement["carer_id"])
    if principal.role == "structure":
        return principal.finess is not None and principal.finess == agrement["employer_finess"]
    if principal.for_authority and principal.may("carers.read"):
        return principal.authority in (
            agrement["issuing_authority"],
            agrement["employing_authority"],
        )
    return False


def _version(if_match: int | None) -> int:
    if if_match is None:
        raise PreconditionRequired(
            "If-Match: en-tête requis (la version de l'agrément, son ETag).",
            errors=[{"field": "If-Match", "message": "required"}],
        )
    return if_match


def _check_version(agrement: asyncpg.Record, if_match: int) -> None:
    if agrement["version"] != if_match:
        raise Conflict(
            f"Version périmée : version courante de l'agrément {agrement['version']}, "
            f"If-Match {if_match}. Rechargez puis recommencez.",
            current_version=agrement["version"],
        )


# --- the one write path ------------------------------------------------------------------


async def _emit_agrement(
    conn: asyncpg.Connection,
    after: asyncpg.Record,
    action: str,
    previous_state: str | None,
    places_before: int,
) -> None:
    """``carer.agrement_updated`` on the issuer's feed, and the employing authority's when
    it is another."""
    feeds = [(after["issuing_authority"], after["department"])]
    if after["employing_authority"] != after["issuing_authority"]:
        employer = after["employing_authority"]
        feeds.append((employer, single_department(employer) or after["department"]))
    for i, (authority, department) in enumerate(feeds):
        await changes.emit(
            conn,
            events.carer_agrement_updated(
                after,
                action,
                previous_state,
                places_before,
                authority=authority,
                department=department,
                counted=i == 0,
            ),
        )


async def _carer_part_moved(
    conn: asyncpg.Connection,
    principal: Principal,
    before: asyncpg.Record,
    after: asyncpg.Record,
    source: str,
) -> None:
    """When a decision changed the carer's own part (free places, preferences clipped),
    that part gets its history row and new version, and ``carer.availability_updated`` —
    as any other move of a carer's places (``api.capacity.moves``)."""
    changed = any(
        before[k] != after[k]
        for k in (
            "available_places",
            "preferred_age_min_months",
            "preferred_age_max_months",
            "preferred_timings",
            "preferred_publics",
            "preferred_formulas",
        )
    )
    if not changed:
        return
    row = await capacity_repository.write_carer(
        conn,
        after["carer_id"],
        after["available_places"],
        after["status"],
        after["status_until"],
        principal.sub,
        source,
    )
    out = FosterCarerOut.model_validate(dict(row)).model_dump(mode="json")
    await changes.emit(
        conn,
        events.carer_availability_updated(
            after["department"],
            out,
            source,
            authority=after["issuing_authority"],
            before=before,
        ),
    )


async def _finish(
    conn: asyncpg.Connection,
    principal: Principal,
    idempotency: Idempotency | None,
    before: asyncpg.Record | None,
    action: str,
    detail: dict[str, Any],
    status: int = 200,
) -> Written:
    """After the change: the carer's part, the events, the audit entry, the stored answer."""
    carer_id = detail["carer_id"]
    after = await repository.get(conn, carer_id)
    assert after is not None
    if before is not None:
        await _carer_part_moved(conn, principal, before, after, f"agrement.{action}")
        after = await repository.get(conn, carer_id)
        assert after is not None
    await _emit_agrement(
        conn,
        after,
        action,
        before["state"] if before is not None else None,
        before["available_places"] if before is not None else 0,
    )
    await changes.audit(
        conn,
        principal,
        f"agrement.{action}",
        OBJECT_TYPE,
        str(carer_id),
        after["department"],
        {**detail, "carer_id": str(carer_id), "version": after["version"]},
        authority=after["issuing_authority"],
    )
    return await changes.store(conn, principal, idempotency, Written(agrement_out(after), status))


# --- register ----------------------------------------------------------------------------


async def register(
    pool: asyncpg.Pool, principal: Principal, body: AgrementIn, idempotency: Idempotency | None
) -> Written:
    """A new carer, as their issuing authority registers them: the agrément's terms, the
    home (kept to place them in their commune, never returned), the employer. No free place
    until the carer declares them; ``declared_by`` is the registering principal."""
    valid_until = body.valid_until or add_months(body.issued_on, 12 * AGREMENT_YEARS)
    terms = {
        "issued_on": body.issued_on,
        "valid_until": valid_until,
        "capacity": body.capacity,
        **body.offer_values(),
        **_derogation(body),
    }
    check_terms(terms)
    if not in_france(body.home.lat, body.home.lon):
        raise field_error("home", "coordonnées hors de France (métropole et outre-mer)")
    employer = body.employer
    if employer is not None and (employer.authority is None) == (employer.finess is None):
        raise field_error("employer", "une autorité ou un FINESS de service de placement, un seul")
    if (
        employer is not None
        and employer.finess is not None
        and not is_valid_finess(employer.finess)
    ):
        raise field_error("employer", "numéro FINESS invalide (clé de contrôle)")
    async with pool.acquire() as conn, conn.transaction():
        commune = await repository.commune(conn, body.commune)
        if commune is None:
            raise field_error("commune", f"commune INSEE {body.commune} inconnue")
        if not (principal.for_authority and principal.authority == commune["authority"]):
            raise Forbidden(
                f"L'agrément d'un assistant familial de la commune {body.commune} est délivré "
                f"par l'autorité {commune['authority']}, pas par celle du jeton.",
                errors=[{"field": "commune", "message": "autre autorité"}],
            )
        replay = await changes.claim(conn, principal, idempotency, body.model_dump(mode="json"))
        if replay is not None:
            return replay
        employer_authority: str | None = commune["authority"]
        employer_structure: UUID | None = None
        if employer is not None and employer.authority is not None:
            if not await repository.authority_exists(conn, employer.authority):
                raise field_error("employer", f"autorité {employer.authority} inconnue")
            employer_authority = employer.authority
        elif employer is not None and employer.finess is not None:
            structure = await repository.structure_by_finess(conn, employer.finess)
            if structure is None or structure["category"] != PLACEMENT_SERVICE_CATEGORY:
                raise field_error(
                    "employer",
                    f"FINESS {employer.finess} : pas un service de placement familial "
                    f"(catégorie {PLACEMENT_SERVICE_CATEGORY}) connu",
                )
            employer_authority, employer_structure = None, structure["id"]
        carer_id = await repository.insert(
            conn,
            {
                **terms,
                "number": body.number,
                "commune": body.commune,
                "lat": body.home.lat,
                "lon": body.home.lon,
                **_levels(body.disability),
                "declared_by": principal.sub,
                "employer_authority": employer_authority,
                "employer_structure": employer_structure,
                "open_to_other_authorities": body.open_to_other_authorities,
            },
        )
        if carer_id is None:
            raise Conflict(
                f"L'agrément {body.number} est déjà enregistré.",
                errors=[{"field": "number", "message": "déjà enregistré"}],
            )
        return await _finish(
            conn, principal, idempotency, None, "register", {"carer_id": carer_id}, 201
        )


# --- reads -------------------------------------------------------------------------------


async def read(pool: asyncpg.Pool, principal: Principal, carer_id: UUID) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.get(conn, carer_id)
        if row is None:
            raise NotFound(f"Agrément de l'assistant familial {carer_id} inconnu.")
        if not may_read(principal, row):
            raise Forbidden(
                "Réservé à l'autorité qui a délivré l'agrément, à l'employeur et à "
                "l'assistant familial."
            )
        await changes.audit(
            conn,
            principal,
            "agrement.read",
            OBJECT_TYPE,
            str(carer_id),
            row["department"],
            authority=row["issuing_authority"],
        )
    return agrement_out(row)


async def list_agrements(
    pool: asyncpg.Pool,
    principal: Principal,
    authority: str,
    state: str | None,
    expiring_within_days: int | None,
    derogation: bool | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The issuer's agréments, expiring first; audited like every list of carers."""
    async with pool.acquire() as conn, conn.transaction():
        rows, total = await repository.list_for(
            conn, authority, state, expiring_within_days, derogation, limit, offset
        )
        await changes.audit(
            conn,
            principal,
            "agrement.list",
            OBJECT_TYPE,
            f"list:{authority}",
            single_department(authority),
            {
                "state": state,
                "expiring_within_days": expiring_within_days,
                "derogation": derogation,
                "carer_ids": [str(r["carer_id"]) for r in rows],
            },
            authority=authority,
        )
    return {"items": [agrement_out(r) for r in rows], "total": total}


async def to_review(pool: asyncpg.Pool, principal: Principal, limit: int) -> dict[str, Any]:
    """Children placed with a carer whose agrément is not valid today: an authority's as
    placing or employing authority; a placement service's carers'. Audited (child-level)."""
    if principal.for_authority:
        authority, finess = principal.authority, None
    elif principal.role == "structure" and principal.finess:
        authority, finess = None, principal.finess
    else:
        raise Forbidden(
            "Réservé aux autorités (placement, employeur) et aux services de placement employeurs."
        )
    async with pool.acquire() as conn, conn.transaction():
        rows = await repository.to_review(conn, authority, finess, limit)
        await changes.audit(
            conn,
            principal,
            "placement.to_review",
            "hold",
            "*",
            single_department(authority),
            {"placement_ids": [str(r["placement_id"]) for r in rows]},
            authority=authority,
        )
    items = [
        {
            "placement_id": str(r["placement_id"]),
            "request_id": str(r["request_id"]),
            "carer_id": str(r["carer_id"]),
            "places": r["places"],
            "admitted_at": r["admitted_at"].isoformat(),
            "placing_authority": r["placing_authority"],
            "employing_authority": r["employing_authority"],
            "issuing_authority": r["issuing_authority"],
            "agrement_state": r["agrement_state"],
            "suspension_reason": r["suspension_reason"],
            "withdrawal_reason": r["withdrawal_reason"],
        }
        for r in rows
    ]
    return {"items": items, "total": len(items)}


# --- decisions on an existing agrément -------------------------------------------------------

Decide = Callable[[asyncpg.Connection, asyncpg.Record, date], Awaitable[dict[str, Any]]]
"""Checks the locked agrément against the decision and writes it; returns the audit detail."""


async def _decide(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    action: str,
    body: dict[str, Any],
    idempotency: Idempotency | None,
    if_match: int | None,
    decide: Decide,
    *,
    check: Callable[[Principal, asyncpg.Record], None] = require_issuer,
) -> Written:
    """One decision, in one transaction (module docstring: lock order, consequences)."""
    version = _version(if_match)
    for attempt in range(_ATTEMPTS):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _decide_once(
                    conn, principal, carer_id, action, body, idempotency, version, decide, check
                )
        except _HoldAppeared:
            if attempt == _ATTEMPTS - 1:
                raise Conflict(
                    "Des réservations sont arrivées sur cet assistant familial pendant la "
                    "décision : recommencez."
                ) from None
    raise AssertionError("unreachable")


async def _decide_once(
    conn: asyncpg.Connection,
    principal: Principal,
    carer_id: UUID,
    action: str,
    body: dict[str, Any],
    idempotency: Idempotency | None,
    version: int,
    decide: Decide,
    check: Callable[[Principal, asyncpg.Record], None],
) -> Written:
    current = await repository.get(conn, carer_id)
    if current is None:
        raise NotFound(f"Agrément de l'assistant familial {carer_id} inconnu.")
    check(principal, current)
    replay = await changes.claim(conn, principal, idempotency, body)
    if replay is not None:
        return replay
    _check_version(current, version)
    released: list[dict[str, Any]] = []
    if action in HOLD_RELEASE_REASONS:
        # hold → request → carer: the pending holds first; each release locks its request
        # and the carer, and gives its places back (the decision then takes them all).
        for hold in await repository.lock_pending_holds(conn, carer_id):
            released.append(
                await holds_service.apply_locked(
                    conn, principal, hold, "release", None, None, HOLD_RELEASE_REASONS[action]
                )
            )
    before = await repository.get(conn, carer_id, lock=True)
    assert before is not None
    _check_version(before, version)
    if action in HOLD_RELEASE_REASONS:
        done = {h["id"] for h in released}
        if any(str(i) not in done for i in await repository.pending_hold_ids(conn, carer_id)):
            raise _HoldAppeared
    detail = await decide(conn, before, before["today"])
    if released:
        detail["released_holds"] = [h["id"] for h in released]
    written = await _finish(
        conn, principal, idempotency, before, action, {**detail, "carer_id": carer_id}
    )
    if action in HOLD_RELEASE_REASONS:
        await _tell_to_review(conn, carer_id, action)
    return written


async def _tell_to_review(conn: asyncpg.Connection, carer_id: UUID, action: str) -> None:
    """``placement.to_review`` for each child placed with the carer, now that the agrément
    is not valid: on the placing authority's feed and the employing authority's."""
    for placement in await repository.to_review_of_carer(conn, carer_id):
        feeds = {placement["placing_authority"]: placement["placing_department"]}
        employer = placement["employing_authority"]
        feeds.setdefault(employer, single_department(employer) or placement["department"])
        for authority, department in feeds.items():
            await changes.emit(
                conn,
                events.placement_to_review(
                    placement, action, authority=authority, department=department
                ),
            )


def _levels(word: Mapping[Any, str]) -> dict[str, list[str]]:
    """The agrément's ``disability`` map as its two stored arrays (migration 0018)."""
    specialised, supported = disability.levels(word, None)
    return {"disability_specialised": specialised, "disability_supported": supported}


async def edit(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: AgrementPatch,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    """New terms; the carer's preferences and free places are clipped within them in the
    same statement. A field sent as null keeps its value, but ``derogation: null`` removes
    the derogation (then the capacity must be 3 or less)."""
    sent = body.model_fields_set
    for name in ("issued_on", "valid_until", "capacity", *NEEDS_COLUMNS):
        if name in sent and getattr(body, name) is None:
            raise field_error(name, "ne peut pas être vide")

    async def decide(
        conn: asyncpg.Connection, current: asyncpg.Record, today: date
    ) -> dict[str, Any]:
        if current["stored_state"] == "withdrawn":
            raise Conflict("Agrément retiré : il ne se modifie plus.", state="withdrawn")
        terms = {
            "issued_on": body.issued_on or current["issued_on"],
            "valid_until": body.valid_until or current["valid_until"],
            "capacity": body.capacity or current["capacity"],
            **{n: current[n] for n in NEEDS_COLUMNS},
            **body.offer_values(),
            **(
                _levels(body.disability)
                if body.disability is not None
                else {
                    "disability_specialised": current["disability_specialised"],
                    "disability_supported": current["disability_supported"],
                }
            ),
        }
        if "derogation" in sent:
            terms.update(_derogation(body))
        else:
            terms.update(
                {
                    k: current[k]
                    for k in ("derogation_children", "derogation_reason", "derogation_until")
                }
            )
        check_terms(terms)
        await repository.edit(conn, current["carer_id"], terms)
        return {"fields": sorted(sent)}

    return await _decide(
        pool,
        principal,
        carer_id,
        "edit",
        body.model_dump(mode="json", exclude_unset=True),
        idempotency,
        if_match,
        decide,
    )


async def suspend(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: SuspendIn,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    """CASF L421-6: from today or a later day, four months at most, a coded reason. The
    free places go and the pending holds are released at once, even for a suspension that
    starts later: the decision is taken, and no child should be sent meanwhile."""

    async def decide(
        conn: asyncpg.Connection, current: asyncpg.Record, today: date
    ) -> dict[str, Any]:
        start = body.from_ or today
        if start < today:
            raise field_error("from", "date passée : une suspension part d'aujourd'hui au plus tôt")
        if body.until is not None and body.until < start:
            raise field_error("until", "antérieure au début de la suspension")
        if body.until is not None and body.until > add_months(start, SUSPENSION_MONTHS):
            raise field_error("until", "une suspension dure quatre mois au plus (CASF L421-6)")
        if current["state"] not in ("valid", "not_yet_valid"):
            raise Conflict(
                f"Suspension impossible : l'agrément est « {current['state']} ».",
                state=current["state"],
            )
        await repository.suspend(conn, current["carer_id"], start, body.until, body.reason)
        return {
            "from": start.isoformat(),
            "until": body.until.isoformat() if body.until else None,
            "reason": body.reason,
        }

    return await _decide(
        pool,
        principal,
        carer_id,
        "suspend",
        body.model_dump(mode="json", by_alias=True),
        idempotency,
        if_match,
        decide,
    )


async def reinstate(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    """The suspension ends: valid again (if within its dates); free places stay at 0 until
    the carer declares them."""

    async def decide(
        conn: asyncpg.Connection, current: asyncpg.Record, today: date
    ) -> dict[str, Any]:
        if current["stored_state"] != "suspended":
            raise Conflict(
                f"Réintégration impossible : l'agrément n'est pas suspendu "
                f"(« {current['state']} »).",
                state=current["state"],
            )
        await repository.reinstate(conn, current["carer_id"])
        return {"suspension_reason": current["suspension_reason"]}

    return await _decide(pool, principal, carer_id, "reinstate", {}, idempotency, if_match, decide)


async def withdraw(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: WithdrawIn,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    """CASF L421-6: withdrawn on a day that has come, with a coded reason; for good."""

    async def decide(
        conn: asyncpg.Connection, current: asyncpg.Record, today: date
    ) -> dict[str, Any]:
        on = body.on or today
        if on > today:
            raise field_error("on", "date future : un retrait se constate au plus tard aujourd'hui")
        if on < current["issued_on"]:
            raise field_error("on", "antérieure à la délivrance de l'agrément")
        if current["stored_state"] == "withdrawn":
            raise Conflict("Agrément déjà retiré.", state="withdrawn")
        await repository.withdraw(conn, current["carer_id"], on, body.reason)
        return {"on": on.isoformat(), "reason": body.reason}

    return await _decide(
        pool,
        principal,
        carer_id,
        "withdraw",
        body.model_dump(mode="json"),
        idempotency,
        if_match,
        decide,
    )


def _carer_or_issuer(principal: Principal, agrement: asyncpg.Record) -> None:
    if principal.role == "carer" and principal.carer_id == str(agrement["carer_id"]):
        return
    require_issuer(principal, agrement)


async def request_renewal(
    pool: asyncpg.Pool,
    principal: Principal,
    carer_id: UUID,
    body: RenewalIn,
    idempotency: Idempotency | None,
    if_match: int | None,
) -> Written:
    """The carer (or the issuer for them) asks for the renewal: the date is shown to the
    issuer, whose list puts the agréments that expire soon first."""

    async def decide(
        conn: asyncpg.Connection, current: asyncpg.Record, today: date
    ) -> dict[str, Any]:
        on = body.requested_on or today
        if on > today:
            raise field_error("requested_on", "date future")
        if on < today - timedelta(days=366):
            raise field_error("requested_on", "plus d'un an dans le passé")
        if current["stored_state"] == "withdrawn":
            raise Conflict("Agrément retiré : pas de renouvellement.", state="withdrawn")
        await repository.request_renewal(conn, current["carer_id"], on)
        return {"requested_on": on.isoformat()}

    return await _decide(
        pool,
        principal,
        carer_id,
        "renewal_request",
        body.model_dump(mode="json"),
        idempotency,
        if_match,
        decide,
        check=_carer_or_issuer,
    )
