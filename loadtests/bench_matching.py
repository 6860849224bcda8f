"""Pure benchmark of the matching library: ranking searches and global assignment.

Run: ``.venv-dev/bin/python -m loadtests.bench_matching [--seed N]``. Prints figures
measured in this run only (no assertion): the database is replaced by numpy arrays that
play the SQL layer's part (hard-constraint prefilter, radius / department / nearest-K),
so the timings are those of the library plus the building of ``Offer`` objects, which
the real fetch also pays.

Synthetic country: offers spread over metropolitan France (1° × 1° cells stand for
departments, their 8 neighbours for bordering departments); about 40 % of offers have a
free place now, some only in 24 h / 7 days. Waiting requests gather around a few cities
in tension, as in real life, so that places are contended.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from matching import (
    CareMode,
    Child,
    DisabilityProfile,
    Need,
    Offer,
    Plan,
    Step,
    greedy,
    optimize,
    search,
)
from matching.vocabulary import legacy_offer_sets

MODES = [m.value for m in CareMode]
PROFILES = [p.value for p in DisabilityProfile]
TEMPORALITIES = ["current", "h1", "h24", "h48", "d7"]
CATEGORIES = ["177", "177", "177", "175", "172", "462", "176"]
EARTH_KM = 6371.0088


def haversine(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))


def dept_of(lat: np.ndarray | float, lon: np.ndarray | float) -> np.ndarray:
    return (np.floor(np.asarray(lat)).astype(int) * 100 + np.floor(np.asarray(lon) + 10)).astype(
        int
    )


@dataclass
class Country:
    """Column arrays of every offer (what the database holds)."""

    lat: np.ndarray
    lon: np.ndarray
    dept: np.ndarray
    kind: np.ndarray  # 0 unit, 1 carer
    category: np.ndarray
    age_min: np.ndarray
    age_max: np.ndarray
    sex_mask: np.ndarray  # bit 0 F, bit 1 M
    mode_mask: np.ndarray
    profile_mask: np.ndarray
    free: np.ndarray
    temporality: np.ndarray  # index in TEMPORALITIES
    age_days: np.ndarray
    structure: np.ndarray

    @property
    def size(self) -> int:
        return len(self.lat)


def make_country(rng: np.random.Generator, n: int) -> Country:
    lat = rng.uniform(42.5, 51.0, n)
    lon = rng.uniform(-4.5, 8.0, n)
    kind = (rng.random(n) < 0.4).astype(int)
    age_min = rng.choice([0, 0, 3, 6, 12], n)
    age_max = np.minimum(21, age_min + rng.choice([3, 6, 12, 18, 21], n))
    sex_mask = rng.choice([3, 3, 3, 1, 2], n)
    mode_mask = np.zeros(n, dtype=int)
    for bit, p in enumerate([0.35, 0.8, 0.25, 0.05, 0.1, 0.1]):
        mode_mask |= (rng.random(n) < p).astype(int) << bit
    mode_mask[mode_mask == 0] = 2  # at least "durable"
    profile_mask = np.zeros(n, dtype=int)
    for bit in range(len(PROFILES)):
        profile_mask |= (rng.random(n) < 0.12).astype(int) << bit
    free = rng.choice([0, 0, 0, 1, 1, 1, 2, 3], n)
    temporality = rng.choice([0, 0, 0, 0, 0, 0, 2, 3, 4], n)
    return Country(
        lat=lat,
        lon=lon,
        dept=dept_of(lat, lon),
        kind=kind,
        category=rng.choice(len(CATEGORIES), n),
        age_min=age_min,
        age_max=age_max,
        sex_mask=sex_mask,
        mode_mask=mode_mask,
        profile_mask=profile_mask,
        free=free,
        temporality=temporality,
        age_days=rng.exponential(5.0, n),
        structure=rng.integers(0, n // 3 + 1, n),
    )


def random_need(rng: np.random.Generator, lat: float, lon: float) -> Need:
    size = int(rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3]))
    children = []
    for _ in range(size):
        profiles = frozenset({str(rng.choice(PROFILES))}) if rng.random() < 0.25 else frozenset()
        months = int(rng.integers(0, 18)) * 12
        children.append(Child(months, str(rng.choice(["F", "M"])), profiles))
    timing = str(rng.choice(["durable", "durable", "urgence", "sequentiel"]))
    return Need(tuple(children), timing, origin_department=str(int(dept_of(lat, lon))))


def _legacy_bits(*modes: str) -> int:
    return sum(1 << MODES.index(m) for m in modes)


#: An offer's mask of care modes of old takes a (timing, mineur, enfant) need when it offers
#: that timing (or durable through mna / jeune_majeur / mere_enfant), a mode for minors and a
#: mode for a child alone — ``vocabulary.legacy_offer_sets`` as bit tests.
_DURABLE_TOO = _legacy_bits("mna", "jeune_majeur", "mere_enfant")
_MINEUR = _legacy_bits("urgence", "durable", "sequentiel", "mere_enfant")
_ENFANT = _legacy_bits("urgence", "durable", "sequentiel", "mna", "jeune_majeur")


def feasible_mask(c: Country, need: Need, per_child: bool) -> np.ndarray:
    """What the SQL WHERE clause does: hard constraints (whole group or any child)."""
    mode_bit = 1 << MODES.index(need.timing)
    ok_child = []
    for child in need.children:
        prof = sum(1 << PROFILES.index(p) for p in child.disability_profiles)
        sex_bit = 1 if child.sex == "F" else 2
        ok_child.append(
            (c.age_min * 12 <= child.age_months)
            & (child.age_months <= c.age_max * 12 + 11)
            & ((c.sex_mask & sex_bit) != 0)
            & ((c.profile_mask & prof) == prof)
        )
    timing = (c.mode_mask & mode_bit) != 0
    if need.timing == "durable":
        timing |= (c.mode_mask & _DURABLE_TOO) != 0
    needs_ok = timing & ((c.mode_mask & _MINEUR) != 0) & ((c.mode_mask & _ENFANT) != 0)
    base = needs_ok & (c.free >= (1 if per_child else need.size))
    combined = np.logical_or.reduce(ok_child) if per_child else np.logical_and.reduce(ok_child)
    return base & combined


def build_offer(c: Country, i: int, distance: float) -> Offer:
    kind = "carer" if c.kind[i] else "unit"
    return Offer(
        kind=kind,
        id=f"{kind[0]}{i}",
        department=str(c.dept[i]),
        commune=f"{c.lat[i]:.1f}/{c.lon[i]:.1f}",
        distance_km=float(distance),
        free_places=int(c.free[i]),
        age_min_months=int(c.age_min[i]) * 12,
        age_max_months=int(c.age_max[i]) * 12 + 11,
        sexes=frozenset(s for b, s in ((1, "F"), (2, "M")) if c.sex_mask[i] & b),
        **dict(
            zip(
                ("timings", "publics", "formulas"),
                legacy_offer_sets(m for b, m in enumerate(MODES) if c.mode_mask[i] >> b & 1),
                strict=True,
            )
        ),
        # Taken with support (#16, graded); the prefilter reads these offers, as search's
        # first read does (the silent ones are read only when these are short).
        disability_supported=frozenset(
            p for b, p in enumerate(PROFILES) if c.profile_mask[i] >> b & 1
        ),
        declared_age_days=float(c.age_days[i]),
        temporality=TEMPORALITIES[int(c.temporality[i])],
        structure_id=None if c.kind[i] else f"s{c.structure[i]}",
        category=None if c.kind[i] else CATEGORIES[int(c.category[i])],
        lat=float(c.lat[i]),
        lon=float(c.lon[i]),
    )


def make_fetch(
    c: Country, need: Need, lat: float, lon: float, k_nearest: int, timer: list[float]
) -> Callable[[Step], list[Offer]]:
    """The SQL layer's part for one need: prefilter, area, temporality, nearest K."""
    distance = haversine(lat, lon, c.lat, c.lon)
    origin = int(dept_of(lat, lon))
    neighbours = {origin + dy * 100 + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    temp_codes = np.array(TEMPORALITIES)[c.temporality]

    def fetch(step: Step) -> list[Offer]:
        t0 = time.perf_counter()
        mask = feasible_mask(c, need, step.split_siblings)
        mask &= np.isin(temp_codes, list(step.temporalities))
        if step.area != "national" and step.radius_km is not None:
            area = distance <= step.radius_km
            if step.area == "neighbours":
                area |= np.isin(c.dept, list(neighbours))
            mask &= area
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(distance[idx], kind="stable")[:k_nearest]]
        out = [build_offer(c, int(i), distance[i]) for i in idx]
        timer.append(time.perf_counter() - t0)
        return out

    return fetch


TENSION_CITIES = [(45.76, 4.84), (48.86, 2.35), (43.30, 5.37), (50.63, 3.06), (47.22, -1.55)]


def origin_point(rng: np.random.Generator) -> tuple[float, float]:
    if rng.random() < 0.8:
        lat, lon = TENSION_CITIES[int(rng.integers(len(TENSION_CITIES)))]
        return float(lat + rng.normal(0, 0.25)), float(lon + rng.normal(0, 0.35))
    return float(rng.uniform(42.5, 51.0)), float(rng.uniform(-4.5, 8.0))


def bench_search(rng: np.random.Generator, country: Country, n_needs: int) -> None:
    total: list[float] = []
    fetch_times: list[float] = []
    last_step: Counter[str] = Counter()
    splits = 0
    empty = 0
    steps_tried: list[int] = []
    for _ in range(n_needs):
        lat, lon = origin_point(rng)
        need = random_need(rng, lat, lon)
        timer: list[float] = []
        fetch = make_fetch(country, need, lat, lon, k_nearest=200, timer=timer)
        t0 = time.perf_counter()
        result = search(need, fetch, limit=10, max_distance_km=30.0)
        total.append(time.perf_counter() - t0)
        fetch_times.append(sum(timer))
        steps_tried.append(len(result.tried))
        last_step[result.tried[-1]] += 1
        splits += any(len(p.children) < need.size for p in result.proposals)
        empty += not result.proposals
    own = [t - f for t, f in zip(total, fetch_times, strict=True)]
    print(f"ranking: {n_needs} searches (limit 10, radius 30 km) over {country.size} offers")
    print(
        f"  library time per search  mean {1e3 * statistics.mean(own):.2f} ms, "
        f"p95 {1e3 * np.percentile(own, 95):.2f} ms, max {1e3 * max(own):.2f} ms"
    )
    print(
        f"  fake SQL + Offer building per search  mean {1e3 * statistics.mean(fetch_times):.2f} ms"
    )
    stops = ", ".join(f"{code} {n / n_needs:.0%}" for code, n in last_step.most_common())
    print(f"  steps tried mean {statistics.mean(steps_tried):.2f}; last step: {stops}")
    print(f"  split plans {splits}; empty answers {empty}")


def candidates_for(
    country: Country, needs: Sequence[tuple[str, Need, float, float]], k: int, radius: float
) -> dict[str, list[Offer]]:
    out: dict[str, list[Offer]] = {}
    for rid, need, lat, lon in needs:
        distance = haversine(lat, lon, country.lat, country.lon)
        mask = feasible_mask(country, need, per_child=False)
        mask &= (country.temporality == 0) & (distance <= radius)
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(distance[idx], kind="stable")[:k]]
        out[rid] = [build_offer(country, int(i), distance[i]) for i in idx]
    return out


def bench_assignment(
    rng: np.random.Generator, country: Country, n_requests: int, k: int, radius: float
) -> None:
    needs = []
    for r in range(n_requests):
        lat, lon = origin_point(rng)
        needs.append((f"r{r}", random_need(rng, lat, lon), lat, lon))
    t0 = time.perf_counter()
    cands = candidates_for(country, needs, k, radius)
    t_build = time.perf_counter() - t0
    pairs = sum(len(v) for v in cands.values())
    places = len({o.key for v in cands.values() for o in v})
    plain = [(rid, n) for rid, n, _, _ in needs]
    children = sum(n.size for _, n in plain)
    groups = sum(n.size > 1 for _, n in plain)
    print(
        f"assignment: {n_requests} requests ({children} children, {groups} sibling groups) "
        f"vs {country.size} offers; up to {k} candidates within {radius:.0f} km each"
    )
    print(
        f"  candidate pairs {pairs}, distinct offers {places} "
        f"(fake SQL + Offer building {t_build:.2f} s)"
    )

    def timed(label: str, fn: Callable[[], Plan]) -> Plan:
        t = time.perf_counter()
        plan = fn()
        dt = time.perf_counter() - t
        placed = sum(dict(plain)[a.request_id].size for a in plan.assignments)
        print(
            f"  {label:<26} {dt:6.3f} s  total {plan.total:8.3f}  "
            f"requests placed {len(plan.assignments):4d}  children {placed:4d}  "
            f"[{plan.method}]"
        )
        return plan

    g = timed("greedy (FCFS)", lambda: greedy(plain, cands))
    o = timed("optimize (score)", lambda: optimize(plain, cands))
    timed("optimize (placements)", lambda: optimize(plain, cands, priority="placements"))
    print(f"  optimum / greedy total ratio {o.total / g.total:.4f}")

    singles = [(rid, n) for rid, n in plain if n.size == 1]
    g1 = greedy(singles, cands)
    t = time.perf_counter()
    lsa = optimize(singles, cands, method="lsa")
    t_lsa = time.perf_counter() - t
    t = time.perf_counter()
    mil = optimize(singles, cands, method="milp")
    t_milp = time.perf_counter() - t
    print(
        f"  single children only ({len(singles)}): lsa {t_lsa:.3f} s, milp {t_milp:.3f} s, "
        f"same total {abs(lsa.total - mil.total) < 1e-9}, "
        f"optimum / greedy {lsa.total / g1.total:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--offers", type=int, default=20000, help="offers for ranking")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    country = make_country(rng, args.offers)
    print(f"seed {args.seed}")
    bench_search(rng, country, 1000)
    print()
    small = make_country(rng, 3000)
    bench_assignment(rng, small, 500, k=50, radius=100.0)
    print()
    bench_assignment(rng, small, 500, k=3000, radius=250.0)


if __name__ == "__main__":
    main()
