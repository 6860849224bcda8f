"""The small set of real places the tests run on, and how a test database gets them.

The suite's own database and those of the modules that run servers of their own are made
the same way, so every test sees the same departments and communes.
"""

import asyncio

import asyncpg

from api.db import drop_database, ensure_database, migrate

# Small, real places: enough for the registry and the geo tests, nothing national.
DEPARTMENTS = [
    ("69", "Rhône", "84", "Auvergne-Rhône-Alpes", 45.76, 4.84),
    ("01", "Ain", "84", "Auvergne-Rhône-Alpes", 46.20, 5.22),
    ("38", "Isère", "84", "Auvergne-Rhône-Alpes", 45.19, 5.72),
    ("75", "Paris", "11", "Île-de-France", 48.86, 2.35),
    ("974", "La Réunion", "04", "La Réunion", -20.88, 55.45),
    # Competent authorities (#13): a department of its own (13), and those of 20R and 6AE.
    ("13", "Bouches-du-Rhône", "93", "Provence-Alpes-Côte d'Azur", 43.41606, 5.30078),
    ("2A", "Corse-du-Sud", "94", "Corse", 41.85389, 8.86464),
    ("2B", "Haute-Corse", "94", "Corse", 42.54305, 9.34827),
    ("67", "Bas-Rhin", "44", "Grand Est", 48.60895, 7.66118),
    ("68", "Haut-Rhin", "44", "Grand Est", 47.84, 7.33),
]
COMMUNES = [
    ("69123", "Lyon", "69", 522_000, 45.7640, 4.8357, "69M"),
    ("69266", "Villeurbanne", "69", 156_000, 45.7719, 4.8902, "69M"),
    ("01053", "Bourg-en-Bresse", "01", 42_000, 46.2052, 5.2255, "01"),
    ("38185", "Grenoble", "38", 158_000, 45.1885, 5.7245, "38"),
    ("75056", "Paris", "75", 2_100_000, 48.8566, 2.3522, "75"),
    ("97411", "Saint-Denis", "974", 153_000, -20.8823, 55.4504, "974"),
    # 69D beside 69M, Corse (20R), Alsace (6AE), Marseille (13) (#13).
    ("69264", "Villefranche-sur-Saône", "69", 36_172, 45.98967, 4.71961, "69D"),
    ("2A004", "Ajaccio", "2A", 76_320, 41.91886, 8.73812, "20R"),
    ("2B033", "Bastia", "2B", 46_867, 42.70219, 9.45123, "20R"),
    ("67482", "Strasbourg", "67", 293_771, 48.58392, 7.74553, "6AE"),
    ("68224", "Mulhouse", "68", 105_000, 47.7521, 7.3287, "6AE"),
    ("13055", "Marseille", "13", 886_040, 43.29695, 5.38107, "13"),
]


async def create_fixture_database(dsn: str, revision: str = "head") -> None:
    """A fresh database at ``dsn``: PostGIS, migrations (up to ``revision``: a migration's
    test starts from the one before), and the small set of real places above. The suite's
    own database, and those of tests that run servers of their own."""
    await drop_database(dsn)
    await ensure_database(dsn)
    await asyncio.to_thread(migrate, dsn, revision)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO departments (code, name, region_code, region_name, location)"
            " VALUES ($1, $2, $3, $4, ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography)",
            DEPARTMENTS,
        )
        await conn.executemany(
            "INSERT INTO communes (insee, name, department, population, precision, location,"
            " authority) VALUES ($1, $2, $3, $4, 'geonames',"
            " ST_SetSRID(ST_MakePoint($6, $5), 4326)::geography, $7)",
            COMMUNES,
        )
    finally:
        await conn.close()
