"""Benchmark: what the security features of #14 cost on the declaration and search benchmarks.

Two features, each measured off and on within one run, on the same seeded database
(``PLACES_DATABASE_URL``), with the machinery of ``bench_declarations`` (wrk, a token per
establishment, a fresh Idempotency-Key per declaration) and ``bench_search`` (random needs,
one client, sequential):

- **audit** — periodic sealing of the audit hash chain: ``PLACES_AUDIT_SEAL_INTERVAL_SECONDS``
  ``0`` (off) vs ``1`` (on, a seal every second: far more often than production would);
- **limiter** — per-subject caps and rate limits (``api.throttle``): all ``0`` (off, as every
  other benchmark serves) vs on with limits too high to refuse anything, so that each search
  and each declaration pays the Redis token-bucket script and the concurrency slot.

Runs alternate (off/on, then on/off, …) so that the machine's drift falls on both sides; each
run serves ``places run`` afresh. Prints, per feature and benchmark, the median of the runs
off and on and the cost on/off. Prints only.

    .venv-dev/bin/python -m loadtests.bench_security --rounds 3 --seconds 20 --needs 300
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path

from loadtests.bench_declarations import load_units, lua_script, run_wrk
from loadtests.bench_search import over_http, random_needs
from loadtests.common import ensure_settings_database, percentile
from loadtests.harness import BENCH_LIMITS, serve

HIGH = str(10**9)
FEATURES: dict[str, dict[str, dict[str, str]]] = {
    "audit": {
        "off": {"PLACES_AUDIT_SEAL_INTERVAL_SECONDS": "0"},
        "on": {"PLACES_AUDIT_SEAL_INTERVAL_SECONDS": "1"},
    },
    "limiter": {
        "off": dict(BENCH_LIMITS),
        "on": {
            "PLACES_MAX_REQUESTS_PER_SUBJECT": "100000",
            "PLACES_MAX_FEEDS_PER_SUBJECT": "100000",
            "PLACES_RATE_LIMIT_SEARCH_PER_MINUTE": HIGH,
            "PLACES_RATE_LIMIT_WRITES_PER_MINUTE": HIGH,
        },
    },
}
METRICS = (
    # name, unit, higher is better
    ("declarations/s", "/s", True),
    ("declaration p50", "ms", False),
    ("declaration p95", "ms", False),
    ("search p50", "ms", False),
    ("search p95", "ms", False),
)


def one_run(
    env: dict[str, str], script: Path, needs: list[dict], args: argparse.Namespace
) -> dict[str, float]:
    """Serve with ``env``, run the declaration then the search benchmark against it."""
    with serve(args.workers, **env) as base:  # type: ignore[arg-type]
        run_wrk(base, script, 3, args.connections)  # warm-up
        decl = run_wrk(base, script, args.seconds, args.connections)
        latencies, _ = asyncio.run(over_http(base, needs))
    return {
        "declarations/s": (decl["requests"] - decl["non2xx"]) / decl["seconds"],
        "declaration p50": decl["p50"],
        "declaration p95": decl["p95"],
        "search p50": percentile(latencies, 0.5) * 1000,
        "search p95": percentile(latencies, 0.95) * 1000,
        "non-2xx": decl["non2xx"],
    }


def cost(off: float, on: float, higher_is_better: bool) -> float:
    """The relative cost of turning the feature on (positive: worse), in %."""
    if not off or not on:
        return float("nan")
    return (off / on - 1) * 100 if higher_is_better else (on / off - 1) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs per feature")
    parser.add_argument("--seconds", type=float, default=20, help="wrk duration per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--needs", type=int, default=300, help="searches per run")
    parser.add_argument(
        "--features", default=",".join(FEATURES), help="comma-separated: audit, limiter"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: scripts/setup --dev installs it (Debian package wrk)")
    features = [f for f in args.features.split(",") if f]
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown feature(s): {', '.join(sorted(unknown))}")
    dsn = ensure_settings_database()
    units = asyncio.run(load_units(dsn, args.units))
    if not units:
        raise SystemExit("no units: seed the database first (places seed)")
    needs = asyncio.run(random_needs(dsn, args.needs))
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        f: {"off": [], "on": []} for f in features
    }
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "declare.lua"
        script.write_text(lua_script(units))
        for r in range(args.rounds):
            for feature in features:
                order = ("off", "on") if r % 2 == 0 else ("on", "off")
                for mode in order:
                    env = {**BENCH_LIMITS, **FEATURES[feature][mode]}
                    run = one_run(env, script, needs, args)
                    results[feature][mode].append(run)
                    print(
                        f"round {r + 1} {feature} {mode:>3}: "
                        + "  ".join(f"{name} {run[name]:.1f}" for name, _, _ in METRICS)
                        + f"  non-2xx {run['non-2xx']:.0f}",
                        flush=True,
                    )
    print(
        f"\nsecurity cost: {args.rounds} alternated run(s) per mode; declarations {args.workers}"
        f" workers × {args.connections} connections (wrk) for {args.seconds:g} s; search"
        f" {args.needs} needs, one client, sequential; medians of the runs"
    )
    for feature in features:
        print(f"{feature}: {' vs '.join(f'{m} {FEATURES[feature][m]}' for m in ('off', 'on'))}")
        for name, unit, higher in METRICS:
            off = statistics.median(run[name] for run in results[feature]["off"])
            on = statistics.median(run[name] for run in results[feature]["on"])
            print(
                f"  {name:<16} off {off:8.1f} {unit:<3} on {on:8.1f} {unit:<3}"
                f" ratio on/off {on / off if off else float('nan'):.3f}"
                f"  cost {cost(off, on, higher):+.1f} %"
            )


if __name__ == "__main__":
    main()
