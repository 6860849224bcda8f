"""Benchmark: the department dashboard on a slow phone — bytes sent and time to usable.

Serves the API (one worker) on ``PLACES_DATABASE_URL`` (the seeded national dataset), makes
sure the authority has a waiting list (``--requests`` waiting requests referenced
``BENCH-PAGES-…``, created through the API when missing, cancelled at the end), then opens
``/ui/autorites/<authority>`` in Debian's Chromium with the issue's phone profile, through the
DevTools protocol: ``Network.emulateNetworkConditions`` (1.6 Mbit/s down, 750 kbit/s up, 150 ms
round trip) and ``Emulation.setCPUThrottlingRate`` (4). "Usable" is the issue's definition:
the waiting list rendered (no "Chargement…" left in it) and the search button enabled. Each
run is a cold load (a new browser context, empty cache) then a warm one (same context:
immutable assets from the cache). Prints the median of ``--runs`` runs — seconds to usable,
bytes transferred before it and in all (once the network is idle: the offer, the map, the
agréments and the fonts come after) — and each response's type with its transferred
(compressed) size for the last cold run.

    .venv-dev/bin/python -m loadtests.bench_pages --authority 59 --runs 3
"""

import argparse
import asyncio
import json
import os
import statistics
from collections import defaultdict
from typing import Any

import httpx
from playwright.async_api import Browser, async_playwright

from api.auth import issue_token
from api.requests.service import local_today
from loadtests.common import ensure_settings_database
from loadtests.harness import serve

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PROFILE = {
    "offline": False,
    "latency": 150,  # ms, round trip
    "downloadThroughput": 1_600_000 / 8,  # bytes/s
    "uploadThroughput": 750_000 / 8,
}
CPU_SLOWDOWN = 4
PREFIX = "BENCH-PAGES-"
TARGET_S = 2.0

USABLE = """() => {
  const body = document.querySelector('#table-attente tbody');
  const button = document.querySelector('#form-recherche button[type=submit]');
  const styled = [...document.querySelectorAll('link[rel=stylesheet]')].every((l) => l.sheet);
  return styled && body && !body.textContent.includes('Chargement') && button && !button.disabled;
}"""
"""The page's stylesheets count too: a list drawn before they arrive cannot be seen yet."""


async def ensure_waiting(
    base: str, token: str, authority: str, department: str, n: int
) -> list[str]:
    """``n`` waiting requests of the benchmark in ``authority`` (created when missing)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        page = (await client.get("/v1/requests", params={"status": "waiting", "limit": 200})).json()
        mine = [r["id"] for r in page.get("items", []) if r["reference"].startswith(PREFIX)]
        commune = (await client.get(f"/ui/geo/communes?authority={authority}")).json()
        communes = commune["items"]
        origin = max(communes, key=lambda c: c.get("population", 0))["insee"]
        for i in range(len(mine), n):
            body = {
                "department": department,
                "children": [{"age": 3 + i % 14, "sex": "FM"[i % 2], "disability_profiles": []}],
                "origin": {"commune": origin},
                "care_mode": "durable",
                "urgency": ("immediate", "days", "planned")[i % 3],
                "measure": {"kind": "judicial", "decided_on": local_today(department).isoformat()},
                "reference": f"{PREFIX}{os.getpid()}-{i}",
            }
            r = await client.post(
                "/v1/requests", json=body, headers={"Idempotency-Key": f"{PREFIX}{os.getpid()}-{i}"}
            )
            r.raise_for_status()
            mine.append(r.json()["id"])
        return mine


async def cancel(base: str, token: str, ids: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for request_id in ids:
            await client.post(
                f"/v1/requests/{request_id}/cancel",
                json={"reason": "benchmark"},
                headers={"Idempotency-Key": f"cancel-{request_id}"},
            )


async def load_once(browser: Browser, base: str, path: str, token: str) -> list[dict[str, Any]]:
    """One cold and one warm load in a fresh context: seconds to usable, bytes transferred."""
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="fr-FR", base_url=base
    )
    await context.add_init_script(f"sessionStorage.setItem('places.jeton', {json.dumps(token)})")
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", PROFILE)
    await cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    types: dict[str, str] = {}
    sizes: dict[str, float] = defaultdict(float)
    cdp.on("Network.responseReceived", lambda e: types.__setitem__(e["requestId"], e["type"]))
    cdp.on(
        "Network.loadingFinished",
        lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]),
    )
    out = []
    for kind in ("froid", "chaud"):
        types.clear()
        sizes.clear()
        await page.goto(path, wait_until="commit")
        await page.wait_for_function(USABLE, timeout=60_000, polling=50)
        seconds = await page.evaluate("performance.now() / 1000")
        before = sum(sizes.values())
        # The rest of the page (offer, map, agréments, fonts) loads after "usable".
        await page.wait_for_load_state("networkidle", timeout=30_000)
        by_type: dict[str, float] = defaultdict(float)
        for request_id, size in sizes.items():
            by_type[types.get(request_id, "Other")] += size
        out.append(
            {
                "kind": kind,
                "seconds": seconds,
                "before": before,
                "bytes": sum(sizes.values()),
                "types": by_type,
            }
        )
    await context.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authority", default="59", help="the dashboard's authority (59: Nord)")
    parser.add_argument("--requests", type=int, default=34, help="waiting requests to show")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_settings_database()
    department = args.authority[:2]
    token = issue_token("department", authority=args.authority, ttl_minutes=60)
    with serve() as base:
        ids = await ensure_waiting(base, token, args.authority, department, args.requests)
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                runs = [
                    await load_once(browser, base, f"/ui/autorites/{args.authority}", token)
                    for _ in range(args.runs)
                ]
                await browser.close()
        finally:
            await cancel(base, token, ids)
    print(
        f"/ui/autorites/{args.authority}, {len(ids)} waiting requests, 390×844, "
        f"1.6 Mbit/s, 150 ms RTT, CPU ×{CPU_SLOWDOWN}; median of {args.runs}"
    )
    for i, kind in enumerate(("froid", "chaud")):
        seconds = statistics.median(r[i]["seconds"] for r in runs)
        before = statistics.median(r[i]["before"] for r in runs) / 1000
        kb = statistics.median(r[i]["bytes"] for r in runs) / 1000
        verdict = "OK" if seconds < TARGET_S else f"over {TARGET_S} s"
        print(
            f"  {kind}: usable in {seconds:.2f} s ({verdict}), {before:.0f} kB transferred "
            f"before, {kb:.0f} kB in all"
        )
    print("  last cold load by type, in all (kB transferred):")
    for kind, size in sorted(runs[-1][0]["types"].items(), key=lambda kv: -kv[1]):
        print(f"    {kind:<12} {size / 1000:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
