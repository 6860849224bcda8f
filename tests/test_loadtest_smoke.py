"""The load test's own logic: CSV parsing, event accounting, thresholds, generated bodies;
and one short end-to-end run (a small dataset, one worker, a few seconds of locust).

Nothing here asserts a timing: the run's latency checks may pass or fail on a busy machine,
only the checks that are about correctness (no 5xx, no unexpected answer, no lost event)
must pass.
"""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.db import drop_database
from loadtests.run_load import (
    DECLARATIONS,
    SEARCH,
    EndpointStats,
    Limits,
    account_feeds,
    evaluate,
    read_stats_csv,
)
from tests.support.env import ADMIN_DSN

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)


def stats_row(method: str, name: str, requests: int, failures: int, p95: str) -> str:
    return (
        f"{method},{name},{requests},{failures},5,6,1,90,100,2.5,0,5,6,7,8,9,{p95},20,30,40,50,90"
    )


@pytest.mark.pure
def test_read_stats_csv(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                stats_row("POST", "/v1/search", 10, 0, "42"),
                stats_row("WS", "delivery national feed", 0, 0, "N/A"),
                stats_row("", "Aggregated", 10, 1, "42"),
            ]
        )
    )
    stats = read_stats_csv(path)
    assert stats["POST /v1/search"] == EndpointStats("POST /v1/search", 10, 0, 5.0, 42.0, 30.0, 2.5)
    assert stats["WS delivery national feed"].p95 is None
    assert stats["Aggregated"].failures == 1


@pytest.mark.pure
def test_account_feeds_counts_lost_in_flight_and_duplicates() -> None:
    stopped_at = 1_000.0  # entries up to 998,000 ms must have been delivered
    streams = {
        "69": ["997000-0", "997500-0", "998500-0"],
        "national": ["997000-0", "997000-1", "997500-0", "998500-0"],
    }
    dashboards = [
        # got everything but the last entry, published 1.5 s before it stopped: in flight
        {"feed": "69", "start": "1-0", "ids": ["997000-0", "997500-0"], "closes": {"1013": 1}},
        # missed 997000-1: lost; received one entry twice
        {
            "feed": "national",
            "start": "1-0",
            "ids": ["997000-0", "997500-0", "997500-0", "998500-0"],
            "closes": {},
            "caught_up": 2,
        },
        # no start position: accountable from the first event it saw
        {"feed": "69", "start": None, "ids": ["997500-0", "998500-0"], "closes": {}},
    ]
    account = account_feeds(dashboards, streams, stopped_at)
    assert account.dashboards == 3
    assert account.lost == 1
    assert account.lost_samples == ["national:997000-1"]
    assert account.in_flight == 1
    assert account.duplicated == 1
    assert account.expected == 2 + 4 + 2
    assert account.delivered == 2 + 3 + 2
    assert account.unknown == 0
    assert account.caught_up == 2
    assert account.closes == {"1013": 1}


def good_stats() -> dict[str, EndpointStats]:
    names = [SEARCH, *DECLARATIONS]
    stats = {n: EndpointStats(n, 100, 0, 10.0, 50.0, 80.0, 1.0) for n in names}
    stats["Aggregated"] = EndpointStats("Aggregated", 300, 0, 10.0, 50.0, 80.0, 3.0)
    return stats


def failed(checks: list) -> set[str]:
    return {c.name for c in checks if not c.passed}


@pytest.mark.pure
def test_evaluate_passes_and_fails_each_threshold() -> None:
    statuses = {
        "POST /v1/search": {"200": 100},
        "PUT /v1/units/[id]/capacity [invalid]": {"422": 5},
    }
    peaks = {101: 190.0, 102: 210.0}
    assert failed(evaluate(good_stats(), statuses, 0, peaks)) == set()

    assert failed(evaluate(good_stats(), {"POST /v1/holds": {"201": 3, "503": 1}}, 0, peaks)) == {
        "5xx responses"
    }
    assert failed(evaluate(good_stats(), statuses, 2, peaks)) == {"lost events"}

    slow = good_stats()
    slow[SEARCH] = EndpointStats(SEARCH, 100, 0, 10.0, 101.0, 200.0, 1.0)
    assert failed(evaluate(slow, statuses, 0, peaks)) == {f"{SEARCH} p95 ms"}

    missing = good_stats()
    del missing[DECLARATIONS[1]]  # not measured: fails rather than passes silently
    assert failed(evaluate(missing, statuses, 0, peaks)) == {f"{DECLARATIONS[1]} p95 ms"}

    errors = good_stats()
    errors["Aggregated"] = EndpointStats("Aggregated", 300, 4, 10.0, 50.0, 80.0, 3.0)
    assert failed(evaluate(errors, statuses, 0, peaks)) == {
        "unexpected responses (locust failures)"
    }

    assert failed(evaluate(good_stats(), statuses, 0, {101: 301.0})) == {"worker 101 peak RSS MB"}
    assert failed(evaluate(good_stats(), statuses, 0, {})) == {
        "worker peak RSS MB (no worker sampled)"
    }
    assert failed(evaluate(slow, statuses, 0, peaks, Limits(search_p95_ms=150))) == set()


@pytest.mark.pure
def test_locustfile_bodies_follow_the_api_schemas() -> None:
    """Valid bodies pass the API's own models, invalid ones are refused by them or by the
    capacity invariants. In a subprocess: importing locust monkey-patches the process."""
    script = textwrap.dedent(
        """
        import random
        from pydantic import ValidationError
        from api.capacity.schemas import CapacityIn
        from api.capacity.service import check_invariants, merge
        from api.errors import DomainError
        from api.search.schemas import SearchIn
        from loadtests import locustfile as lf

        rng = random.Random(3)
        for _ in range(300):
            SearchIn.model_validate(lf.make_search(rng, "69123"))
            try:
                SearchIn.model_validate(lf.invalid_search(rng, "69123"))
            except ValidationError:
                pass
            else:
                raise AssertionError("an invalid search passed")
            snap = {"installed": rng.randint(0, 30), "additional": rng.randint(0, 2),
                    "reserved": rng.randint(0, 2), "closed": rng.randint(0, 2), "occupied": 0,
                    "available": 0, "available_gender": "any"}
            body = CapacityIn.model_validate({"temporality": "current",
                                              **lf.unit_counts(snap, 10, rng)})
            if snap["reserved"] + snap["closed"] <= snap["installed"] + snap["additional"]:
                check_invariants(merge(snap, body))
            body, headers, status = lf.invalid_declaration(rng, snap, 10, 4)
            if status == 422:
                try:
                    check_invariants(merge(snap, CapacityIn.model_validate(body)))
                except (ValidationError, DomainError):
                    pass
                else:
                    raise AssertionError(f"an invalid declaration passed: {body}")
            elif status == 428:
                assert "Idempotency-Key" not in headers
            else:
                assert status == 409 and headers["If-Match"] != '"4"'
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


@pytest.fixture
def load_databases() -> Iterator[tuple[str, str]]:
    names = (f"places_test_{os.getpid()}_load", f"places_test_{os.getpid()}_load_tpl")
    yield names
    base = ADMIN_DSN.rsplit("/", 1)[0]
    for name in names:
        asyncio.run(drop_database(f"{base}/{name}"))


@pytest.mark.database
@pytest.mark.server  # run_load starts places run
@pytest.mark.timeout(400)  # seeds a template, then 6 s of locust; the run itself allows 180 s
def test_smoke_run(load_databases: tuple[str, str], tmp_path: Path) -> None:
    """The whole chain on a small dataset: database copy, service, priming, locust with the
    three user classes, accounting and thresholds."""
    database, template = load_databases
    env = {**os.environ, "PLACES_DATABASE_URL": ADMIN_DSN}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "loadtests.run_load", "--workers", "1", "--users", "10"),
            *("--spawn-rate", "10", "--seconds", "6", "--drain", "3", "--departments", "3"),
            *("--database", database, "--template", template, "--scale", "0.02"),
            *("--redis-url", "redis://127.0.0.1:6379/15", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert (run / "report.html").exists()
    checks = {c["name"]: c for c in summary["checks"]}
    for name in ("5xx responses", "unexpected responses (locust failures)", "lost events"):
        assert checks[name]["passed"], (name, summary["unexpected_samples"], summary["events"])
    assert summary["endpoints"]["PUT /v1/units/[id]/capacity"]["requests"] > 0
    assert summary["endpoints"]["POST /v1/search"]["requests"] > 0
    events = summary["events"]
    assert events["emitted"] > 0
    assert events["dashboards"] >= 1 and events["delivered"] == events["expected"] > 0
    assert summary["worker_peak_rss_mb"]
    assert ("PASSED" if summary["passed"] else "FAILED") in proc.stdout
