"""Reference loading and the synthetic national dataset, against a real PostGIS database.

The shared ``database`` fixture of conftest holds a handful of communes only; the seed needs
the whole referential, so this module creates its own database (dropped at the end) and
seeds it at a small scale: every property checked here must hold at any scale.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from rich.console import Console

from api.codes import DISABILITY_PROFILES, FORMULAS, PDE_CATEGORIES, PUBLICS, TIMINGS
from api.db import drop_database, ensure_database, migrate
from geo.finess import is_valid_finess
from geo.referential import load_communes, load_departments
from seed.national import SeedError, Summary, seed_national
from seed.reference import load_reference
from tests.support.env import ADMIN_DSN

pytestmark = pytest.mark.database

SEED_DSN = ADMIN_DSN.rsplit("/", 1)[0] + f"/places_test_seed_{os.getpid()}"
SCALE = 0.02
SEED = 424242
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def seeded() -> AsyncIterator[tuple[asyncpg.Connection, Summary]]:
    """A fresh migrated database with the referential and a small national dataset."""
    await drop_database(SEED_DSN)
    await ensure_database(SEED_DSN)
    conn: asyncpg.Connection | None = None
    try:
        await asyncio.to_thread(migrate, SEED_DSN)
        conn = await asyncpg.connect(SEED_DSN)
        await load_reference(conn)
        summary = await seed_national(conn, SEED, progress=False, scale=SCALE, now=NOW)
        yield conn, summary
    finally:
        if conn is not None:
            await conn.close()
        await drop_database(SEED_DSN)


async def _dump(conn: asyncpg.Connection) -> dict[str, list[Any]]:
    """Every seeded row in a stable order (locations as text), to compare two runs."""
    return {
        "structures": await conn.fetch(
            "SELECT id, finess, finess_ej, name, category, department, commune, address,"
            " ST_AsText(location), tarif_authority FROM structures ORDER BY id"
        ),
        "units": await conn.fetch("SELECT * FROM units ORDER BY id"),
        "snapshots": [  # but the writing transaction's id (0023), which no seed repeats
            tuple(v for k, v in r.items() if k != "changed_xid")
            for r in await conn.fetch(
                "SELECT * FROM capacity_snapshots ORDER BY unit_id, temporality"
            )
        ],
        "declarations": await conn.fetch("SELECT * FROM capacity_declarations ORDER BY id"),
        "carer_declarations": await conn.fetch("SELECT * FROM carer_declarations ORDER BY id"),
        "carers": await conn.fetch(
            "SELECT id, agrement_number, employer_authority, employer_structure, department,"
            " commune, ST_AsText(location), agrement_capacity, age_min_months, age_max_months,"
            " timings, publics, formulas,"
            " disability_specialised, disability_supported, status, status_until,"
            " available_places, declared_at,"
            " issued_on, valid_until, agrement_state, suspended_from, suspension_reason,"
            " withdrawn_on, withdrawal_reason, renewal_requested_on, derogation_children,"
            " derogation_reason FROM foster_carers ORDER BY id"
        ),
        "requests": await conn.fetch(
            "SELECT id, authority, reference, child_key, children, status, decided_on,"
            " created_at FROM placement_requests ORDER BY id"
        ),
        "holds": await conn.fetch(
            "SELECT id, request_id, unit_id, carer_id, places, status, reason_code, created_at"
            " FROM holds ORDER BY id"
        ),
        "events": await conn.fetch(
            "SELECT request_id, occurred_at, event, to_status, hold_id, reason_code"
            " FROM request_events ORDER BY id"
        ),
    }


async def test_reference_is_complete_and_idempotent(
    seeded: tuple[asyncpg.Connection, Summary],
) -> None:
    conn, _ = seeded
    again = await load_reference(conn)
    assert again["departments"] == 101 == len(load_departments())
    assert again["communes"] == len(load_communes())
    assert await conn.fetchval("SELECT count(*) FROM departments") == 101
    assert await conn.fetchval("SELECT count(*) FROM communes") == again["communes"]
    lyon = await conn.fetchrow(
        "SELECT name, department, ST_Y(location::geometry) AS lat FROM communes"
        " WHERE insee = '69123'"
    )
    assert lyon is not None
    assert (lyon["name"], lyon["department"]) == ("Lyon", "69")
    assert 45.5 < lyon["lat"] < 46.0


async def test_refuses_to_seed_over_an_existing_offer(
    seeded: tuple[asyncpg.Connection, Summary],
) -> None:
    conn, summary = seeded
    with pytest.raises(SeedError, match="replace"):
        await seed_national(conn, SEED + 1, progress=False, scale=SCALE, now=NOW)
    assert await conn.fetchval("SELECT count(*) FROM structures") == summary.structures


async def test_same_seed_same_rows_and_other_seed_other_rows(
    seeded: tuple[asyncpg.Connection, Summary],
) -> None:
    conn, summary = seeded
    before = await _dump(conn)
    other = await seed_national(conn, SEED + 1, progress=False, scale=SCALE, replace=True, now=NOW)
    other_finess = {r["finess"] for r in await conn.fetch("SELECT finess FROM structures")}
    again = await seed_national(conn, SEED, progress=False, scale=SCALE, replace=True, now=NOW)
    after = await _dump(conn)
    for table, rows in before.items():
        assert [tuple(r) for r in after[table]] == [tuple(r) for r in rows], table
    assert again.structures_by_category == summary.structures_by_category
    assert (again.units, again.carers, again.places_available) == (
        summary.units,
        summary.carers,
        summary.places_available,
    )
    assert other_finess != {r["finess"] for r in before["structures"]}
    assert other.structures > 0


async def test_summary_matches_the_database(seeded: tuple[asyncpg.Connection, Summary]) -> None:
    conn, summary = seeded
    by_category = dict(
        await conn.fetch("SELECT category, count(*) FROM structures GROUP BY category")
    )
    assert {k: v for k, v in summary.structures_by_category.items() if v} == by_category
    assert await conn.fetchval("SELECT count(*) FROM units") == summary.units
    assert await conn.fetchval("SELECT count(*) FROM foster_carers") == summary.carers
    current = await conn.fetchrow(
        "SELECT sum(installed) AS installed, sum(occupied) AS occupied,"
        " sum(available) AS available FROM capacity_snapshots WHERE temporality = 'current'"
    )
    assert current is not None
    assert current["installed"] == summary.places_installed
    assert current["occupied"] == summary.places_occupied
    assert current["available"] == summary.places_available
    assert summary.snapshots == await conn.fetchval("SELECT count(*) FROM capacity_snapshots")
    console = Console(record=True, width=120)
    console.print(summary.summary_table())
    assert "MECS" in console.export_text()


async def test_every_finess_is_valid_and_unique(seeded: tuple[asyncpg.Connection, Summary]) -> None:
    conn, _ = seeded
    rows = await conn.fetch("SELECT finess, finess_ej FROM structures")
    assert rows
    assert all(is_valid_finess(r["finess"]) for r in rows)
    assert all(is_valid_finess(r["finess_ej"]) for r in rows)
    numbers = [r["finess"] for r in rows]
    assert len(set(numbers)) == len(numbers)
    assert not {r["finess_ej"] for r in rows} & set(numbers)


async def test_the_dataset_follows_the_competent_authorities(
    seeded: tuple[asyncpg.Connection, Summary],
) -> None:
    """Every offer row belongs to its commune's authority: the Métropole de Lyon and the Rhône
    are distinct within 69, Corse and Alsace span their two departments."""
    conn, _ = seeded
    assert await conn.fetchval("SELECT count(*) FROM authorities") == 100
    for table in ("structures", "foster_carers"):
        wrong = await conn.fetchval(
            f"SELECT count(*) FROM {table} t JOIN communes c ON c.insee = t.commune"
            " WHERE t.authority <> c.authority"
        )
        assert wrong == 0, table
        by_authority = dict(
            await conn.fetch(
                f"SELECT authority, count(DISTINCT department) FROM {table}"
                " WHERE department IN ('69', '2A', '2B', '67', '68') GROUP BY authority"
            )
        )
        assert by_authority.get("20R") == 2 and by_authority.get("6AE") == 2, table
    # A foyer de l'enfance in every department: in the Rhône both authorities have carers.
    carers_69 = {
        r["authority"]
        for r in await conn.fetch(
            "SELECT DISTINCT authority FROM foster_carers WHERE department = '69'"
        )
    }
    assert carers_69 == {"69M", "69D"}


async def test_every_department_has_its_minimum(seeded: tuple[asyncpg.Connection, Summary]) -> None:
    conn, summary = seeded
    departments = await conn.fetchval("SELECT count(*) FROM departments")
    foyers = await conn.fetchval(
        "SELECT count(DISTINCT department) FROM structures WHERE category = '175'"
    )
    with_carers = await conn.fetchval("SELECT count(DISTINCT department) FROM foster_carers")
    assert foyers == departments == 101
    assert with_carers == departments
    assert summary.structures_by_category["177"] > 0
    assert summary.structures_by_category["462"] > 0


async def test_occupancy_is_high_and_uneven(seeded: tuple[asyncpg.Connection, Summary]) -> None:
    _, summary = seeded
    assert 0.85 <= summary.occupancy_rate <= 0.99
    assert summary.places_available > 0
    assert summary.carer_places_available > 0
    lowest_free = summary.highest_tension[0][2]
    highest_free = summary.lowest_tension[0][2]
    assert highest_free - lowest_free > 0.03
    assert summary.stale_declarations > 0


async def test_data_respects_the_domain_invariants(
    seeded: tuple[asyncpg.Connection, Summary],
) -> None:
    conn, _ = seeded
    categories = {r[0] for r in await conn.fetch("SELECT DISTINCT category FROM structures")}
    assert categories <= set(PDE_CATEGORIES)
    for column, codes in (("timings", TIMINGS), ("publics", PUBLICS), ("formulas", FORMULAS)):
        used = await conn.fetchval(
            f"SELECT array_agg(DISTINCT m) FROM (SELECT unnest({column}) AS m FROM units"
            f" UNION SELECT unnest({column}) FROM foster_carers) x"
        )
        assert set(used) <= set(codes), column
    # A pouponnière or a centre parental takes children under 3 only (0–35 months).
    assert not await conn.fetchval(
        "SELECT count(*) FROM units u JOIN structures s ON s.id = u.structure_id"
        " WHERE s.category IN ('172', '166') AND u.age_max_months > 35"
    )
    profiles = await conn.fetchval(
        "SELECT array_agg(DISTINCT p) FROM (SELECT unnest(disability_specialised"
        " || disability_supported) AS p FROM units"
        " UNION SELECT unnest(disability_specialised || disability_supported)"
        " FROM foster_carers) x"
    )
    assert set(profiles) <= set(DISABILITY_PROFILES)
    # Graded (#16): mostly with support, some specialised, every 238 unit specialised;
    # behavioural disorders the profile most often stated.
    levels = await conn.fetchrow(
        "SELECT sum(cardinality(disability_specialised)) AS specialised,"
        " sum(cardinality(disability_supported)) AS supported,"
        " count(*) FILTER (WHERE disability_specialised || disability_supported = '{}') AS silent,"
        " count(*) AS units FROM units"
    )
    assert 0 < levels["specialised"] < levels["supported"]
    assert levels["silent"] > levels["units"] / 2
    assert not await conn.fetchval(
        "SELECT count(*) FROM units u JOIN structures s ON s.id = u.structure_id"
        " WHERE s.category = '238' AND cardinality(u.disability_supported) > 0"
    )
    frequent = await conn.fetchval(
        "SELECT p FROM (SELECT unnest(disability_specialised || disability_supported) AS p"
        " FROM units) x GROUP BY p ORDER BY count(*) DESC LIMIT 1"
    )
    assert frequent == "troubles_psychiques_comportement"
    # Counts fill installed + additional exactly, and forecasts never lose free places.
    assert not await conn.fetchval(
        "SELECT count(*) FROM capacity_snapshots"
        " WHERE occupied + reserved + available + closed <> installed + additional"
        " OR installed <> (SELECT installed FROM units WHERE units.id = unit_id)"
    )
    assert not await conn.fetchval(
        "SELECT count(*) FROM capacity_snapshots f JOIN capacity_snapshots c"
        " ON c.unit_id = f.unit_id AND c.temporality = 'current'"
        " WHERE f.temporality <> 'current' AND f.available < c.available"
    )
    assert not await conn.fetchval(
        "SELECT count(*) FROM units u WHERE NOT EXISTS (SELECT 1 FROM capacity_snapshots s"
        " WHERE s.unit_id = u.id AND s.temporality = 'current')"
    )
    assert await conn.fetchval(
        "SELECT bool_and(version = 1 AND source = 'seed' AND declared_by = 'seed')"
        " FROM capacity_declarations"
    )
    # Each snapshot is its unit's latest declaration of that temporality; the older ones
    # are the year of history before it (seed.history.offer_history), all in the past year.
    assert not await conn.fetchval(
        "SELECT count(*) FROM capacity_snapshots s FULL JOIN (SELECT DISTINCT ON (unit_id,"
        " temporality) * FROM capacity_declarations ORDER BY unit_id, temporality,"
        " declared_at DESC) d USING (unit_id, temporality)"
        " WHERE d.unit_id IS NULL OR s.unit_id IS NULL OR d.available <> s.available"
        " OR d.declared_at <> s.declared_at OR d.occupied <> s.occupied"
    )
    assert await conn.fetchval(
        "SELECT min(declared_at) FROM capacity_declarations"
    ) > NOW - timedelta(days=366)
    # Carers: the latest history row equals the carer row (the snapshot).
    assert not await conn.fetchval(
        "SELECT count(*) FROM foster_carers f FULL JOIN (SELECT DISTINCT ON (carer_id) *"
        " FROM carer_declarations ORDER BY carer_id, declared_at DESC) d ON d.carer_id = f.id"
        " WHERE d.id IS NULL OR f.id IS NULL OR d.available_places <> f.available_places"
        " OR d.status <> f.status OR d.declared_at <> f.declared_at OR d.source <> 'seed'"
        " OR d.status_until IS DISTINCT FROM f.status_until"
    )
    # Carers: nothing free unless active; leave has an end date in the future.
    assert not await conn.fetchval(
        "SELECT count(*) FROM foster_carers WHERE status <> 'active' AND available_places > 0"
    )
    assert not await conn.fetchval(
        "SELECT count(*) FROM foster_carers WHERE status = 'leave'"
        " AND (status_until IS NULL OR status_until <= $1::date)",
        NOW.date(),
    )
    # Communes belong to the row's department; structures within 2 km of their commune,
    # carers' homes within 3 km.
    assert not await conn.fetchval(
        "SELECT count(*) FROM structures s JOIN communes c ON c.insee = s.commune"
        " WHERE c.department <> s.department"
    )
    assert not await conn.fetchval(
        "SELECT count(*) FROM foster_carers f JOIN communes c ON c.insee = f.commune"
        " WHERE c.department <> f.department"
    )
    far = await conn.fetchrow(
        "SELECT (SELECT max(ST_Distance(s.location, c.location)) FROM structures s"
        "        JOIN communes c ON c.insee = s.commune AND c.department = s.department) AS s,"
        "       (SELECT max(ST_Distance(f.location, c.location)) FROM foster_carers f"
        "        JOIN communes c ON c.insee = f.commune AND c.department = f.department) AS f"
    )
    assert far is not None
    assert far["s"] <= 2_000
    assert far["f"] <= 3_000
    assert await conn.fetchval(
        "SELECT bool_and(agrement_department = department) FROM foster_carers"
    )


async def test_placement_services_are_counted_once_through_their_carers(
    seeded: tuple[asyncpg.Connection, Summary],
) -> None:
    """A service de placement familial (236) has no unit, so no snapshot and nothing a
    search could propose at its office: its capacity is its carers', each of whom references
    it as employer. The totals count those places once, as carers' places (those whose
    agrément is valid today and who are not on leave)."""
    conn, summary = seeded
    assert summary.structures_by_category["236"] > 0
    assert not await conn.fetchval(
        "SELECT count(*) FROM units u JOIN structures s ON s.id = u.structure_id"
        " WHERE s.category = '236'"
    )
    # Every carer is employed by its department or by a placement service of its department.
    unlinked = await conn.fetch(
        "SELECT f.id FROM foster_carers f"
        " WHERE f.employer_authority IS DISTINCT FROM f.authority"
        " AND NOT EXISTS (SELECT 1 FROM structures s WHERE s.category = '236'"
        "   AND s.department = f.department AND s.id = f.employer_structure)"
    )
    assert unlinked == []
    by_service = await conn.fetchrow(
        "SELECT count(*) AS carers,"
        " coalesce(sum(f.agrement_capacity) FILTER (WHERE f.status = 'active'"
        "   AND places_agrement_valid(f.agrement_state, f.issued_on, f.valid_until,"
        "       f.suspended_from, f.suspended_until, current_date)), 0) AS places"
        " FROM foster_carers f JOIN structures s ON s.category = '236'"
        "  AND f.employer_structure = s.id"
    )
    assert by_service is not None
    assert 0 < by_service["carers"] == summary.service_carers < summary.carers
    assert by_service["places"] == summary.service_carer_places > 0
    # National totals: units' places (no 236 among them) plus active carers' agréments.
    totals = await conn.fetchrow(
        "SELECT (SELECT sum(cs.installed) FROM capacity_snapshots cs"
        "        WHERE cs.temporality = 'current') AS units,"
        "       (SELECT sum(agrement_capacity) FROM foster_carers"
        "        WHERE status = 'active' AND places_agrement_valid(agrement_state, issued_on,"
        "              valid_until, suspended_from, suspended_until, current_date)) AS carers"
    )
    assert totals is not None
    assert (totals["units"], totals["carers"]) == (
        summary.places_installed,
        summary.carer_places,
    )


async def test_twelve_months_of_history(seeded: tuple[asyncpg.Connection, Summary]) -> None:
    """The workflow's past (#18): coherent transitions, coded outcomes, a child asked again
    under one key, placements outside the authority, no carer's places held today."""
    conn, summary = seeded
    assert await conn.fetchval("SELECT count(*) FROM placement_requests") == summary.requests > 0
    assert summary.admissions > 0 and summary.outside_admissions > 0
    assert summary.re_requested > 0
    oldest = await conn.fetchval("SELECT min(created_at) FROM placement_requests")
    assert (NOW - oldest).days <= 365
    assert await conn.fetchval("SELECT max(occurred_at) FROM request_events") < NOW
    # Each request's events chain: every one starts where the previous ended.
    broken = await conn.fetchval(
        """
        SELECT count(*) FROM (
            SELECT from_status, lag(to_status) OVER (PARTITION BY request_id ORDER BY id) AS prev
              FROM request_events) e
         WHERE e.prev IS DISTINCT FROM e.from_status
        """
    )
    assert broken == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM placement_requests r WHERE status <> (SELECT to_status"
            " FROM request_events e WHERE e.request_id = r.id ORDER BY id DESC LIMIT 1)"
        )
        == 0
    )
    statuses = {r["status"] for r in await conn.fetch("SELECT DISTINCT status FROM holds")}
    assert "held" not in statuses and {"admitted", "exited", "refused"} <= statuses
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM holds WHERE carer_id IS NOT NULL AND status = 'admitted'"
        )
        == 0
    )
    # One child, several requests: a reference asked again keeps its key.
    again = await conn.fetchval(
        "SELECT count(*) FROM (SELECT child_key FROM placement_requests GROUP BY child_key"
        " HAVING count(*) > 1 AND count(DISTINCT reference) = 1) k"
    )
    assert again == summary.re_requested
    outside = await conn.fetchval(
        """
        SELECT count(*) FROM request_events e
          JOIN placement_requests r ON r.id = e.request_id
          JOIN holds h ON h.id = e.hold_id
          LEFT JOIN units u ON u.id = h.unit_id
          LEFT JOIN structures s ON s.id = u.structure_id
          LEFT JOIN foster_carers c ON c.id = h.carer_id
         WHERE e.event = 'admitted' AND coalesce(s.authority, c.authority) <> r.authority
        """
    )
    assert outside > 0
    situations = await conn.fetchval("SELECT count(DISTINCT situation) FROM request_situations")
    assert situations == 6
