"""Import of the national agrément file against the real database: the documented layout,
new carers at their commune's point, every refused-line reason with nothing written,
idempotence (a second run writes nothing), an update of an existing carer, a suspension
that takes the free places with it, a batch the database refuses (a concurrent writer's
lock) writing nothing, a carer with pending holds left to the API, and the ``places
import-agrements`` command end to end.

Each test gets its own copy of a small migrated database (with one placement service,
FINESS 236), so counts are absolute; the holds test runs on the suite's database, through
the API that makes the hold.
"""

import asyncio
import csv
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest

from api.db import drop_database, init_connection
from api.events import FIELDS
from geo.finess import finess_check_key
from interop.agrements_import import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    FileRefused,
    ImportReport,
    import_agrements,
    plus_years,
)
from tests.support.database import create_fixture_database
from tests.support.env import ADMIN_DSN
from tests.support.factories import hold, make_carer, new_request

BASE = ADMIN_DSN.rsplit("/", 1)[0]
TEMPLATE = f"places_test_agrements_{os.getpid()}"
ROOT = Path(__file__).resolve().parent.parent
SERVICE_FINESS = "69000100" + finess_check_key("69000100")
TODAY = date.today()
ISSUED = (TODAY - timedelta(days=400)).isoformat()

HEADER = ";".join(REQUIRED_COLUMNS)


def line(**over: str) -> str:
    """A valid line of the required columns (an agrément of Villeurbanne, 69M), overridden."""
    values = {
        "number": "AF-69-000001",
        "department": "69",
        "issued_on": ISSUED,
        "valid_until": "",
        "capacity": "3",
        "derogation_children": "",
        "derogation_reason": "",
        "derogation_until": "",
        "state": "valid",
        "state_from": "",
        "state_reason": "",
        "commune": "69266",
        "employer": "",
    }
    values.update(over)
    return ";".join(values[c] for c in REQUIRED_COLUMNS)


def csv_file(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


GOOD = [
    line(),  # 2: Villeurbanne, employed by its authority (default)
    line(number="AF-69-000002", commune="69123", employer=SERVICE_FINESS),  # 3: a service's
    line(  # 4: a derogation for a sibling group
        number="AF-2A-000003",
        department="2A",
        commune="2A004",
        capacity="5",
        derogation_children="5",
        derogation_reason="fratrie",
        valid_until=(TODAY + timedelta(days=700)).isoformat(),
    ),
    line(  # 5: suspended, with its end
        number="AF-13-000004",
        department="13",
        commune="13055",
        state="suspended",
        state_from=(TODAY - timedelta(days=10)).isoformat(),
        state_reason="enquete_administrative",
        employer="13",
    ),
]


@pytest.fixture(scope="module")
async def template() -> AsyncIterator[str]:
    dsn = f"{BASE}/{TEMPLATE}"
    await create_fixture_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO structures (finess, name, category, department, commune, location)"
            " SELECT $1, 'Service de placement familial Le Lien', '236', '69', insee, location"
            "   FROM communes WHERE insee = '69123'",
            SERVICE_FINESS,
        )
    finally:
        await conn.close()
    yield TEMPLATE
    await drop_database(dsn)


@pytest.fixture
async def copy(template: str) -> AsyncIterator[str]:
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    yield f"{BASE}/{name}"
    await drop_database(f"{BASE}/{name}")


@pytest.fixture
async def conn(copy: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(copy)
    await init_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()


def refused(report: ImportReport) -> dict[int, tuple[str, str]]:
    return {r.line: (r.field, r.reason) for r in report.rejected}


async def carers(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        """
        SELECT c.*, ST_Equals(c.location::geometry, cm.location::geometry) AS at_commune_point,
               places_agrement_state(c.agrement_state, c.issued_on, c.valid_until,
                                     c.suspended_from, c.suspended_until, current_date) AS state
          FROM foster_carers c JOIN communes cm ON cm.insee = c.commune
        """
    )
    return {r["agrement_number"]: r for r in rows}


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await conn.fetchval("SELECT count(*) FROM outbox_events"),
        await conn.fetchval("SELECT count(*) FROM audit_entries"),
        await conn.fetchval("SELECT count(*) FROM carer_declarations"),
    )


# --------------------------------------------------------------------------- layout


@pytest.mark.pure
def test_layout_is_documented_column_by_column():
    """docs/api.md documents each column the reader knows, in the reader's order."""
    doc = (ROOT / "docs" / "api.md").read_text()
    section = doc.split("## Import of the national agrément file", 1)[1].split("\n## ", 1)[0]
    positions = [section.find(f"| `{c}` |") for c in COLUMNS]
    assert all(p > 0 for p in positions), dict(zip(COLUMNS, positions, strict=True))
    assert positions == sorted(positions)
    assert "places import-agrements" in section


@pytest.mark.pure
def test_five_years_as_postgresql_counts_them():
    assert plus_years(date(2024, 2, 29), 5) == date(2029, 2, 28)
    assert plus_years(date(2025, 3, 1), 5) == date(2030, 3, 1)


@pytest.mark.database
async def test_header_missing_or_unknown_column_refuses_the_file(conn):
    before = await counts(conn)
    with pytest.raises(FileRefused, match="colonnes manquantes \\['employer'\\]"):
        await import_agrements(conn, csv_file(header=HEADER.rsplit(";", 1)[0]))
    with pytest.raises(FileRefused, match="colonnes inconnues \\['adresse'\\]"):
        await import_agrements(conn, csv_file(header=HEADER + ";adresse"))
    with pytest.raises(FileRefused, match="fichier vide"):
        await import_agrements(conn, b"")
    assert await counts(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM foster_carers") == 0


# --------------------------------------------------------------------------- creation


@pytest.mark.database
async def test_new_carers_at_their_commune_point_with_their_agrement(conn):
    report = await import_agrements(conn, csv_file(*GOOD), source_name="agrements.csv")

    assert report.rejected == []
    assert (report.lines_read, report.created, report.updated, report.unchanged) == (4, 4, 0, 0)
    rows = await carers(conn)
    assert set(rows) == {"AF-69-000001", "AF-69-000002", "AF-2A-000003", "AF-13-000004"}
    # The file has no home: the commune's point, which is also the public one.
    assert all(r["at_commune_point"] for r in rows.values())
    villeurbanne = rows["AF-69-000001"]
    assert villeurbanne["authority"] == "69M" and villeurbanne["agrement_department"] == "69"
    assert villeurbanne["valid_until"] == plus_years(date.fromisoformat(ISSUED), 5)
    assert villeurbanne["employer_authority"] == "69M"
    assert villeurbanne["employer_structure"] is None
    assert villeurbanne["open_to_other_authorities"] is False
    assert (villeurbanne["age_min_months"], villeurbanne["age_max_months"]) == (0, 227)
    assert (villeurbanne["timings"], villeurbanne["publics"], villeurbanne["formulas"]) == (
        ["durable"],
        ["mineur"],
        ["enfant"],
    )
    assert villeurbanne["available_places"] == 0 and villeurbanne["agrement_version"] == 1
    service = rows["AF-69-000002"]
    assert service["employer_structure"] is not None and service["employer_authority"] is None
    assert service["employing_authority"] == "69M" and service["open_to_other_authorities"]
    corse = rows["AF-2A-000003"]
    assert corse["authority"] == "20R"
    assert (corse["agrement_capacity"], corse["derogation_children"]) == (5, 5)
    assert corse["derogation_reason"] == "fratrie"
    marseille = rows["AF-13-000004"]
    assert marseille["state"] == "suspended"
    assert marseille["suspension_reason"] == "enquete_administrative"
    # One event per carer (the feeds' counts), one audit entry per batch and authority and
    # one for the run.
    events = await conn.fetch("SELECT type, authority, data, national_data FROM outbox_events")
    assert sorted(e["authority"] for e in events) == ["13", "20R", "69M", "69M"]
    assert {e["type"] for e in events} == {"carer.availability_updated"}
    fields, national = FIELDS["carer.availability_updated"]
    assert all(set(e["data"]) == fields and set(e["national_data"]) == national for e in events)
    assert {tuple(e["national_data"]["carer_count"].items()) for e in events} == {(("active", 1),)}
    assert {e["data"]["source"] for e in events} == {"agrement_import"}
    audits = await conn.fetch("SELECT action, authority, detail FROM audit_entries ORDER BY id")
    assert [(a["action"], a["authority"]) for a in audits] == [
        ("agrement.import_batch", "13"),
        ("agrement.import_batch", "20R"),
        ("agrement.import_batch", "69M"),
        ("agrement.import", None),
    ]
    assert audits[2]["detail"]["created"] == 2 and len(audits[2]["detail"]["carers"]) == 2
    assert audits[3]["detail"]["created"] == 4


@pytest.mark.database
async def test_optional_columns_ages_modes_and_end_of_suspension(conn):
    header = HEADER + ";" + ";".join(OPTIONAL_COLUMNS)
    until = (TODAY + timedelta(days=30)).isoformat()
    lines = [
        line() + ";;72;263;durable;jeune_majeur|mineur;enfant;;;;"
        "tsa:specialised|troubles_psychiques_comportement:with_support",
        # A file of old: ages in years and care modes (deprecated), mapped.
        line(number="AF-69-000010") + ";;;;;;;6;21;durable|jeune_majeur;",
        line(
            number="AF-69-000009",
            state="suspended",
            state_from=TODAY.isoformat(),
            state_reason="sante",
        )
        + f";{until}"
        + ";" * 9,
    ]
    report = await import_agrements(conn, csv_file(*lines, header=header))
    assert report.rejected == [] and report.created == 3
    rows = await carers(conn)
    for number in ("AF-69-000001", "AF-69-000010"):
        row = rows[number]
        assert (row["age_min_months"], row["age_max_months"]) == (72, 263)
        assert (row["timings"], row["publics"], row["formulas"]) == (
            ["durable"],
            ["jeune_majeur", "mineur"],
            ["enfant"],
        )
    assert rows["AF-69-000009"]["suspended_until"] == date.fromisoformat(until)
    # The agrément's word per disability profile (#16, graded); none given: silent on all.
    levels = {
        r["agrement_number"]: (r["disability_specialised"], r["disability_supported"])
        for r in await conn.fetch(
            "SELECT agrement_number, disability_specialised, disability_supported"
            " FROM foster_carers"
        )
    }
    assert levels["AF-69-000001"] == (["tsa"], ["troubles_psychiques_comportement"])
    assert levels["AF-69-000009"] == ([], [])


@pytest.mark.database
async def test_a_bad_disability_cell_is_refused_naming_the_column(conn):
    header = HEADER + ";" + ";".join(OPTIONAL_COLUMNS)
    lines = [
        line() + ";" * 10 + "tsa:expert",
        line(number="AF-69-000002") + ";" * 10 + "tsa:specialised|tsa:with_support",
    ]
    report = await import_agrements(conn, csv_file(*lines, header=header))
    assert report.created == 0
    assert [r.field for r in report.rejected] == ["disability", "disability"]


# --------------------------------------------------------------------------- refused lines

BAD = {
    # line number in the file → (the line, the field named, a word of the reason)
    2: (line(department="01"), "department", "département de résidence"),
    3: (line(number="AF-X1", department="99"), "department", "inconnu"),
    4: (line(number="AF-X2", commune="99999"), "commune", "inconnue"),
    5: (line(number="AF-X3", issued_on="2024-13-01"), "issued_on", "illisible"),
    6: (line(number="AF-X4", valid_until=ISSUED), "valid_until", "avant"),
    7: (line(number="AF-X5", capacity="4"), "capacity", "dérogation"),
    8: (
        line(number="AF-X6", capacity="7", derogation_children="6", derogation_reason="fratrie"),
        "capacity",
        "au plus 6",
    ),
    9: (
        line(number="AF-X7", capacity="4", derogation_children="4", derogation_reason="amitie"),
        "derogation_reason",
        "inconnu",
    ),
    10: (line(number="AF-X8", employer="690000999"), "employer", "inconnu"),
    11: (line(number="AF-X9", employer="99Z"), "employer", "inconnu"),
    12: (
        line(number="AF-X10", state="suspended", state_from=ISSUED, state_reason="humeur"),
        "state_reason",
        "inconnu",
    ),
    13: (
        line(number="AF-X11", state="withdrawn", state_reason="maltraitance"),
        "state_from",
        "manquante",
    ),
    14: (line(number="AF-X12", state="suspended", state_from=ISSUED), "state_reason", "sans motif"),
    15: (line(number="AF-X13", state="expired"), "state", "inconnu"),
    16: (line(number="AF-X14", capacity="0"), "capacity", "nulle"),
    17: ("AF-X15;69;" + ISSUED, "", "3 champs au lieu de 13"),
    18: (line(number="AF X16"), "number", "mal formé"),
    19: (line(number="AF-X17", state_from=ISSUED), "state_from", "valide"),
    20: (line(number="AF-X18", derogation_reason="fratrie"), "derogation_children", "sans"),
}


@pytest.mark.database
async def test_every_refused_line_is_reported_and_nothing_of_it_written(conn):
    lines = [BAD[n][0] for n in sorted(BAD)]
    good = line(number="AF-69-000100")
    report = await import_agrements(conn, csv_file(*lines, good, good))

    why = refused(report)
    assert sorted(why) == [*sorted(BAD), len(BAD) + 3], why
    for number, (_, column, word) in BAD.items():
        assert why[number][0] == column, (number, why[number])
        assert word in why[number][1], (number, why[number])
    assert why[len(BAD) + 3] == ("number", f"agrément en double (ligne {len(BAD) + 2})")
    assert report.created == 1
    assert set(await carers(conn)) == {"AF-69-000100"}


# --------------------------------------------------------------------------- idempotence


@pytest.mark.database
async def test_second_run_of_the_same_file_writes_nothing(conn):
    first = await import_agrements(conn, csv_file(*GOOD))
    assert first.created == 4
    before = await carers(conn)
    events, audits, history = await counts(conn)

    again = await import_agrements(conn, csv_file(*GOOD))

    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)
    after = await carers(conn)
    for number, row in before.items():
        assert after[number]["agrement_version"] == row["agrement_version"] == 1
        assert after[number]["version"] == row["version"]
        assert dict(after[number]) == dict(row)
    # Only the run's own audit entry.
    assert await counts(conn) == (events, audits + 1, history)


# --------------------------------------------------------------------------- updates


@pytest.mark.database
async def test_changed_line_updates_the_carer_once_and_follows_on_free_places(conn):
    await import_agrements(conn, csv_file(*GOOD))
    await conn.execute(
        "UPDATE foster_carers SET available_places = 3, preferred_age_min_months = 24"
        " WHERE agrement_number = 'AF-69-000001'"
    )
    renewed = (TODAY + timedelta(days=1500)).isoformat()
    changed = [
        line(capacity="2", valid_until=renewed),  # fewer children, renewed
        *GOOD[1:],
    ]
    events_before = await conn.fetchval("SELECT count(*) FROM outbox_events")

    report = await import_agrements(conn, csv_file(*changed))

    assert (report.created, report.updated, report.unchanged) == (0, 1, 3)
    assert report.places_withdrawn == 1
    rows = await carers(conn)
    carer = rows["AF-69-000001"]
    assert carer["agrement_capacity"] == 2 and carer["valid_until"] == date.fromisoformat(renewed)
    assert carer["agrement_version"] == 2 and carer["version"] == 2
    assert carer["available_places"] == 2  # at most the new capacity
    assert carer["preferred_age_min_months"] == 24  # the carer's preferences kept, still within
    assert all(rows[n]["agrement_version"] == 1 for n in rows if n != "AF-69-000001")
    [event] = await conn.fetch(
        "SELECT data, national_data FROM outbox_events ORDER BY id OFFSET $1", events_before
    )
    assert event["data"]["available_places"] == 2 and event["data"]["agrement_capacity"] == 2
    assert event["national_data"]["available_places"] == -1
    [history] = await conn.fetch(
        "SELECT available_places, source FROM carer_declarations WHERE carer_id = $1",
        carer["id"],
    )
    assert tuple(history) == (2, "agrement_import")


@pytest.mark.database
async def test_suspension_from_the_file_takes_the_free_places(conn):
    await import_agrements(conn, csv_file(*GOOD))
    await conn.execute(
        "UPDATE foster_carers SET available_places = 2 WHERE agrement_number = 'AF-69-000001'"
    )
    suspended = line(
        state="suspended", state_from=TODAY.isoformat(), state_reason="situation_de_danger"
    )

    report = await import_agrements(conn, csv_file(suspended, *GOOD[1:]))

    assert report.updated == 1 and report.places_withdrawn == 1 and report.rejected == []
    carer = (await carers(conn))["AF-69-000001"]
    assert carer["state"] == "suspended" and carer["available_places"] == 0
    assert carer["suspension_reason"] == "situation_de_danger"
    # Reinstated by a later file: valid again, the free places stay the carer's to declare.
    report = await import_agrements(conn, csv_file(*GOOD))
    carer = (await carers(conn))["AF-69-000001"]
    assert report.updated == 1 and carer["state"] == "valid"
    assert carer["available_places"] == 0 and carer["agrement_version"] == 3


@pytest.mark.database
async def test_new_employer_gets_its_default_openness(conn):
    await import_agrements(conn, csv_file(*GOOD))
    report = await import_agrements(conn, csv_file(line(employer=SERVICE_FINESS)))
    assert report.updated == 1
    carer = (await carers(conn))["AF-69-000001"]
    assert carer["employer_structure"] is not None and carer["employer_authority"] is None
    assert carer["open_to_other_authorities"] is True


# --------------------------------------------------------------------------- atomicity


@pytest.mark.database
async def test_batch_refused_by_the_database_writes_nothing(conn, copy):
    """A writer holding a carer's row (a declaration in progress) past the import's lock
    timeout: that batch fails as a whole — its new carer is not created either — and the
    other batches are written."""
    await import_agrements(conn, csv_file(line(number="AF-69-000050")))
    other = await asyncpg.connect(copy)
    lines = [
        line(number="AF-69-000051"),  # batch 1
        line(number="AF-69-000052"),
        line(number="AF-69-000053"),  # batch 2: a new carer…
        line(number="AF-69-000050", capacity="1"),  # …and the one being written elsewhere
        line(number="AF-69-000054"),  # batch 3
    ]
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "SELECT 1 FROM foster_carers WHERE agrement_number = 'AF-69-000050' FOR UPDATE"
        )
        await conn.execute("SET lock_timeout = '300ms'")
        report = await import_agrements(conn, csv_file(*lines), batch_size=2)
        await tx.rollback()
    finally:
        await other.close()

    assert report.batches_refused == 1
    why = refused(report)
    assert sorted(why) == [4, 5]
    assert all("lot 2 refusé par la base" in reason for _, reason in why.values())
    assert (report.created, report.updated) == (3, 0)
    rows = await carers(conn)
    assert set(rows) == {"AF-69-000050", "AF-69-000051", "AF-69-000052", "AF-69-000054"}
    assert rows["AF-69-000050"]["agrement_capacity"] == 3
    # The failed batch wrote no event nor audit entry of its own.
    assert await conn.fetchval("SELECT count(*) FROM outbox_events") == 4
    batches = await conn.fetch(
        "SELECT detail->>'batch' AS b FROM audit_entries WHERE action = 'agrement.import_batch'"
    )
    assert sorted(r["b"] for r in batches) == ["1", "1", "3"]


# --------------------------------------------------------------------------- holds


@pytest.mark.database
async def test_carer_with_pending_holds_is_left_to_the_api(client, pool):
    """Releasing holds is the API's decision (it tells the holding authority): the import
    refuses the suspension of a carer on whom a hold is pending, and changes nothing."""
    carer_id = await make_carer(pool, capacity=2)
    async with pool.acquire() as c:
        number = await c.fetchval(
            "UPDATE foster_carers SET available_places = 2 WHERE id = $1 RETURNING agrement_number",
            carer_id,
        )
    request = await new_request(client)
    r = await hold(client, request, "carer", str(carer_id))
    assert r.status_code == 201, r.text
    suspended = line(
        number=number,
        capacity="2",
        issued_on=(TODAY - timedelta(days=30)).isoformat(),
        state="suspended",
        state_from=TODAY.isoformat(),
        state_reason="enquete_administrative",
    )
    async with pool.acquire() as c:
        before = await c.fetchrow("SELECT * FROM foster_carers WHERE id = $1", carer_id)
        report = await import_agrements(c, csv_file(suspended))
        after = await c.fetchrow("SELECT * FROM foster_carers WHERE id = $1", carer_id)
    assert [(r.line, r.field, r.number) for r in report.rejected] == [(2, "state", number)]
    assert "réservations en cours" in report.rejected[0].reason
    assert "par l'API" in report.rejected[0].reason
    assert dict(after) == dict(before)
    assert report.updated == 0 and report.unchanged == 0


# --------------------------------------------------------------------------- the command


@pytest.mark.database
async def test_places_import_agrements_command(copy, tmp_path):
    source = tmp_path / "agrements-2026.csv"
    source.write_bytes(csv_file(*GOOD, BAD[7][0]))
    rejects = tmp_path / "refusees.csv"
    env = {
        **os.environ,
        "PLACES_DATABASE_URL": copy.replace("://postgres@", "://places_app@", 1),
    }

    def places(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "import-agrements", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = await asyncio.to_thread(places, str(source), "--rejects", str(rejects))
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stderr.split())  # rich wraps to the terminal's width
    assert "Import des agréments" in printed and "ligne 6 (capacity)" in printed
    with rejects.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=";"))
    assert rows[0] == ["line", "field", "number", "reason"]
    assert [r[:3] for r in rows[1:]] == [["6", "capacity", "AF-X5"]]
    conn = await asyncpg.connect(copy)
    try:
        assert await conn.fetchval("SELECT count(*) FROM foster_carers") == 4
    finally:
        await conn.close()

    again = await asyncio.to_thread(places, str(source))
    assert again.returncode == 0, again.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("numero;departement\nAF-1;69\n", encoding="utf-8")
    refused_file = await asyncio.to_thread(places, str(bad))
    assert refused_file.returncode == 2
    assert "en-tête refusé" in " ".join(refused_file.stderr.split())
    missing = await asyncio.to_thread(places, str(tmp_path / "absent.csv"))
    assert missing.returncode == 2
    assert "fichier introuvable" in " ".join(missing.stderr.split())
