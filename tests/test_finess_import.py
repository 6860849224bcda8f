"""FINESS import against the real database: real extract-format lines (metropolitan and
overseas, quoted fields, a non-PDE category, a bad key, too few fields, a truncated last
line, an unknown projection, coordinates outside France), idempotence, updates that keep
declared capacity, one default unit, encodings, and a structure the database refuses.

Each test gets its own copy of a small migrated database, so counts are absolute.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from api.changes import CHANNEL
from api.db import drop_database, init_connection
from api.events import FIELDS
from interop.finess_import import (
    ImportReport,
    detect_encoding,
    import_extract,
    projection_epsg,
    read_extract,
    split_fields,
)
from interop.finess_units import DEFAULT_UNITS, NO_DEFAULT_UNIT
from tests.support.database import create_fixture_database
from tests.support.env import ADMIN_DSN

BASE = ADMIN_DSN.rsplit("/", 1)[0]
TEMPLATE = f"places_test_finess_{os.getpid()}"

EXTRA_DEPARTMENTS = [
    ("971", "Guadeloupe", "01", "Guadeloupe", 16.22, -61.54),
    ("976", "Mayotte", "06", "Mayotte", -12.80, 45.18),
]
EXTRA_COMMUNES = [
    ("97101", "Les Abymes", "971", 51_000, 16.2730, -61.5051, "971"),
    ("97410", "Saint-Benoît", "974", 37_000, -21.0340, 55.7130, "974"),
    ("97606", "Chirongui", "976", 9_000, -12.9310, 45.1510, "976"),
]

HEADER = "finess;etalab;111;2026-05-12"
# Verbatim lines of the public extract (etalab-cs1100502, 2026-05-12).
FLEYRIAT = (
    "structureet;010000024;010780054;CH DE FLEYRIAT;CENTRE HOSPITALIER DE BOURG-EN-BRESSE"
    " FLEYRIAT;;;900;RTE;DE PARIS;;;451;01;AIN;01440 VIRIAT;0474454647;0474454114;355;"
    "Centre Hospitalier (C.H.);1102;Centres Hospitaliers;26010004500012;8610Z;03;"
    "ARS établissements Publics de santé dotation globale;1;Etablissement public de santé;"
    "1979-02-13;1979-02-13;2020-02-04;"
)
PMI_SAINT_BARTHELEMY = (
    "structureet;970102018;970113015;PMI SAINT BARTHELEMY;PMI SAINT BARTHELEMY;"
    "PMI CMS DE GUSTAVIA;;4;R;AUGUST NYMAN;;;123;9A;GUADELOUPE;97133 ST BARTHELEMY;"
    "0590276027;;223;Protection Maternelle et Infantile (P.M.I.);2202;"
    "Etablissements de PMI et de Planification Familiale;;;01;Etablissement Tarif Libre;;;"
    "1964-01-01;1964-01-01;2019-02-15;"
)
CEF_REUNION = (
    "structureet;970405767;970400149;CENTRE EDUCATIF FERME JULES PALANT;CENTRE EDUCATIF"
    " FERME JULES PALANT (STE ANNE);;;40;CHE;CHEMIN SAFER MORANGE;;;410;9D;LA REUNION;"
    "97437 ST BENOIT;0262508105;0262508505;241;Etablissement de Placement;4502;"
    "Etab.et Services du Ministère de la Justice pour Mineurs;31822647900117;;99;"
    "Indéterminé;;;2007-05-25;2005-06-02;2007-09-03;"
)
LVA_MAYOTTE = (
    'structureet;980501506;980501498;"LIEU DE VIE ""MAVOUNA MEMA 1""";'
    '"LIEU DE VIE ET D\'ACCUEIL ""MAVOUNA MEMA 1""";ASSOCIATION MESSO;;12;R;'
    "ANCIEN TERRAIN DE FOOT;;;606;9F;MAYOTTE;97620 CHIRONGUI;0269666815;;462;"
    "Lieux de Vie et d'Accueil;4605;Etablissements et services multi-clientèles;"
    "82967998400015;;08;Président du Conseil Départemental;;;2019-04-01;2019-03-18;"
    "2025-05-07;"
)
# Same format, made-up establishments (valid Luhn keys).
MECS_LYON = (
    "structureet;690000013;690000021;MECS LES TILLEULS;MAISON D'ENFANTS LES TILLEULS;;;12;R;"
    "DES TILLEULS;B;;123;69;RHONE;69003 LYON;0478000000;;177;"
    "Maison d'Enfants à Caractère Social;4403;Etablissements de l'Aide Sociale à l'Enfance;"
    ";;08;Président du Conseil Départemental;;;1990-01-01;1990-01-01;2024-05-02;"
)
FOYER_VILLEURBANNE = (
    'structureet;690000039;690000021;FOYER LE PHARE;"FOYER ""LE PHARE""; ACCUEIL D\'URGENCE";'
    ";;3;AV;HENRI BARBUSSE;;;266;69;RHONE;69100 VILLEURBANNE;;;175;Foyer de l'Enfance;4403;"
    "Etablissements de l'Aide Sociale à l'Enfance;;;08;Président du Conseil Départemental;"
    ";;1975-01-01;1975-01-01;2023-01-02;"
)
MECS_ABYMES = (
    "structureet;970100012;970100020;MECS LES ALIZES;MECS LES ALIZES;;;;;MORNE JOLIVIERE;;;101;"
    "9A;GUADELOUPE;97139 LES ABYMES;;;177;Maison d'Enfants à Caractère Social;4403;"
    "Etablissements de l'Aide Sociale à l'Enfance;;;08;Président du Conseil Départemental;"
    ";;1990-01-01;1990-01-01;2024-05-02;"
)
MECS_SAINT_BARTHELEMY = (
    "structureet;970100020;970100020;MECS DE GUSTAVIA;;;;;;;;;123;9A;GUADELOUPE;"
    "97133 ST BARTHELEMY;;;177;Maison d'Enfants à Caractère Social;4403;"
    "Etablissements de l'Aide Sociale à l'Enfance;;;08;Président;;;2000-01-01;2000-01-01;"
    "2024-01-01;"
)
PLACEMENT_LYON = (
    "structureet;690000054;690000021;SPF LES TILLEULS;SERVICE DE PLACEMENT FAMILIAL LES TILLEULS;"
    ";;12;R;DES TILLEULS;;;123;69;RHONE;69003 LYON;0478000001;;236;"
    "Service de Placement Familial;4403;Etablissements de l'Aide Sociale à l'Enfance;"
    ";;08;Président du Conseil Départemental;;;1990-01-01;1990-01-01;2024-05-02;"
)
BAD_KEY = MECS_LYON.replace("690000013", "690000014").replace("LES TILLEULS", "LES CEDRES")
TOO_FEW_FIELDS = "structureet;690000047;690000021;MECS SANS FIN;;;"

GEO_MECS_LYON = (
    "geolocalisation;690000013;843814.2;6518396.0;1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,"
    "LAMBERT_93;2024-01-01"
)
GEO_FOYER_OUTSIDE = (
    "geolocalisation;690000039;0;0;1,ATLASANTE,96,BAN,EPSG:2154 RGF93 / Lambert-93 (Métropole);"
    "2026-05-04"
)
GEO_CEF_REUNION = (
    "geolocalisation;970405767;366265.5;7673550.3;1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_S40;"
    "2024-01-01"
)
GEO_MECS_ABYMES = (
    "geolocalisation;970100012;659793.1;1799507.7;2,ATLASANTE,96,BAN,"
    "EPSG:5490 RGAF09/UTM Zone 20N (Antilles);2026-05-04"
)
GEO_FLEYRIAT = (
    "geolocalisation;010000024;870262.2;6571540.8;1,ATLASANTE,96,BAN,"
    "EPSG:2154 RGF93 / Lambert-93 (Métropole);2026-05-04"
)
GEO_LVA_UNKNOWN_PROJECTION = (
    "geolocalisation;980501506;516379.2;8570489.9;1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,"
    "UTM_N21;2024-01-01"
)
TRUNCATED = "structureet;690000047;690000021;MECS DU"

EXTRACT_LINES = [
    HEADER,  # 1
    FLEYRIAT,  # 2  non-PDE (355)
    MECS_LYON,  # 3
    FOYER_VILLEURBANNE,  # 4  quoted fields
    CEF_REUNION,  # 5  overseas, 9D
    LVA_MAYOTTE,  # 6  overseas, 9F, quoted fields
    MECS_SAINT_BARTHELEMY,  # 7  9A + 97133: refused
    MECS_ABYMES,  # 8  overseas, 9A
    BAD_KEY,  # 9
    TOO_FEW_FIELDS,  # 10
    PMI_SAINT_BARTHELEMY,  # 11 non-PDE (223)
    GEO_MECS_LYON,  # 12
    GEO_FOYER_OUTSIDE,  # 13 refused: outside France → commune point
    GEO_CEF_REUNION,  # 14
    GEO_MECS_ABYMES,  # 15
    GEO_FLEYRIAT,  # 16 ignored (non-PDE)
    GEO_LVA_UNKNOWN_PROJECTION,  # 17 refused: unknown projection → commune point
    TRUNCATED,  # 18 no final newline
]


def extract(lines: list[str], encoding: str = "utf-8", final_newline: bool = False) -> bytes:
    return ("\n".join(lines) + ("\n" if final_newline else "")).encode(encoding)


@pytest.mark.pure
def test_real_lines_have_32_fields():
    for line in (FLEYRIAT, PMI_SAINT_BARTHELEMY, CEF_REUNION, LVA_MAYOTTE, MECS_LYON):
        assert len(split_fields(line)) == 32, line
    assert len(split_fields(FOYER_VILLEURBANNE)) == 32
    assert len(split_fields(MECS_ABYMES)) == 32 and len(split_fields(BAD_KEY)) == 32


@pytest.fixture(scope="module")
async def template() -> AsyncIterator[str]:
    dsn = f"{BASE}/{TEMPLATE}"
    await create_fixture_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO departments (code, name, region_code, region_name, location)"
            " VALUES ($1, $2, $3, $4, ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography)",
            EXTRA_DEPARTMENTS,
        )
        await conn.executemany(
            "INSERT INTO communes (insee, name, department, population, precision, location,"
            " authority) VALUES ($1, $2, $3, $4, 'geonames',"
            " ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography, $7)",
            EXTRA_COMMUNES,
        )
    finally:
        await conn.close()
    yield TEMPLATE
    await drop_database(dsn)


@pytest.fixture
async def conn(template: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(f"{BASE}/{name}")
    await init_connection(connection)
    try:
        yield connection
    finally:
        await connection.close()
        await drop_database(f"{BASE}/{name}")


def reasons(report: ImportReport) -> dict[int, str]:
    return {r.line: r.reason for r in report.rejected}


async def structures(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        """
        SELECT finess, finess_ej, name, category, department, commune, address, postal_code,
               tarif_authority, location_precision, imported_at,
               ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon
          FROM structures
        """
    )
    return {r["finess"]: r for r in rows}


@pytest.mark.database
async def test_import_real_extract_lines(conn):
    report = await import_extract(conn, extract(EXTRACT_LINES))

    assert report.lines_read == 18
    assert report.structures_read == 11 and report.geolocations_read == 6
    assert report.imported == 5 and report.updated == 0 and report.unchanged == 0
    assert report.skipped_by_category == {"355": 1, "223": 1}
    why = reasons(report)
    assert sorted(why) == [7, 9, 10, 13, 17, 18], why
    assert "Saint-Barthélemy (977)" in why[7]
    assert "clé de contrôle" in why[9]
    assert why[10].startswith("7 champs au lieu de 32")
    assert "hors de France" in why[13]
    assert "projection inconnue « UTM_N21 »" in why[17]
    assert "tronquée" in why[18]
    assert report.located_by_commune == 2

    rows = await structures(conn)
    assert set(rows) == {"690000013", "690000039", "970405767", "980501506", "970100012"}
    lyon = rows["690000013"]
    assert (lyon["department"], lyon["commune"], lyon["postal_code"]) == ("69", "69123", "69003")
    assert lyon["address"] == "12 B R DES TILLEULS"
    assert lyon["name"] == "MAISON D'ENFANTS LES TILLEULS" and lyon["finess_ej"] == "690000021"
    assert lyon["tarif_authority"] == "Président du Conseil Départemental"
    assert abs(lyon["lat"] - 45.75) < 1e-5 and abs(lyon["lon"] - 4.85) < 1e-5
    assert lyon["location_precision"] == "address" and lyon["imported_at"] is not None

    foyer = rows["690000039"]
    assert foyer["name"] == 'FOYER "LE PHARE"; ACCUEIL D\'URGENCE'
    assert foyer["commune"] == "69266" and foyer["location_precision"] == "commune"
    assert abs(foyer["lat"] - 45.7719) < 1e-9  # Villeurbanne's point

    reunion = rows["970405767"]
    assert (reunion["department"], reunion["commune"], reunion["category"]) == (
        "974",
        "97410",
        "241",
    )
    assert abs(reunion["lat"] + 21.034) < 1e-5 and abs(reunion["lon"] - 55.713) < 1e-5
    abymes = rows["970100012"]
    assert (abymes["department"], abymes["commune"]) == ("971", "97101")
    assert abs(abymes["lat"] - 16.2711) < 1e-5 and abs(abymes["lon"] + 61.5046) < 1e-5
    mayotte = rows["980501506"]
    assert mayotte["department"] == "976" and mayotte["commune"] == "97606"
    assert mayotte["name"] == 'LIEU DE VIE ET D\'ACCUEIL "MAVOUNA MEMA 1"'
    assert mayotte["location_precision"] == "commune"

    units = await conn.fetch(
        """
        SELECT s.finess, s.category, u.name, u.age_min_months, u.age_max_months, u.sexes,
               u.timings, u.publics, u.formulas, u.installed, u.is_default
          FROM units u JOIN structures s ON s.id = u.structure_id
        """
    )
    assert len(units) == 5 and report.default_units == 5
    for unit in units:
        expected = DEFAULT_UNITS[unit["category"]]
        assert unit["is_default"] and unit["installed"] == 0
        assert (unit["name"], unit["age_min_months"], unit["age_max_months"]) == (
            expected.name,
            expected.age_min_months,
            expected.age_max_months,
        )
        assert (unit["timings"], unit["publics"], unit["formulas"]) == (
            sorted(expected.timings),
            sorted(expected.publics),
            sorted(expected.formulas),
        )
        if unit["category"] in ("172", "166"):  # under 3 only
            assert unit["age_max_months"] == 35
        assert unit["sexes"] == ["F", "M"]
    assert await conn.fetchval("SELECT count(*) FROM capacity_snapshots") == 0

    events = await conn.fetch("SELECT type, department, data FROM outbox_events ORDER BY id")
    assert [e["type"] for e in events] == ["structure.created"] * 5
    assert {e["data"]["finess"] for e in events} == set(rows)
    audit = await conn.fetchrow("SELECT action, detail FROM audit_entries")
    assert audit["action"] == "finess.import" and audit["detail"]["imported"] == 5


@pytest.mark.database
async def test_import_events_follow_the_schema_and_wake_the_relay(conn):
    """The import writes its events through api.changes like every writer: the same
    payload as the API's structure events, and a NOTIFY at commit on the relay's channel
    (it used to wait for the relay's poll)."""
    listener = await asyncpg.connect(f"{BASE}/{await conn.fetchval('SELECT current_database()')}")
    heard: list[str] = []
    await listener.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
    try:
        await import_extract(conn, extract(EXTRACT_LINES))
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
    finally:
        await listener.close()
    rows = await conn.fetch("SELECT type, department, data, national_data FROM outbox_events")
    assert rows and set(heard) == {r["department"] for r in rows}
    for row in rows:
        department_keys, national_keys = FIELDS[row["type"]]
        assert set(row["data"]) == department_keys
        assert set(row["national_data"]) == national_keys
        assert row["data"]["source"] == "finess" and row["data"]["units"] == 1


@pytest.mark.database
async def test_second_run_changes_nothing(conn):
    data = extract(EXTRACT_LINES)
    await import_extract(conn, data)
    before = await structures(conn)
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM units) AS units,"
        " (SELECT count(*) FROM outbox_events) AS events"
    )
    report = await import_extract(conn, data)
    assert (report.imported, report.updated, report.unchanged) == (0, 0, 5)
    assert report.default_units == 0
    assert await structures(conn) == before
    assert (
        await conn.fetchrow(
            "SELECT (SELECT count(*) FROM units) AS units,"
            " (SELECT count(*) FROM outbox_events) AS events"
        )
        == counts
    )


@pytest.mark.database
async def test_later_extract_updates_but_keeps_declared_capacity(conn):
    await import_extract(conn, extract(EXTRACT_LINES))
    unit_id = await conn.fetchval(
        "SELECT u.id FROM units u JOIN structures s ON s.id = u.structure_id"
        " WHERE s.finess = '690000013'"
    )
    # The establishment declares 8 installed places, 2 free (as PUT /v1/units/…/capacity does).
    await conn.execute("UPDATE units SET installed = 8 WHERE id = $1", unit_id)
    await conn.execute(
        """
        INSERT INTO capacity_snapshots (unit_id, temporality, version, declared_at, declared_by,
               source, installed, occupied, reserved, closed, available, additional,
               available_gender, location)
        SELECT $1, 'current', 3, now(), 'structure:x', 'api', 8, 6, 0, 0, 2, 0, 'any', location
          FROM structures WHERE finess = '690000013'
        """,
        unit_id,
    )
    renamed = (
        MECS_LYON.replace("MAISON D'ENFANTS LES TILLEULS", "MAISON D'ENFANTS LES TILLEULS II")
        .replace("12;R;DES TILLEULS;B", "14;AV;JEAN JAURES;")
        .replace(";177;", ";176;")
    )
    geo = GEO_MECS_LYON.replace("843814.2;6518396.0", "846880.5;6520901.3")
    report = await import_extract(conn, extract([HEADER, renamed, geo]))
    assert (report.imported, report.updated, report.unchanged) == (0, 1, 0)

    row = (await structures(conn))["690000013"]
    assert row["name"] == "MAISON D'ENFANTS LES TILLEULS II"
    assert row["address"] == "14 AV JEAN JAURES" and row["category"] == "176"
    units = await conn.fetch(
        "SELECT id, name, installed, age_min_months FROM units"
        " WHERE structure_id = (SELECT id FROM structures WHERE finess = '690000013')"
    )
    assert len(units) == 1 and units[0]["id"] == unit_id
    assert units[0]["installed"] == 8  # declared capacity kept
    assert (units[0]["name"], units[0]["age_min_months"]) == (DEFAULT_UNITS["176"].name, 0)
    snapshot = await conn.fetchrow(
        "SELECT version, installed, available, ST_Y(location::geometry) AS lat"
        " FROM capacity_snapshots WHERE unit_id = $1",
        unit_id,
    )
    assert (snapshot["version"], snapshot["installed"], snapshot["available"]) == (3, 8, 2)
    assert abs(snapshot["lat"] - 45.7719) < 1e-5  # follows the structure's new point
    assert (
        await conn.fetchval("SELECT count(*) FROM outbox_events WHERE type = 'structure.updated'")
        == 1
    )


@pytest.mark.database
async def test_structure_with_its_own_units_gets_no_default_unit(conn):
    """Registered through the API with units and an exact point: the import updates its
    FINESS data, adds no unit, and does not trade its point for a commune centroid."""
    structure_id = await conn.fetchval(
        """
        INSERT INTO structures (finess, name, category, department, commune, location)
        VALUES ('690000013', 'MECS déclarée', '177', '69', '69123',
                ST_SetSRID(ST_MakePoint(4.8411, 45.7599), 4326)::geography)
        RETURNING id
        """
    )
    await conn.execute(
        "INSERT INTO units (structure_id, name, age_min_months, age_max_months, sexes, timings,"
        " publics, formulas, installed) VALUES ($1, 'Les Grands', 144, 227, ARRAY['F','M'],"
        " ARRAY['durable'], ARRAY['mineur'], ARRAY['enfant'], 10)",
        structure_id,
    )
    report = await import_extract(conn, extract([HEADER, MECS_LYON]))  # no geolocation line
    assert (report.imported, report.updated, report.default_units) == (0, 1, 0)
    row = (await structures(conn))["690000013"]
    assert row["name"] == "MAISON D'ENFANTS LES TILLEULS"
    assert row["location_precision"] == "address" and abs(row["lat"] - 45.7599) < 1e-9
    assert await conn.fetchval("SELECT count(*) FROM units") == 1


@pytest.mark.database
async def test_latin1_extract(conn):
    data = extract([HEADER, FLEYRIAT, MECS_LYON, GEO_MECS_LYON], "cp1252", final_newline=True)
    report = await import_extract(conn, data)
    assert report.encoding == "cp1252" and report.imported == 1 and not report.rejected
    assert (await structures(conn))["690000013"]["tarif_authority"] == (
        "Président du Conseil Départemental"
    )


@pytest.mark.database
async def test_wrong_encoding_line_is_refused_alone(conn):
    latin1_line = FOYER_VILLEURBANNE.encode("cp1252")
    data = extract([HEADER, MECS_LYON]) + b"\n" + latin1_line + b"\n" + GEO_MECS_LYON.encode()
    report = await import_extract(conn, data)
    assert report.encoding == "utf-8"
    assert reasons(report) == {3: "encodage invalide : octets illisibles en utf-8"}
    assert set(await structures(conn)) == {"690000013"}


@pytest.mark.database
async def test_database_refusal_rejects_only_that_structure(conn):
    """A row the database refuses fails its batch; the batch is retried row by row, so the
    others are written and the refused one is reported with its line, nothing half-written."""
    await conn.execute(
        """
        CREATE FUNCTION refuse_foyer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.finess = '690000039' THEN RAISE EXCEPTION 'refused for the test'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_foyer BEFORE INSERT ON structures
            FOR EACH ROW EXECUTE FUNCTION refuse_foyer();
        """
    )
    report = await import_extract(conn, extract(EXTRACT_LINES))
    assert report.imported == 4
    assert reasons(report)[4].startswith("refusée par la base")
    assert "690000039" not in await structures(conn)
    assert await conn.fetchval("SELECT count(*) FROM units") == 4
    assert await conn.fetchval("SELECT count(*) FROM outbox_events") == 4


@pytest.mark.pure
def test_parsing_helpers():
    assert projection_epsg("1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93") == 2154
    assert projection_epsg("1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_N20") == 5490
    assert projection_epsg("1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_N22") == 2972
    assert projection_epsg("1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_S40") == 2975
    assert projection_epsg("1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,UTM_S38") == 4471
    assert projection_epsg("2,ATLASANTE,96,BAN,EPSG:4471 RGM04/UTM Zone 38S (Mayotte)") == 4471
    assert projection_epsg("4,ATLASANTE,.,MAPS 06-11-2024,WGS84/UTM zone 1S (Wallis)") is None
    assert projection_epsg("1,ATLASANTE,96,BAN,EPSG:3857 Web Mercator") is None
    assert split_fields('a;"b;c";"d ""e""";') == ["a", "b;c", 'd "e"', ""]
    assert detect_encoding("é".encode()) == "utf-8"
    assert detect_encoding("é".encode("cp1252")) == "cp1252"


@pytest.mark.pure
def test_read_extract_is_pure():
    rows, report = read_extract(
        extract([HEADER, MECS_LYON, GEO_MECS_LYON]), {"69"}, {"69123": "69"}
    )
    assert report.extract == "etalab;111;2026-05-12"
    assert [(r.finess, r.lat is not None) for r in rows] == [("690000013", True)]
    rows, report = read_extract(extract([HEADER, MECS_LYON]), {"69"}, {})
    assert rows == [] and "commune INSEE '69123' inconnue" in report.rejected[0].reason


@pytest.mark.pure
def test_every_category_but_placement_services_has_a_default_unit():
    assert NO_DEFAULT_UNIT == {"236"} and "236" not in DEFAULT_UNITS


@pytest.mark.database
async def test_placement_service_gets_no_default_unit(conn):
    """A service de placement familial (236) places children with its carers: imported, it
    gets no unit (its capacity is its carers'), so nothing can be proposed at its office; a
    second run still adds none, and its event says 0 units."""
    data = extract([HEADER, PLACEMENT_LYON])
    report = await import_extract(conn, data)
    assert (report.imported, report.default_units, report.rejected) == (1, 0, [])
    assert (await structures(conn))["690000054"]["category"] == "236"
    assert await conn.fetchval("SELECT count(*) FROM units") == 0
    event = await conn.fetchrow("SELECT type, data FROM outbox_events")
    assert event["type"] == "structure.created" and event["data"]["units"] == 0
    again = await import_extract(conn, data)
    assert (again.unchanged, again.default_units) == (1, 0)
    assert await conn.fetchval("SELECT count(*) FROM units") == 0


@pytest.mark.database
async def test_recategorised_to_placement_service_loses_its_undeclared_default_unit(conn):
    """An establishment a later extract turns into a placement service loses its default
    unit (it would stand for places at the office); one that was declared on has become a
    real unit and stays (its capacity is the establishment's word, never the import's)."""
    await import_extract(conn, extract([HEADER, MECS_LYON, FOYER_VILLEURBANNE]))
    declared = await conn.fetchval(
        "SELECT u.id FROM units u JOIN structures s ON s.id = u.structure_id"
        " WHERE s.finess = '690000039'"
    )
    await conn.execute(
        """
        INSERT INTO capacity_snapshots (unit_id, temporality, version, declared_at, declared_by,
               source, installed, occupied, reserved, closed, available, additional,
               available_gender, location)
        SELECT $1, 'current', 1, now(), 'structure:x', 'api', 0, 0, 0, 0, 0, 0, 'any', location
          FROM structures WHERE finess = '690000039'
        """,
        declared,
    )
    report = await import_extract(
        conn,
        extract(
            [
                HEADER,
                MECS_LYON.replace(";177;", ";236;"),
                FOYER_VILLEURBANNE.replace(";175;", ";236;"),
            ]
        ),
    )
    assert (report.updated, report.default_units) == (2, 0)
    units = await conn.fetch(
        "SELECT s.finess, u.id, u.name FROM units u JOIN structures s ON s.id = u.structure_id"
    )
    assert [(u["finess"], u["id"]) for u in units] == [("690000039", declared)]
    assert units[0]["name"] == DEFAULT_UNITS["175"].name  # left as declared, not refreshed
    events = await conn.fetch(
        "SELECT data FROM outbox_events WHERE type = 'structure.updated' ORDER BY id"
    )
    assert sorted((e["data"]["finess"], e["data"]["units"]) for e in events) == [
        ("690000013", 0),
        ("690000039", 1),
    ]
