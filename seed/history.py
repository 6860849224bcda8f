"""Twelve months of synthetic workflow history over the seeded offer (issue #18).

Why: the indicators of national steering (children waiting, execution delays, refusals,
placements outside the authority, the open-data months) need a past to be computed on and
measured against; an empty workflow says nothing. Drawn like the offer: from one seeded
``random.Random`` stream over the rows read back in a fixed order, ids included, so the same
seed and ``now`` give the same history.

What a request goes through (every instant before ``now``; what would come later is not yet):

* created (its decision 0–10 days before), with a waiting situation (home, emergency unit,
  hospital, hotel under derogation, another placement awaiting reorientation, unknown),
  changed once for some;
* for some, a hold refused by the unit or carer (coded reason) first;
* then admitted after a delay drawn around three weeks (longer where the offer is tight), in
  the authority's territory mostly, in another authority for about one in seven (a
  neighbouring one of the region more often than not); a unit or a carer;
* or cancelled (coded), and then asked again under the same file reference for some: the
  same child, a new request;
* some placements end with a coded exit; a carer's always does before ``now``, so that no
  seeded hold holds a carer's places today (their declarations stay theirs to make);
* a few never find a place: still waiting today, decided months ago.

Rows go straight to the tables with COPY (requests through a staging table that takes the
origin commune's point), as the offer does. No hold is left ``held``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

import asyncpg

from api.codes import CANCELLATION_REASONS, EXIT_REASONS, REFUSAL_REASONS
from api.requests.children import child_key
from seed.dataset import Generated
from seed.draws import allocate, draw_uuid, weighted

NATIONAL_REQUESTS = 24_000
"""Requests over the 12 months at scale 1 (of the order of the children newly placed by the
ASE in a year; the seed's figure, not a statistic)."""
DAYS = 365
ACTOR = "seed"
OUTSIDE_SHARE = 0.14
"""Share of admissions in another authority than the child's."""
SITUATION_WEIGHTS = [
    (35, "domicile"),
    (30, "accueil_urgence"),
    (6, "hopital"),
    (4, "hotel_derogation"),
    (12, "autre_placement"),
    (13, "inconnu"),
]
NEEDS_WEIGHTS = [
    (70, ("durable", "mineur")),
    (22, ("urgence", "mineur")),
    (5, ("sequentiel", "mineur")),
    (3, ("durable", "jeune_majeur")),
]
"""(timing, public) of the requests; every formula is ``enfant`` (no parent with child)."""
URGENCY = {"urgence": "immediate", "durable": "days", "sequentiel": "planned"}

_STAGE = """
CREATE TEMP TABLE seed_requests_stage (
    id uuid, department text, reference text, child_key text, children text,
    origin_commune text, timing text, public text, formula text, urgency text,
    measure_kind text, decided_on date,
    status text, version integer, created_at timestamptz, updated_at timestamptz
) ON COMMIT DROP
"""
_REQUEST_COLUMNS = (
    "id, department, reference, child_key, children, origin_commune, timing, public,"
    " formula, urgency, measure_kind, decided_on, status, version, created_at, updated_at"
)
_STAGE_SELECT = [
    # ``children`` staged as text: a connection with a text codec for jsonb (the CLI's) has
    # no binary encoder for COPY
    "s.children::jsonb" if c.strip() == "children" else "s." + c.strip()
    for c in _REQUEST_COLUMNS.split(",")
]
_HOLD_COLUMNS = [
    "id",
    "request_id",
    "target_kind",
    "unit_id",
    "carer_id",
    "places",
    "status",
    "expires_at",
    "reason_code",
    "created_by",
    "created_at",
    "updated_at",
]
_EVENT_COLUMNS = [
    "request_id",
    "occurred_at",
    "event",
    "from_status",
    "to_status",
    "hold_id",
    "actor",
    "role",
    "reason_code",
]
_SITUATION_COLUMNS = ["request_id", "situation", "since", "recorded_at", "recorded_by"]


@dataclass
class History:
    """Rows ready for COPY and the figures of the summary."""

    requests: list[tuple[object, ...]] = field(default_factory=list)
    holds: list[tuple[object, ...]] = field(default_factory=list)
    events: list[tuple[object, ...]] = field(default_factory=list)
    situations: list[tuple[object, ...]] = field(default_factory=list)
    admissions: int = 0
    outside: int = 0
    re_requested: int = 0


@dataclass(frozen=True, slots=True)
class Territory:
    """An authority as the history draws in it: its communes (weights), offer and region."""

    code: str
    region: str
    communes: list[tuple[str, str, int]]  # (insee, department, population)
    units: list[uuid.UUID]
    carers: list[uuid.UUID]
    cum_weights: list[int]

    def pick_commune(self, rng: random.Random) -> tuple[str, str, int]:
        """A commune drawn with weight its population (one draw, bisected)."""
        x = rng.random() * self.cum_weights[-1]
        index = bisect.bisect_right(self.cum_weights, x)
        return self.communes[min(index, len(self.communes) - 1)]


async def _territories(conn: asyncpg.Connection) -> list[Territory]:
    """Authorities with communes and an offer, read in a fixed order (ids sorted)."""
    communes: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    regions: dict[str, str] = {}
    for r in await conn.fetch(
        "SELECT c.insee, c.department, c.population, c.authority, d.region_code"
        " FROM communes c JOIN departments d ON d.code = c.department"
    ):
        communes[r["authority"]].append((r["insee"], r["department"], r["population"]))
        regions[r["authority"]] = r["region_code"]
    units: dict[str, list[uuid.UUID]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT u.id, s.authority FROM units u JOIN structures s ON s.id = u.structure_id"
        " WHERE s.category <> '236'"
    ):
        units[r["authority"]].append(r["id"])
    carers: dict[str, list[uuid.UUID]] = defaultdict(list)
    for r in await conn.fetch(
        "SELECT id, authority FROM foster_carers c WHERE places_agrement_valid(c.agrement_state,"
        " c.issued_on, c.valid_until, c.suspended_from, c.suspended_until, current_date)"
    ):
        carers[r["authority"]].append(r["id"])
    out = []
    for code in sorted(communes):
        if not units[code] and not carers[code]:
            continue
        members = sorted(communes[code])
        cum = list(itertools.accumulate(max(p, 1) for _, _, p in members))
        out.append(
            Territory(code, regions[code], members, sorted(units[code]), sorted(carers[code]), cum)
        )
    return out


def _child(rng: random.Random, age: int) -> dict[str, Any]:
    """A child as the API stores it: age in months, sex, no disability."""
    return {
        "age_months": age * 12 + rng.randint(0, 11),
        "sex": rng.choice("FM"),
        "disability_profiles": [],
        "mdph_notified": None,
        "disability_service": None,
    }


class _Writer:
    """Appends one request's rows, each event moving its status (and its version)."""

    def __init__(self, out: History, request_id: uuid.UUID, now: datetime) -> None:
        self.out = out
        self.id = request_id
        self.now = now
        self.status = "waiting"
        self.version = 1
        self.updated = now

    def event(
        self,
        at: datetime,
        event: str,
        to_status: str,
        hold_id: uuid.UUID | None = None,
        code: str | None = None,
    ) -> None:
        from_status = None if event == "created" else self.status
        self.out.events.append(
            (self.id, at, event, from_status, to_status, hold_id, ACTOR, "department", code)
        )
        if event != "created":
            self.version += 1
        self.status = to_status
        self.updated = at


def _host(
    rng: random.Random, home: Territory, by_region: dict[str, list[Territory]], all_: list
) -> Territory:
    if rng.random() >= OUTSIDE_SHARE:
        return home
    near = [t for t in by_region[home.region] if t.code != home.code]
    if near and rng.random() < 0.7:
        return rng.choice(near)
    return rng.choice([t for t in all_ if t.code != home.code] or [home])


def generate_history(
    rng: random.Random, territories: list[Territory], scale: float, now: datetime, secret: bytes
) -> History:
    """The requests of the last ``DAYS`` days in every territory, proportional to population."""
    out = History()
    by_region: dict[str, list[Territory]] = defaultdict(list)
    for t in territories:
        by_region[t.region].append(t)
    weights = [sum(p for _, _, p in t.communes) or 1 for t in territories]
    counts = allocate(max(round(NATIONAL_REQUESTS * scale), len(territories)), weights, 1)
    year_start = now - timedelta(days=DAYS)
    for territory, count in zip(territories, counts, strict=True):
        tension = rng.lognormvariate(0, 0.4)  # longer delays where the offer is tight
        serial = 0
        pending: list[tuple[datetime, str]] = []  # (when, reference) asked again
        for k in range(count):
            serial += 1
            created = year_start + timedelta(seconds=rng.uniform(0, DAYS * 86400))
            reference = f"ASE{territory.code}-{created.year}-{serial:05d}"
            if pending and rng.random() < 0.5:
                again, old = pending.pop(0)
                if again < now:
                    created, reference = again, old
                    out.re_requested += 1
            _request(
                rng,
                out,
                territory,
                by_region,
                territories,
                created,
                reference,
                now,
                tension,
                secret,
                pending,
                k,
            )
    return out


def _request(
    rng: random.Random,
    out: History,
    home: Territory,
    by_region: dict[str, list[Territory]],
    territories: list[Territory],
    created: datetime,
    reference: str,
    now: datetime,
    tension: float,
    secret: bytes,
    pending: list[tuple[datetime, str]],
    k: int,
) -> None:
    request_id = draw_uuid(rng)
    insee, department, _ = home.pick_commune(rng)
    n = weighted(rng, [(80, 1), (13, 2), (7, 3)])
    timing, public = weighted(rng, NEEDS_WEIGHTS)
    if public == "jeune_majeur":
        n, first_age, oldest = 1, rng.randint(18, 20), 20
    else:
        first_age, oldest = rng.randint(0, 17), 17
    children = [_child(rng, min(oldest, first_age + i * 2)) for i in range(n)]
    decided_on: date = (created - timedelta(days=rng.randint(0, 10))).date()
    w = _Writer(out, request_id, now)
    w.event(created, "created", "waiting")
    situation = weighted(rng, SITUATION_WEIGHTS)
    out.situations.append((request_id, situation, created.date(), created, ACTOR))
    if rng.random() < 0.3:
        later = created + timedelta(days=rng.randint(2, 40))
        if later < now:
            situation = weighted(rng, SITUATION_WEIGHTS)
            out.situations.append((request_id, situation, later.date(), later, ACTOR))

    fate = rng.random()
    delay = timedelta(days=min(300.0, rng.lognormvariate(2.9, 0.8) * tension))
    if fate < 0.04:
        pass  # never finds a place: still waiting
    elif fate < 0.16:
        cancelled = created + timedelta(days=rng.uniform(2, 90))
        if cancelled < now:
            code = weighted(rng, [(3, c) for c in CANCELLATION_REASONS])
            w.event(cancelled, "cancelled", "cancelled", code=code)
            if rng.random() < 0.35:
                pending.append((cancelled + timedelta(days=rng.uniform(3, 60)), reference))
    else:
        admitted = created + delay
        host = _host(rng, home, by_region, territories)
        if rng.random() < 0.18:
            _refused(rng, out, w, home, created + delay * 0.4, n, now)
        if admitted < now and w.status == "waiting" and w.updated < now - timedelta(hours=3):
            _admitted(rng, out, w, home, host, admitted, n, now)
    out.requests.append(
        (
            request_id,
            department,
            reference,
            child_key(secret, home.code, reference),
            json.dumps(children),
            insee,
            timing,
            public,
            "enfant",
            URGENCY[timing],
            "judicial" if rng.random() < 0.8 else "administrative",
            decided_on,
            w.status,
            w.version,
            created,
            w.updated,
        )
    )


def _target(rng: random.Random, territory: Territory) -> tuple[str, uuid.UUID] | None:
    if territory.units and (not territory.carers or rng.random() < 0.62):
        return "unit", rng.choice(territory.units)
    if territory.carers:
        return "carer", rng.choice(territory.carers)
    return None


def _hold(
    out: History,
    request_id: uuid.UUID,
    target: tuple[str, uuid.UUID],
    places: int,
    status: str,
    held: datetime,
    updated: datetime,
    code: str | None,
    hold_id: uuid.UUID,
) -> None:
    kind, target_id = target
    out.holds.append(
        (
            hold_id,
            request_id,
            kind,
            target_id if kind == "unit" else None,
            target_id if kind == "carer" else None,
            places,
            status,
            held + timedelta(hours=24),
            code,
            ACTOR,
            held,
            updated,
        )
    )


def _refused(
    rng: random.Random,
    out: History,
    w: _Writer,
    home: Territory,
    at: datetime,
    places: int,
    now: datetime,
) -> None:
    target = _target(rng, home)
    refused = at + timedelta(hours=rng.uniform(1, 20))
    if target is None or refused >= now:
        return
    hold_id = draw_uuid(rng)
    code = weighted(
        rng,
        [(4, "profil_inadapte"), (3, "pas_de_place_reelle"), (1, "distance")]
        + [(1, c) for c in REFUSAL_REASONS],
    )
    _hold(out, w.id, target, places, "refused", at, refused, code, hold_id)
    w.event(at, "held", "held", hold_id)
    w.event(refused, "refused", "waiting", hold_id, code)


def _admitted(
    rng: random.Random,
    out: History,
    w: _Writer,
    home: Territory,
    host: Territory,
    admitted: datetime,
    places: int,
    now: datetime,
) -> None:
    target = _target(rng, host)
    if target is None:
        host, target = home, _target(rng, home)
    if target is None:
        return
    hold_id = draw_uuid(rng)
    admitted = max(admitted, w.updated + timedelta(hours=2))
    held = admitted - min(timedelta(hours=rng.uniform(2, 23)), (admitted - w.updated) / 2)
    w.event(held, "held", "held", hold_id)
    w.event(admitted, "admitted", "placed", hold_id)
    out.admissions += 1
    if host.code != home.code:
        out.outside += 1
    exit_at: datetime | None = admitted + timedelta(days=rng.uniform(20, 330))
    if target[0] == "carer":
        assert exit_at is not None
        if exit_at >= now:  # never holding a carer's places today
            exit_at = admitted + (now - admitted) * rng.uniform(0.2, 0.9)
    elif rng.random() >= 0.4 or (exit_at is not None and exit_at >= now):
        exit_at = None
    if exit_at is None:
        _hold(out, w.id, target, places, "admitted", held, admitted, None, hold_id)
        return
    code = weighted(rng, [(3, c) for c in EXIT_REASONS])
    _hold(out, w.id, target, places, "exited", held, exit_at, code, hold_id)
    w.event(exit_at, "exited", "exited", hold_id, code)


async def load_history(conn: asyncpg.Connection, history: History) -> None:
    """COPY the history (requests through the staging table), in foreign-key order."""
    await conn.execute("DROP TABLE IF EXISTS pg_temp.seed_requests_stage")
    await conn.execute(_STAGE)
    await conn.copy_records_to_table("seed_requests_stage", records=history.requests)
    await conn.execute(
        f"INSERT INTO placement_requests ({_REQUEST_COLUMNS}, authority, origin_location,"
        " created_by)"
        f" SELECT {', '.join(_STAGE_SELECT)},"
        " c.authority, c.location, 'seed'"
        " FROM seed_requests_stage s JOIN communes c ON c.insee = s.origin_commune"
    )
    await conn.copy_records_to_table("holds", records=history.holds, columns=_HOLD_COLUMNS)
    events = sorted(history.events, key=lambda e: (e[1], str(e[0])))
    await conn.copy_records_to_table("request_events", records=events, columns=_EVENT_COLUMNS)
    situations = sorted(history.situations, key=lambda s: (s[3], str(s[0])))
    await conn.copy_records_to_table(
        "request_situations", records=situations, columns=_SITUATION_COLUMNS
    )


async def seed_history(
    conn: asyncpg.Connection, seed: int, scale: float, now: datetime, secret: bytes
) -> History:
    """Draw and load the history over the offer just loaded (same transaction)."""
    rng = random.Random(f"{seed}:history")
    history = generate_history(rng, await _territories(conn), scale, now, secret)
    await load_history(conn, history)
    return history


UNIT_EVERY_DAYS = 30
CARER_EVERY_DAYS = 120


def offer_history(rng: random.Random, data: Generated, now: datetime) -> int:
    """Past declarations over the year before each unit's and carer's current one (``data``:
    the ``seed.dataset.Generated`` being built), so that the offer over time has a past:
    a unit declared about once a month, a carer every four months, free places wandering
    around today's figure. The current declaration stays the last (the snapshot's); past
    ones keep its installed and closed places and version 1 (history rows, never read for
    concurrency). Returns the rows added."""
    start = now - timedelta(days=DAYS)
    added: list[tuple[object, ...]] = []
    for row in data.declarations:
        if row[1] != "current":
            continue
        fields = cast(tuple[Any, ...], row)
        unit_id, _, installed, _, _, closed, available, additional, gender = fields[:9]
        open_places = installed + additional - closed
        at = fields[10] - timedelta(days=UNIT_EVERY_DAYS * rng.uniform(0.6, 1.4))
        while at > start:
            free = max(0, min(open_places, available + rng.randint(-2, 2)))
            added.append(
                (
                    unit_id,
                    "current",
                    installed,
                    open_places - free,
                    0,
                    closed,
                    free,
                    additional,
                    gender,
                    1,
                    at,
                    fields[11],
                    fields[12],
                )
            )
            at -= timedelta(days=UNIT_EVERY_DAYS * rng.uniform(0.6, 1.4))
    carers: list[tuple[object, ...]] = []
    capacities = {c[0]: c[8] for c in data.carers}
    for row in data.carer_declarations:
        carer_id, available, _, _, _, declared_at, by, source = cast(tuple[Any, ...], row)
        at = declared_at - timedelta(days=CARER_EVERY_DAYS * rng.uniform(0.5, 1.5))
        while at > start:
            leave = rng.random() < 0.08
            free = 0 if leave else max(0, min(capacities[carer_id], available + rng.randint(-1, 1)))
            carers.append((carer_id, free, "leave" if leave else "active", None, 1, at, by, source))
            at -= timedelta(days=CARER_EVERY_DAYS * rng.uniform(0.5, 1.5))
    # Oldest first, so that ids follow time as they do for real declarations.
    data.declarations[:0] = sorted(added, key=lambda r: cast(datetime, r[10]))
    data.carer_declarations[:0] = sorted(carers, key=lambda r: cast(datetime, r[5]))
    return len(added) + len(carers)
