"""Open data CSV (/v1/opendata/availability.csv): documented columns, figures that agree with
the declarations, one line per department × competent authority × category, nothing about a
child or a carer. Real database, in-process app.

The session database is shared, so figures are checked as differences before/after this
module's own declarations, in Paris (75) with category 238, and in 69, 2A and 2B with category
236, which other modules leave alone.
"""

import csv
import io
import re

from api.opendata.routes import COLUMNS
from tests.support.factories import bearer, idem, make_carer, make_structure

NATIONAL = bearer("national")


async def table(client) -> dict[tuple[str, str, str], dict[str, str]]:
    response = await client.get("/v1/opendata/availability.csv", headers=NATIONAL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert not response.text.startswith("\ufeff")
    reader = csv.DictReader(io.StringIO(response.text))
    assert reader.fieldnames == list(COLUMNS)
    return {(row["department"], row["authority"], row["category"]): row for row in reader}


def number(row: dict[str, str] | None, name: str) -> int:
    return int(row[name]) if row else 0


async def test_availability_per_department_and_category(client, pool):
    before = (await table(client)).get(("75", "75", "238"))
    s = await make_structure(
        pool,
        department="75",
        commune="75056",
        category="238",
        units=[{"name": "A", "installed": 10}, {"name": "B", "installed": 5}],
    )
    response = await client.put(
        f"/v1/units/{s['unit_ids'][0]}/capacity",
        json={
            "temporality": "current",
            "installed": 10,
            "occupied": 7,
            "reserved": 1,
            "closed": 0,
            "available": 2,
            "additional": 0,
        },
        headers={**bearer("structure", finess=s["finess"]), **idem()},
    )
    assert response.status_code == 200, response.text
    carer_id = await make_carer(pool, department="75", commune="75056")

    rows = await table(client)
    row = rows[("75", "75", "238")]
    assert row["department_name"] == "Paris"
    assert row["authority_name"] == "Ville de Paris"
    assert row["category_label"] == "Centre d'accueil familial spécialisé"
    for name, delta in {
        "structures": 1,
        "units": 2,
        "units_declared": 1,
        "installed": 10,
        "occupied": 7,
        "reserved": 1,
        "available": 2,
    }.items():
        assert number(row, name) - number(before, name) == delta, name
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["oldest_declaration"])
    assert row["oldest_declaration"] <= row["latest_declaration"]

    text = (await client.get("/v1/opendata/availability.csv", headers=NATIONAL)).text
    assert str(carer_id) not in text and s["finess"] not in text
    assert not any("carer" in column or "child" in column for column in COLUMNS)


async def test_needs_a_token(client):
    response = await client.get("/v1/opendata/availability.csv")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    response = await client.get(
        "/v1/opendata/availability.csv", headers=bearer("structure", finess="690000013")
    )
    assert response.status_code == 200


async def test_one_line_per_department_authority_and_category(client, pool):
    """Within 69 the Métropole de Lyon and the Rhône are two lines; Corse's authority has a
    line in each of its departments."""
    before = await table(client)
    for department, commune in (
        ("69", "69123"),  # Lyon: 69M
        ("69", "69264"),  # Villefranche-sur-Saône: 69D
        ("2A", "2A004"),  # Ajaccio: 20R
        ("2B", "2B033"),  # Bastia: 20R
    ):
        await make_structure(pool, department=department, commune=commune, category="236")
    rows = await table(client)
    for key, department_name, authority_name in (
        (("69", "69M", "236"), "Rhône", "Métropole de Lyon"),
        (("69", "69D", "236"), "Rhône", "Département du Rhône"),
        (("2A", "20R", "236"), "Corse-du-Sud", "Collectivité de Corse"),
        (("2B", "20R", "236"), "Haute-Corse", "Collectivité de Corse"),
    ):
        row, old = rows[key], before.get(key)
        assert (row["department_name"], row["authority_name"]) == (department_name, authority_name)
        assert number(row, "structures") - number(old, "structures") == 1, key
        assert number(row, "units") - number(old, "units") == 1, key
        assert row["category_label"] == "Service de placement familial"
    assert {k[1] for k in rows if k[0] == "69"} <= {"69M", "69D"}
