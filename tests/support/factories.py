"""Factories: tokens, headers, and the API objects tests start from (structures, carers,
placement requests, units with declared places, holds).

Shared by every module that drives the API, so that a change in how an object is made is
made once. Made through the API where the API is what is tested elsewhere (requests, holds,
declarations), straight in the database where only the row matters (structures, carers).
"""

import itertools
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from api.auth import issue_token
from api.requests.service import local_today
from geo.finess import make_finess
from matching.vocabulary import legacy_offer_sets, years_to_months

_serial = itertools.count(1)


def bearer(role: str, **scope: str | None) -> dict[str, str]:
    """An ``Authorization`` header for a token of the local issuer (the session's keys)."""
    return {"Authorization": f"Bearer {issue_token(role, **scope)}"}


def idem() -> dict[str, str]:
    """A fresh ``Idempotency-Key``: every write the API accepts needs one."""
    return {"Idempotency-Key": str(uuid.uuid4())}


async def make_structure(
    pool: asyncpg.Pool,
    department: str = "69",
    commune: str = "69123",
    category: str = "177",
    units: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A structure with its units (default: one unit of 10 places, 6–12 years, no snapshot).
    A unit may say its ages in months and its timings / publics / formulas, or as of old in
    years and ``care_modes`` (mapped as migration 0017 maps existing units)."""
    finess = make_finess(department, 900_000 + next(_serial))
    units = units or [{"name": "Unité A", "installed": 10}]
    async with pool.acquire() as conn, conn.transaction():
        structure_id = await conn.fetchval(
            """
            INSERT INTO structures (finess, name, category, department, commune, location)
            SELECT $1, $2, $3, $4, insee, location FROM communes WHERE insee = $5
            RETURNING id
            """,
            finess,
            f"Structure de test {finess}",
            category,
            department,
            commune,
        )
        unit_ids = []
        for u in units:
            unit_ids.append(
                await conn.fetchval(
                    """
                    INSERT INTO units (structure_id, name, age_min_months, age_max_months,
                                       sexes, timings, publics, formulas,
                                       disability_specialised, disability_supported, installed)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id
                    """,
                    structure_id,
                    u.get("name", "Unité"),
                    *_unit_needs(u),
                    u.get("disability_specialised", []),
                    # ``disability_profiles``: as before 0018, each taken with support.
                    u.get("disability_supported", u.get("disability_profiles", [])),
                    u.get("installed", 10),
                )
            )
    return {"id": structure_id, "finess": finess, "unit_ids": unit_ids}


def _unit_needs(u: dict[str, Any]) -> tuple[Any, ...]:
    """(age_min_months, age_max_months, sexes, timings, publics, formulas) of a unit dict."""
    low, high = years_to_months(u.get("age_min", 6), u.get("age_max", 12))
    timings, publics, formulas = legacy_offer_sets(u.get("care_modes", ["durable"]))
    return (
        u.get("age_min_months", low),
        u.get("age_max_months", high),
        u.get("sexes", ["F", "M"]),
        u.get("timings", sorted(timings)),
        u.get("publics", sorted(publics)),
        u.get("formulas", sorted(formulas)),
    )


async def make_carer(
    pool: asyncpg.Pool, department: str = "69", commune: str = "69266", capacity: int = 2
) -> uuid.UUID:
    """A foster carer 1.2 km from ``commune``, with no place available yet, employed by the
    authority that issued their agrément (valid since 30 days)."""
    n = next(_serial)
    async with pool.acquire() as conn:
        return await conn.fetchval(
            """
            INSERT INTO foster_carers (agrement_number, agrement_department, department,
                                       commune, location, agrement_capacity, age_min_months,
                                       age_max_months, timings, publics, formulas,
                                       available_places, declared_by, issued_on)
            SELECT $1, $2::text, $2::text, insee,
                   ST_Project(location, 1200, radians(45))::geography, $4, 0, 227,
                   ARRAY['durable'], ARRAY['mineur'], ARRAY['enfant'], 0, 'test',
                   current_date - 30
              FROM communes WHERE insee = $3
            RETURNING id
            """,
            f"AF-TEST-{n:06d}",
            department,
            commune,
            capacity,
        )


DEPT = "69"
"""The department the workflow tests work in (its communes are in the fixture dataset)."""
AUTHORITY = "69M"
"""The competent authority of the workflow's requests: the fixture communes of 69 (Lyon,
Villeurbanne) are in the Métropole de Lyon."""


def dept(authority: str = AUTHORITY) -> dict[str, str]:
    """The ``Authorization`` header of an authority's placement service (role ``department``)."""
    return bearer("department", authority=authority)


def request_body(n_children: int = 1, **override: Any) -> dict[str, Any]:
    """A valid placement request (siblings aged 6, 7, …); dates are the department's
    calendar (Paris), as the server computes them."""
    body: dict[str, Any] = {
        "department": DEPT,
        "children": [
            {"age": 6 + i, "sex": "F" if i % 2 else "M", "disability_profiles": []}
            for i in range(n_children)
        ],
        "origin": {"commune": "69123"},
        "timing": "durable",
        "urgency": "days",
        "measure": {
            "kind": "judicial",
            "decided_on": (local_today(DEPT) - timedelta(days=3)).isoformat(),
        },
        "reference": f"ASE69-{uuid.uuid4().hex[:10]}",
    }
    if "care_mode" in override:  # the deprecated form, tested as such: no new field beside
        del body["timing"]
    body.update(override)
    return body


async def new_request(
    client: httpx.AsyncClient, n_children: int = 1, authority: str = AUTHORITY, **override: Any
) -> dict[str, Any]:
    """A waiting placement request, created through the API (201 asserted) by the placement
    service of ``authority`` (the origin's: Lyon by default)."""
    body = request_body(n_children, **override)
    r = await client.post("/v1/requests", json=body, headers=dept(authority))
    assert r.status_code == 201, r.text
    return r.json()


async def new_unit(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    available: int = 2,
    installed: int = 10,
    reserved: int = 0,
    department: str = DEPT,
    commune: str = "69123",
) -> dict[str, Any]:
    """A unit whose establishment declared ``available`` free places (the rest occupied)."""
    s = await make_structure(pool, department=department, commune=commune)
    unit = {
        "id": str(s["unit_ids"][0]),
        "finess": s["finess"],
        "headers": bearer("structure", finess=s["finess"]),
    }
    r = await client.put(
        f"/v1/units/{unit['id']}/capacity",
        headers={**unit["headers"], **idem()},
        json={
            "temporality": "current",
            "installed": installed,
            "occupied": installed - available - reserved,
            "reserved": reserved,
            "available": available,
        },
    )
    assert r.status_code == 200, r.text
    return unit


async def new_carer(
    client: httpx.AsyncClient, pool: asyncpg.Pool, capacity: int = 2, available: int = 2
) -> dict[str, Any]:
    """An active carer who declared ``available`` places through the API; id and headers."""
    carer_id = await make_carer(pool, capacity=capacity)
    headers = bearer("carer", carer_id=str(carer_id))
    r = await client.put(
        f"/v1/foster-carers/{carer_id}/availability",
        headers=headers,
        json={"available_places": available, "status": "active"},
    )
    assert r.status_code == 200, r.text
    return {"id": str(carer_id), "headers": headers}


async def hold(
    client: httpx.AsyncClient, request: dict[str, Any], kind: str, target_id: str, **extra: Any
) -> httpx.Response:
    """Ask for a hold (``kind`` unit or carer) as the request's authority; the response is
    the caller's to check, refusals being what many tests are about."""
    return await client.post(
        "/v1/holds",
        json={"request_id": request["id"], "target": {"kind": kind, "id": target_id}, **extra},
        headers=dept(request["authority"]),
    )


def structure_body(finess: str, **over: Any) -> dict[str, Any]:
    """A valid registration (POST /v1/structures) body: a MECS with one unit."""
    b = {
        "finess": finess,
        "name": "MECS Les Tilleuls",
        "category": "177",
        "commune": "69266",
        "units": [
            {
                "name": "Les Grands",
                "age_min": 12,
                "age_max": 18,
                "sexes": ["F", "M"],
                "care_modes": ["durable", "urgence"],
                "disability_profiles": ["tsa"],
                "installed": 10,
            }
        ],
    }
    b.update(over)
    return b
