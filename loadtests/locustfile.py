"""Load test: the three kinds of users of Places at once, in a realistic mix.

- ``Declarant`` (weight 5): an establishment (70 %) declaring its units' places, now and
  forecast, or a foster carer (30 %) declaring availability. Like the declaration page: it
  loads its own record (``GET /ui/api/moi``), declares with ``If-Match`` (the version it
  started from) and a fresh ``Idempotency-Key``; a 409 (someone — usually the workflow — moved
  the counts meanwhile) makes it reload and declare again. Now and then it replays the same
  key and body, as a client retrying after a lost answer, and must get the first answer back.
- ``PlacementOfficer`` (weight 3): a department's placement service with its
  department-scoped token: searches; creates a request, searches for it, holds the best
  proposal free now (409 on a place someone just took: next proposal), then admits or
  releases, and records some exits; cancels the request when nothing can be held; reads the
  waiting list.
- ``Dashboard`` (weight 2): a department's page (or, one in five, national steering) holding
  its WebSocket feed open. It connects with ``last_event_id`` = the feed's position when
  the run started (given by ``run_load``), so it must receive every event of the run on its
  feed, whenever it connected, and resumes after any close. Each live event's delivery
  latency (its ``occurred_at`` → receipt) is reported to locust as a ``WS`` request; events
  that occurred before the connection (caught up from the feed's history) are only counted.

About 5 % of declarations and searches are deliberately invalid; they must get the 4xx they
deserve (422, 428, or 409 for a stale ``If-Match``) and count as successes under their own
``[invalid]`` name; any other status is a failure. Every status is also tallied per endpoint.

Writers stop after ``PLACES_LOAD_SECONDS``; dashboards keep listening until locust stops
(``run_load`` gives the run a few more seconds), so events in flight are not taken for lost.

Inputs (environment, written by ``python -m loadtests.run_load``, which runs this file):
``PLACES_LOAD_FIXTURE`` (JSON: active departments, their communes, establishments, carers,
feed start positions), ``PLACES_LOAD_RESULTS`` (where to write statuses and what each dashboard
received), ``PLACES_LOAD_SECONDS``. Tokens are signed with the local issuer
(``PLACES_KEYS_DIR``), so the server must use the same keys.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import gevent
import websocket
from locust import FastHttpUser, User, between, constant, events, task
from locust.env import Environment

from api.auth import issue_token
from api.codes import DISABILITY_PROFILES
from geo.referential import authority_of_commune
from loadtests.bench_search import CARE_MODES
from matching.vocabulary import LEGACY_CARE_MODE

INVALID_SHARE = 0.05
"""Share of declarations and searches sent deliberately invalid."""
REPLAY_SHARE = 0.03
"""Share of accepted unit declarations replayed with the same Idempotency-Key and body."""
NATIONAL_EVERY = 5
"""One dashboard in NATIONAL_EVERY watches the national feed, the others a department's."""
HOLD_MINUTES = 60
UNITS = "/v1/units/[id]/capacity"
CARERS = "/v1/foster-carers/[id]/availability"
SEARCH = "/v1/search"


# --------------------------------------------------------------------------- pure helpers


def make_children(rng: random.Random) -> tuple[list[dict[str, Any]], str]:
    """A child or a sibling group and a care mode of old (drawn as ``bench_search`` draws it,
    sent as timing / public / formula), in the proportions of ``bench_search``: 70 % single
    children, a quarter of them with a disability profile; ages in months."""
    size = rng.choices([1, 2, 3, 4], weights=[70, 18, 8, 4])[0]
    care = rng.choice(CARE_MODES)
    lo, hi = (16, 21) if care == "jeune_majeur" else (13, 17) if care == "mna" else (0, 17)
    children = []
    for _ in range(size):
        profiles = [rng.choice(DISABILITY_PROFILES)] if rng.random() < 0.25 else []
        child = {
            "age_months": rng.randint(lo, hi) * 12,
            "sex": rng.choice("FM"),
            "disability_profiles": profiles,
        }
        if profiles:  # graded (#16): most children with a profile are MDPH-notified
            child["mdph_notified"] = rng.random() < 0.6
        children.append(child)
    return children, care


def make_search(rng: random.Random, commune: str) -> dict[str, Any]:
    children, care = make_children(rng)
    return {
        "children": children,
        "origin": {"commune": commune},
        **dict(zip(("timing", "public", "formula"), LEGACY_CARE_MODE[care], strict=True)),
        "max_distance_km": rng.choice([30, 50, 80]),
        "limit": 10,
    }


def invalid_search(rng: random.Random, commune: str) -> dict[str, Any]:
    """A search the API must refuse with 422: each breaks one rule of the contract."""
    body = make_search(rng, commune)
    kind = rng.randrange(5)
    if kind == 0:
        body["children"][0]["age_months"] = 300  # 0–263 only
    elif kind == 1:
        body["timing"] = "pension_complete"  # unknown timing
    elif kind == 2:
        body["origin"] = {"commune": commune, "lat": 45.0, "lon": 4.0}  # both forms
    elif kind == 3:
        body["children"] = []  # nobody to place
    else:
        body["children"][0]["name"] = "Léa"  # never a child's name
    return body


def unit_counts(snapshot: dict[str, Any], installed: int, rng: random.Random) -> dict[str, int]:
    """A valid current declaration from the last known snapshot: ``reserved`` is left out (it
    keeps its value, and must not drop below the places held through Places), a few places are
    free, the rest occupied, so occupied + reserved + available + closed ≤ installed +
    additional holds and occupancy stays near the dataset's ~95 %."""
    ceiling = (
        snapshot.get("installed", installed)
        + snapshot.get("additional", 0)
        - snapshot.get("reserved", 0)
        - snapshot.get("closed", 0)
    )
    ceiling = max(ceiling, 0)
    available = min(ceiling, rng.choices([0, 1, 2, 3], weights=[45, 35, 15, 5])[0])
    return {"occupied": ceiling - available, "available": available}


def invalid_declaration(
    rng: random.Random, snapshot: dict[str, Any], installed: int, version: int
) -> tuple[dict[str, Any], dict[str, str], int]:
    """(body, extra headers, expected status) of a unit declaration the API must refuse."""
    kind = rng.randrange(5)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body: dict[str, Any] = {"temporality": "current"}
    ceiling = snapshot.get("installed", installed) + snapshot.get("additional", 0)
    if kind == 0:  # more places used than installed + additional
        body |= {"available": ceiling + 1, "occupied": 0, "reserved": snapshot.get("reserved", 0)}
        return body, {**key, "If-Match": f'"{version}"'}, 422
    if kind == 1:  # a negative count
        body |= {"available": 0, "occupied": -1}
        return body, {**key, "If-Match": f'"{version}"'}, 422
    if kind == 2:  # unknown temporality
        body |= {"temporality": "h12", "available": 1}
        return body, key, 422
    if kind == 3:  # no Idempotency-Key
        body |= {"available": 0}
        return body, {"If-Match": f'"{version}"'}, 428
    body |= {"available": 0}  # an If-Match that is not the current version
    return body, {**key, "If-Match": f'"{version + 1000}"'}, 409


def close_code(frame: websocket.ABNF) -> int | None:
    data = bytes(frame.data or b"")
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


# --------------------------------------------------------------------------- shared state


class Results:
    """What run_load needs beyond locust's CSV: every status per endpoint (5xx are counted
    here, whatever the request's expectation) and every event id each dashboard received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.invalid_expected = 0
        self.conflicts = 0
        self.unexpected: list[str] = []
        self.dashboards: list[dict[str, Any]] = []
        self.load_started: float | None = None
        self.load_end: float | None = None

    def count(self, endpoint: str, status: int) -> None:
        self.statuses[(endpoint, status)] += 1

    def note_unexpected(self, message: str) -> None:
        if len(self.unexpected) < 100:
            self.unexpected.append(message)

    def dump(self, path: Path, stopped_at: float) -> None:
        statuses: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.statuses.items()):
            statuses.setdefault(endpoint, {})[str(status)] = n
        data = {
            "load_started": self.load_started,
            "load_end": self.load_end,
            "stopped_at": stopped_at,
            "statuses": statuses,
            "invalid_expected": self.invalid_expected,
            "conflicts": self.conflicts,
            "unexpected": self.unexpected,
            "dashboards": self.dashboards,
        }
        path.write_text(json.dumps(data))


RESULTS = Results()
_FIXTURE: dict[str, Any] | None = None
_dashboard_serial = itertools.count()
_officer_serial = itertools.count()


def fixture() -> dict[str, Any]:
    global _FIXTURE
    if _FIXTURE is None:
        path = os.environ.get("PLACES_LOAD_FIXTURE")
        if not path:
            raise RuntimeError(
                "PLACES_LOAD_FIXTURE is not set: run the load test with "
                "`python -m loadtests.run_load`, which prepares it"
            )
        _FIXTURE = json.loads(Path(path).read_text())
    return _FIXTURE


def load_over() -> bool:
    return RESULTS.load_end is not None and time.time() >= RESULTS.load_end


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    fixture()
    RESULTS.load_started = time.time()
    seconds = float(os.environ.get("PLACES_LOAD_SECONDS", "0") or 0)
    RESULTS.load_end = RESULTS.load_started + seconds if seconds > 0 else None


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    path = os.environ.get("PLACES_LOAD_RESULTS")
    if path:
        RESULTS.dump(Path(path), time.time())


def check(resp: Any, endpoint: str, expected: Collection[int]) -> bool:
    """Tally the status; success if expected, else a failure with the start of the body."""
    status = resp.status_code
    with RESULTS.lock:
        RESULTS.count(endpoint, status)
    if status in expected:
        resp.success()
        return True
    detail = (resp.text or "")[:200] if status else str(resp.error)[:200]
    resp.failure(f"unexpected {status}: {detail}")
    RESULTS.note_unexpected(f"{endpoint} -> {status}: {detail}")
    return False


# --------------------------------------------------------------------------- declarants


class Declarant(FastHttpUser):
    """An establishment declaring its units, or a foster carer declaring availability."""

    weight = 5
    wait_time = between(1, 4)

    def on_start(self) -> None:
        self.rng = random.Random()
        data = fixture()
        self.is_carer = self.rng.random() < 0.3 and bool(data["carers"])
        if self.is_carer:
            carer = self.rng.choice(data["carers"])
            self.carer_id = carer["id"]
            self.max_free = carer["agrement_capacity"] - carer["taken"]
            token = issue_token("carer", carer_id=self.carer_id)
        else:
            self.finess = self.rng.choice(data["structures"])["finess"]
            token = issue_token("structure", finess=self.finess)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.state: dict[str, Any] = {}
        self.reload()

    def reload(self) -> bool:
        """What the declaration page loads: the establishment's units and their snapshots,
        or the carer's record (and, for a carer, the places held through Places)."""
        with self.client.get(
            "/ui/api/moi", headers=self.auth, name="/ui/api/moi", catch_response=True
        ) as resp:
            if not check(resp, "GET /ui/api/moi", {200}):
                return False
            data = resp.json()
        if self.is_carer:
            self.state = data["carer"]
            return True
        # unit id -> {"installed", temporality -> snapshot}
        self.state = {}
        for unit in data["structure"]["units"]:
            snaps = {s["temporality"]: s for s in unit.get("forecasts") or []}
            if unit.get("capacity"):
                snaps["current"] = unit["capacity"]
            self.state[unit["id"]] = {"installed": unit["installed"], "snapshots": snaps}
        return True

    def carer_taken(self) -> int | None:
        """Places held or occupied through Places on this carer, from the holds list."""
        taken = 0
        for status in ("held", "admitted"):
            with self.client.get(
                f"/v1/holds?status={status}",
                headers=self.auth,
                name="/v1/holds?status=…",
                catch_response=True,
            ) as resp:
                if not check(resp, "GET /v1/holds?status=…", {200}):
                    return None
                taken += sum(h["places"] for h in resp.json()["items"])
        return taken

    @task
    def declare(self) -> None:
        if load_over():
            gevent.sleep(1)
            return
        if not self.state and not self.reload():
            return
        if self.is_carer:
            self.declare_carer()
        else:
            self.declare_unit()

    # -- units

    def declare_unit(self, retry: bool = True) -> None:
        if not self.state:
            return
        unit_id = self.rng.choice(sorted(self.state))
        unit = self.state[unit_id]
        temporality = self.rng.choices(["current", "h24", "h48", "d7"], [80, 8, 6, 6])[0]
        snapshot = unit["snapshots"].get(temporality, {})
        version = snapshot.get("version", 0)
        path = f"/v1/units/{unit_id}/capacity"
        if self.rng.random() < INVALID_SHARE:
            current = unit["snapshots"].get("current", {})
            body, headers, status = invalid_declaration(
                self.rng, current, unit["installed"], current.get("version", 0)
            )
            name = f"{UNITS} [invalid]"
            # With the If-Match of the version last seen, a 409 is the right refusal too when
            # the workflow moved the snapshot meanwhile: the version is checked first.
            accepted = {status, 409} if "If-Match" in headers else {status}
            with self.client.put(
                path, json=body, headers=self.auth | headers, name=name, catch_response=True
            ) as resp:
                if check(resp, f"PUT {name}", accepted):
                    RESULTS.invalid_expected += 1
                if resp.status_code == 409 and status != 409:
                    self.state = {}  # reload before the next declaration
            return
        if temporality == "current":
            body: dict[str, Any] = {"temporality": "current"}
            body |= unit_counts(snapshot, unit["installed"], self.rng)
        else:  # a forecast: how many places will be free then
            ceiling = snapshot.get("installed", unit["installed"]) + snapshot.get("additional", 0)
            body = {"temporality": temporality, "available": self.rng.randint(0, min(ceiling, 3))}
            body |= {"occupied": ceiling - body["available"], "reserved": 0, "closed": 0}
        headers = self.auth | {"Idempotency-Key": str(uuid.uuid4()), "If-Match": f'"{version}"'}
        with self.client.put(
            path, json=body, headers=headers, name=UNITS, catch_response=True
        ) as resp:
            if not check(resp, f"PUT {UNITS}", {200, 409}):
                return
            if resp.status_code == 409:  # the workflow (a hold, an admission…) came first
                RESULTS.conflicts += 1
                conflict = True
            else:
                conflict = False
                answer = resp.json()
                if resp.headers.get("ETag") != f'"{answer["version"]}"':
                    resp.failure(f"ETag {resp.headers.get('ETag')} for version {answer['version']}")
                unit["snapshots"][temporality] = answer
        if conflict:
            if self.reload() and retry:
                self.declare_unit(retry=False)
            return
        if self.rng.random() < REPLAY_SHARE:  # the answer was "lost": same key, same body
            name = f"{UNITS} [replay]"
            with self.client.put(
                path, json=body, headers=headers, name=name, catch_response=True
            ) as resp:
                if (
                    check(resp, f"PUT {name}", {200})
                    and resp.json()["version"] != answer["version"]
                ):
                    resp.failure("a replay wrote again")
                    RESULTS.note_unexpected(f"replay of {path} wrote a new version")

    # -- carers

    def declare_carer(self, retry: bool = True) -> None:
        carer = self.state
        path = f"/v1/foster-carers/{self.carer_id}/availability"
        version = carer["version"]
        capacity = carer["agrement_capacity"]
        if self.rng.random() < INVALID_SHARE:
            name = f"{CARERS} [invalid]"
            body = {"available_places": capacity + 1, "status": "active", "until": None}
            # no If-Match: a hold may have moved the version, and a stale one is a 409 first
            headers = self.auth | {"Idempotency-Key": str(uuid.uuid4())}
            with self.client.put(
                path, json=body, headers=headers, name=name, catch_response=True
            ) as resp:
                if check(resp, f"PUT {name}", {422}):
                    RESULTS.invalid_expected += 1
            return
        known = carer["available_places"]
        free = max(0, min(self.max_free, known + self.rng.choice([-1, 0, 0, 1])))
        body: dict[str, Any] = {"available_places": free, "status": "active", "until": None}
        if self.rng.random() < 0.05:  # on leave for a week
            until = (date.today() + timedelta(days=7)).isoformat()
            body = {"available_places": 0, "status": "leave", "until": until}
        headers = self.auth | {"Idempotency-Key": str(uuid.uuid4()), "If-Match": f'"{version}"'}
        with self.client.put(
            path, json=body, headers=headers, name=CARERS, catch_response=True
        ) as resp:
            if not check(resp, f"PUT {CARERS}", {200, 409}):
                return
            if resp.status_code == 200:
                self.state = resp.json()
                return
            RESULTS.conflicts += 1
        # 409: a hold, an admission or a release moved this carer's places meanwhile
        taken = self.carer_taken()
        if taken is not None:
            self.max_free = capacity - taken
        if self.reload() and retry:
            self.declare_carer(retry=False)


# --------------------------------------------------------------------------- officers


class PlacementOfficer(FastHttpUser):
    """A department's placement service: search, request, hold, admit or release, exit."""

    weight = 3
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.rng = random.Random()
        data = fixture()
        departments = data["departments"]
        serial = next(_officer_serial)
        self.department = departments[serial % len(departments)]
        # A placement service is a competent authority's: in 69, the Métropole de Lyon's or
        # the Rhône's; it orients children from its own communes.
        by_authority: dict[str, list[tuple[str, int]]] = {}
        for insee, population in data["communes"][self.department]:
            code = authority_of_commune(insee) or self.department
            by_authority.setdefault(code, []).append((insee, population))
        codes = sorted(by_authority)
        self.authority = codes[(serial // len(departments)) % len(codes)]
        communes = by_authority[self.authority]
        self.communes = [c for c, _ in communes]
        self.weights = [max(p, 1) for _, p in communes]
        token = issue_token("department", authority=self.authority)
        self.auth = {"Authorization": f"Bearer {token}"}

    def commune(self) -> str:
        return self.rng.choices(self.communes, self.weights)[0]

    def post(self, path: str, body: dict[str, Any] | None, name: str, expected: set[int]) -> Any:
        """POST and check; the parsed answer when it was a 2xx, else None."""
        with self.client.post(
            path, json=body, headers=self.auth, name=name, catch_response=True
        ) as resp:
            ok = check(resp, f"POST {name}", expected)
            if ok and resp.status_code == 409:
                RESULTS.conflicts += 1
            return resp.json() if ok and resp.status_code < 300 else None

    def search(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return self.post(SEARCH, body, SEARCH, {200})

    def think(self) -> None:
        gevent.sleep(self.rng.uniform(0.3, 1.5))

    @task(3)
    def search_only(self) -> None:
        if load_over():
            gevent.sleep(1)
            return
        if self.rng.random() < INVALID_SHARE:
            name = f"{SEARCH} [invalid]"
            body = invalid_search(self.rng, self.commune())
            with self.client.post(
                SEARCH, json=body, headers=self.auth, name=name, catch_response=True
            ) as resp:
                if check(resp, f"POST {name}", {422}):
                    RESULTS.invalid_expected += 1
            return
        self.search(make_search(self.rng, self.commune()))

    @task(2)
    def orient(self) -> None:
        """The whole orientation of one child or sibling group."""
        if load_over():
            gevent.sleep(1)
            return
        need = make_search(self.rng, self.commune())
        decided = date.today() - timedelta(days=self.rng.randint(0, 60))
        request = self.post(
            "/v1/requests",
            {
                "department": self.department,
                "children": need["children"],
                "origin": need["origin"],
                "timing": need["timing"],
                "public": need["public"],
                "formula": need["formula"],
                "urgency": self.rng.choice(["immediate", "days", "planned"]),
                "measure": {
                    "kind": self.rng.choice(["judicial", "judicial", "judicial", "administrative"]),
                    "decided_on": decided.isoformat(),
                },
                "reference": f"LOAD-{self.department}-{uuid.uuid4().hex[:10]}",
            },
            "/v1/requests",
            {201},
        )
        if request is None:
            return
        found = self.search(need)
        candidates = [
            p
            for p in (found or {}).get("proposals", [])
            if p["temporality"] == "current"
            and len(p["children"]) == len(need["children"])
            and p["free_places"] >= len(need["children"])
        ]
        self.think()
        hold = None
        for proposal in candidates[:3]:  # 409: someone took the place first
            hold = self.post(
                "/v1/holds",
                {
                    "request_id": request["id"],
                    "target": proposal["target"],
                    "expires_in_minutes": HOLD_MINUTES,
                },
                "/v1/holds",
                {201, 409},
            )
            if hold is not None:
                break
        if hold is None:
            self.post(
                f"/v1/requests/{request['id']}/cancel",
                {"reason": "aucune place (test de charge)"},
                "/v1/requests/[id]/cancel",
                {200},
            )
            return
        self.think()
        if self.rng.random() < 0.4:
            self.post(
                f"/v1/holds/{hold['id']}/release",
                {"reason": "orientation revue"},
                "/v1/holds/[id]/release",
                {200},
            )
            return
        if self.post(f"/v1/holds/{hold['id']}/admit", None, "/v1/holds/[id]/admit", {200}):
            if self.rng.random() < 0.5:  # children leave too, so places keep circulating
                self.think()
                self.post(
                    f"/v1/placements/{hold['id']}/exit",
                    {"reason": "fin de mesure"},
                    "/v1/placements/[id]/exit",
                    {200},
                )

    @task(1)
    def waiting_list(self) -> None:
        if load_over():
            gevent.sleep(1)
            return
        name = "/v1/requests?status=waiting"
        with self.client.get(
            f"/v1/requests?authority={self.authority}&status=waiting&limit=50",
            headers=self.auth,
            name=name,
            catch_response=True,
        ) as resp:
            check(resp, f"GET {name}", {200})


# --------------------------------------------------------------------------- dashboards


class Dashboard(User):
    """A page holding its live feed: counts events and reports each one's delivery latency."""

    weight = 2
    wait_time = constant(0.5)

    def on_start(self) -> None:
        data = fixture()
        n = next(_dashboard_serial)
        if n % NATIONAL_EVERY == NATIONAL_EVERY - 1:
            self.feed, self.path = "national", "/ws/national"
            token = issue_token("national")
        else:
            authorities = data["authorities"]
            self.feed = authorities[(n - n // NATIONAL_EVERY) % len(authorities)]
            self.path = f"/ws/authorities/{self.feed}"
            token = issue_token("department", authority=self.feed)
        self.header = [f"Authorization: Bearer {token}"]
        self.kind = "national" if self.feed == "national" else "department"
        self.record: dict[str, Any] = {
            "feed": self.feed,
            "start": data["start_ids"].get(self.feed),
            "ids": [],
            "closes": {},
            "connects": 0,
            "caught_up": 0,
        }
        RESULTS.dashboards.append(self.record)
        self.ws: websocket.WebSocket | None = None

    def on_stop(self) -> None:
        if self.ws is not None:
            self.ws.abort()

    def fire(self, name: str, started: float, length: int, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.time() - started) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )

    @task
    def listen(self) -> None:
        """Connect (resuming after the last event seen), then receive until closed."""
        ids = self.record["ids"]
        position = ids[-1] if ids else self.record["start"]
        url = self.host.replace("http", "ws", 1) + self.path
        if position:
            url += f"?last_event_id={position}"
        started = time.time()
        try:
            self.ws = websocket.create_connection(url, header=self.header, timeout=40)
        except Exception as exc:
            self.fire(f"connect {self.kind} feed", started, 0, exc)
            return
        self.record["connects"] += 1
        self.fire(f"connect {self.kind} feed", started, 0)
        connected = time.time()
        delivery = f"delivery {self.kind} feed"
        code: int | None = None
        try:
            while True:
                opcode, frame = self.ws.recv_data_frame(True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = close_code(frame)
                    break
                if opcode != websocket.ABNF.OPCODE_TEXT:
                    continue
                raw = frame.data.decode()
                event = json.loads(raw)
                if event.get("type") == "ping":
                    continue
                ids.append(event["id"])
                occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
                if occurred < connected:  # caught up after (re)connecting: not a live delivery
                    self.record["caught_up"] += 1
                    continue
                self.fire(delivery, occurred, len(raw))
        except (websocket.WebSocketException, OSError) as exc:
            code = -1
            self.fire(f"connection {self.kind} feed", started, 0, exc)
        finally:
            self.ws.abort()
            self.ws = None
        key = str(code)
        self.record["closes"][key] = self.record["closes"].get(key, 0) + 1
        if code not in (1000, 1001, 1013, -1):  # 4410 gap, 44xx refusals: not expected here
            self.fire(f"close {self.kind} feed", started, 0, RuntimeError(f"closed with {code}"))
