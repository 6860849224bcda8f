"""A foster carer's home cannot be located through search (issue #15, "Homes cannot be
located").

The attack of the issue, played against the service as deployed (``places run``): a
department user moves the search origin in small steps around a carer and bisects where the
rounded ``distance_km`` turns from 0 into 1; the transition points draw a circle whose centre
was, before the fix, the carer's home to the metre. Here two carers of one commune live 2.5 km
and 4 km apart on either side of the commune's point: every answer the attack gets is the
same for both (distance and score), equals the distance from the origin rounded to 0.01° to
the commune's point, and the circle's centre the attack computes is the commune's point —
the homes never enter any answer. Searches are not rate-limited on this server, so the
limiter is no part of the defence shown.
"""

import math
from typing import Any

import asyncpg
import httpx
import pytest

from loadtests.harness import ServiceProcess
from tests.support.factories import bearer

pytestmark = [pytest.mark.database, pytest.mark.server, pytest.mark.timeout(180)]

COMMUNE = "2B033"  # Bastia: no other test keeps carers there
HOMES = {"north-east": (2500.0, 45.0), "south-west": (4000.0, 225.0)}
"""Each carer's home: metres and azimuth from the commune's point."""
STEPS = 14
"""Bisection steps per direction: 3 km / 2**14 is under 20 cm, finer than the old attack."""


def moved(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """A point ``east_m`` east and ``north_m`` north of (lat, lon) (local flat Earth)."""
    return (
        lat + north_m / 111_320.0,
        lon + east_m / (111_320.0 * math.cos(math.radians(lat))),
    )


async def test_bisection_learns_the_commune_never_the_home(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        ids = await conn.fetch(
            """
            INSERT INTO foster_carers (agrement_number, agrement_department,
                                       department, commune, location, agrement_capacity,
                                       age_min_months, age_max_months, timings, publics,
                                       formulas, available_places,
                                       declared_by, issued_on, open_to_other_authorities)
            SELECT 'AF-HOME-' || h.name, '2B', '2B', cm.insee,
                   ST_Project(cm.location, h.metres, radians(h.azimuth))::geography,
                   2, 0, 227, ARRAY['durable'], ARRAY['mineur'], ARRAY['enfant'], 1, 'test',
                   current_date - 30, true
              FROM communes cm,
                   unnest($2::text[], $3::float8[], $4::float8[]) AS h(name, metres, azimuth)
             WHERE cm.insee = $1
            RETURNING id::text, agrement_number,
                      ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon
            """,
            COMMUNE,
            list(HOMES),
            [m for m, _ in HOMES.values()],
            [a for _, a in HOMES.values()],
        )
        commune = await conn.fetchrow(
            "SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon"
            " FROM communes WHERE insee = $1",
            COMMUNE,
        )
        carers = {r["id"]: r for r in ids}
        assert len(carers) == 2

        async def expected_km(lat: float, lon: float) -> float:
            """The distance the answer may carry: origin rounded to 0.01°, to the commune."""
            metres = await conn.fetchval(
                "SELECT ST_Distance(location, ST_SetSRID(ST_MakePoint($3, $2), 4326)::geography)"
                " FROM communes WHERE insee = $1",
                COMMUNE,
                round(lat, 2),
                round(lon, 2),
            )
            return float(round(metres / 1000.0))

        server = ServiceProcess(database, PLACES_RATE_LIMIT_SEARCH_PER_MINUTE="0")
        await server.astart()
        seen: list[dict[str, Any]] = []
        try:
            async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
                # A placement service far away, as in the issue (Bouches-du-Rhône).
                headers = bearer("department", authority="13")

                async def distance(lat: float, lon: float) -> float:
                    """One search of the attack: the distance both carers are said to be at
                    (asserted equal, to each other and to the commune's)."""
                    body = {
                        "children": [{"age": 8, "sex": "F"}],
                        "care_mode": "durable",
                        "urgency": "days",
                        "origin": {"lat": lat, "lon": lon},
                        "max_distance_km": 20,
                        "limit": 50,
                    }
                    r = await client.post("/v1/search", json=body, headers=headers)
                    assert r.status_code == 200, r.text
                    mine = [p for p in r.json()["proposals"] if p["target"]["id"] in carers]
                    assert len(mine) == 2, r.json()
                    seen.extend(mine)
                    a, b = mine
                    assert a["distance_km"] == b["distance_km"]
                    assert a["score"] == b["score"]
                    assert a["reasons"] == b["reasons"]
                    assert a["commune"] == b["commune"] == COMMUNE
                    assert "lat" not in a and "lon" not in a
                    assert a["distance_km"] == await expected_km(lat, lon)
                    return float(a["distance_km"])

                # The attack: from the point the attacker believes near the carer, bisect in
                # four directions where the distance turns from 0 into 1.
                lat0, lon0 = commune["lat"], commune["lon"]
                assert await distance(lat0, lon0) == 0
                edges = []
                for east, north in ((1, 0), (0, 1), (-1, 0), (0, -1)):
                    lo, hi = 0.0, 3000.0
                    assert await distance(*moved(lat0, lon0, east * hi, north * hi)) >= 1
                    for _ in range(STEPS):
                        mid = (lo + hi) / 2
                        far = await distance(*moved(lat0, lon0, east * mid, north * mid)) >= 1
                        lo, hi = (lo, mid) if far else (mid, hi)
                    edges.append(moved(lat0, lon0, east * lo, north * lo))
        finally:
            await server.astop()

        # What the attack learns: the centre of its circle, the same for both carers (every
        # answer was), and it is the commune's point up to the 0.01° rounding of origins.
        centre_lat = sum(e[0] for e in edges) / 4
        centre_lon = sum(e[1] for e in edges) / 4
        to_commune = await conn.fetchval(
            "SELECT ST_Distance(ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography,"
            " ST_SetSRID(ST_MakePoint($4, $3), 4326)::geography)",
            centre_lat,
            centre_lon,
            commune["lat"],
            commune["lon"],
        )
        assert to_commune < 1000, to_commune
        for carer in carers.values():
            to_home = await conn.fetchval(
                "SELECT ST_Distance(ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography,"
                " ST_SetSRID(ST_MakePoint($4, $3), 4326)::geography)",
                centre_lat,
                centre_lon,
                carer["lat"],
                carer["lon"],
            )
            assert to_home > 1500, (carer["agrement_number"], to_home)
        assert len(seen) == 2 * (1 + 4 * (1 + STEPS))
        # Every distance shown for a carer is whole kilometres.
        assert all(p["distance_km"] == int(p["distance_km"]) for p in seen)
    finally:
        await conn.execute("DELETE FROM foster_carers WHERE commune = $1", COMMUNE)
        await conn.close()
