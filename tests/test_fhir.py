"""FHIR R4 export (/fhir): Location per unit with the ROR capacity extension and national
codes, Organization with the FINESS identifier, Bundle searchset with total and paging
links, OperationOutcome errors, and never a foster carer. Real database, in-process app."""

import pytest

from api.fhir import resources as r
from tests.support.factories import bearer, idem, make_carer, make_structure

NATIONAL = bearer("national")
FHIR_JSON = "application/fhir+json"


async def declare(client, structure, unit_id, **body):
    payload = {
        "temporality": "current",
        "installed": 10,
        "occupied": 6,
        "reserved": 1,
        "closed": 0,
        "available": 3,
        "additional": 0,
        "available_gender": "F",
    }
    payload.update(body)
    response = await client.put(
        f"/v1/units/{unit_id}/capacity",
        json=payload,
        headers={**bearer("structure", finess=structure["finess"]), **idem()},
    )
    assert response.status_code == 200, response.text
    return response.json()


def capacities(location: dict) -> dict[tuple[str, str], dict]:
    """(TRE_R330 status, TRE_R331 temporality) → the sub-extensions by url."""
    found = {}
    for ext in location["extension"]:
        if ext["url"] != r.CAPACITY_EXTENSION:
            continue
        parts = {e["url"]: e for e in ext["extension"]}
        status = parts["capacityStatus"]["valueCodeableConcept"]["coding"][0]
        temporality = parts["temporalityCapacity"]["valueCodeableConcept"]["coding"][0]
        assert status["system"] == r.TRE_R330 and temporality["system"] == r.TRE_R331
        found[(status["code"], temporality["code"])] = parts
    return found


@pytest.fixture
async def structure(pool):
    s = await make_structure(
        pool,
        department="01",
        commune="01053",
        category="172",
        units=[
            {"name": "Section Les Poussins", "age_min": 0, "age_max": 3, "installed": 10},
            {"name": "Section Les Câlins", "age_min": 0, "age_max": 3, "installed": 8},
            {"name": "Section Les Lutins", "age_min": 0, "age_max": 3, "installed": 6},
        ],
    )
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE structures SET postal_code = '01000', address = '2 R DES ECOLES' WHERE id = $1",
            s["id"],
        )
    return s


async def test_location_carries_ror_capacity_and_its_organization(client, structure):
    unit_id = structure["unit_ids"][0]
    current = await declare(client, structure, unit_id)
    await declare(
        client, structure, unit_id, temporality="h24", available=4, occupied=5, reserved=0
    )

    response = await client.get(f"/fhir/Location/{unit_id}", headers=NATIONAL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    location = response.json()
    assert location["resourceType"] == "Location" and location["id"] == str(unit_id)
    assert location["meta"]["profile"] == [r.LOCATION_PROFILE]
    assert location["name"] == "Section Les Poussins" and location["status"] == "active"

    found = capacities(location)
    assert set(found) == {
        (s, t) for s in ("01", "02", "03", "04", "05", "06") for t in ("01", "03")
    }
    counts = {s: found[(s, "01")]["nbCapacity"]["valueInteger"] for s in ("01", "02", "03", "04")}
    assert counts == {"01": 10, "02": 3, "03": 6, "04": 1}
    assert found[("02", "03")]["nbCapacity"]["valueInteger"] == 4
    assert found[("03", "03")]["nbCapacity"]["valueInteger"] == 5
    available = found[("02", "01")]
    gender = available["genderCapacityAvailable"]["valueCodeableConcept"]["coding"][0]
    assert (gender["system"], gender["code"]) == (r.TRE_R332, "01")  # femme
    assert "genderCapacityAvailable" not in found[("03", "01")]
    assert available["capacityUpdateDate"]["valueDateTime"][:19] == current["declared_at"][:19]
    nature = available["capacityType"]["valueCodeableConcept"]["coding"][0]
    assert (nature["system"], nature["code"]) == (r.TRE_R329, "02")
    for parts in found.values():
        assert {"capacitySourceType", "temporaryAssignement", "capacityUpdateDate"} <= set(parts)

    commune = next(e for e in location["extension"] if e["url"] == r.COMMUNE_EXTENSION)
    assert commune["valueCodeableConcept"]["coding"][0]["code"] == "01053"
    assert location["address"]["state"] == "01" and location["address"]["postalCode"] == "01000"
    assert location["address"]["city"] == "Bourg-en-Bresse"
    assert location["address"]["line"] == ["2 R DES ECOLES"]
    assert abs(location["position"]["latitude"] - 46.2052) < 1e-6
    managing = location["managingOrganization"]
    assert managing["reference"] == f"Organization/{structure['id']}"
    assert managing["identifier"] == {"system": r.FINESS_SYSTEM, "value": structure["finess"]}

    response = await client.get(f"/fhir/{managing['reference']}", headers=NATIONAL)
    assert response.status_code == 200
    organization = response.json()
    assert organization["resourceType"] == "Organization"
    assert {"system": r.FINESS_SYSTEM, "value": structure["finess"]} in organization["identifier"]
    idnat = next(i for i in organization["identifier"] if i["system"] == r.IDNAT_STRUCT_SYSTEM)
    assert idnat["value"] == "1" + structure["finess"]
    assert organization["type"][0]["coding"][0] == {
        "system": r.TRE_R66,
        "code": "172",
        "display": "Pouponnière à caractère social",
    }


async def test_unit_without_declaration_has_no_capacity(client, structure):
    response = await client.get(f"/fhir/Location/{structure['unit_ids'][2]}", headers=NATIONAL)
    assert response.status_code == 200
    assert capacities(response.json()) == {}


async def test_searchset_bundle_pages_with_links(client, structure):
    query = f"organization=Organization/{structure['id']}&_count=2"
    response = await client.get(f"/fhir/Location?{query}", headers=NATIONAL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 3)
    assert len(bundle["entry"]) == 2
    assert all(e["search"]["mode"] == "match" for e in bundle["entry"])
    assert all(
        e["fullUrl"].endswith(f"/fhir/Location/{e['resource']['id']}") for e in bundle["entry"]
    )
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert {"self", "first", "next", "last"} <= set(links) and "previous" not in links

    response = await client.get(links["next"], headers=NATIONAL)
    page2 = response.json()
    assert len(page2["entry"]) == 1 and page2["total"] == 3
    links2 = {link["relation"] for link in page2["link"]}
    assert "previous" in links2 and "next" not in links2
    ids = {e["resource"]["id"] for e in bundle["entry"] + page2["entry"]}
    assert ids == {str(u) for u in structure["unit_ids"]}

    response = await client.get(
        f"/fhir/Location?organization={structure['id']}&_include=Location:organization",
        headers=NATIONAL,
    )
    included = [e for e in response.json()["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == [str(structure["id"])]

    response = await client.get(
        f"/fhir/Location?organization={structure['id']}&_count=0", headers=NATIONAL
    )
    assert response.json()["total"] == 3 and response.json()["entry"] == []


async def test_search_by_department_and_postal_code(client, structure):
    response = await client.get(
        "/fhir/Location?address-state=01&address-postalcode=0100&_count=500", headers=NATIONAL
    )
    bundle = response.json()
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert {str(u) for u in structure["unit_ids"]} <= ids
    for entry in bundle["entry"]:
        assert entry["resource"]["address"]["state"] == "01"
        assert entry["resource"]["address"]["postalCode"].startswith("0100")
    response = await client.get("/fhir/Location?address-state=01,974&_count=500", headers=NATIONAL)
    assert {str(u) for u in structure["unit_ids"]} <= {
        e["resource"]["id"] for e in response.json()["entry"]
    }
    response = await client.get("/fhir/Location?address-postalcode=01999", headers=NATIONAL)
    assert response.json()["total"] == 0 and response.json()["entry"] == []


async def test_no_carer_is_exported(client, pool):
    carer_id = await make_carer(pool, department="69")
    response = await client.get("/fhir/Location?address-state=69&_count=500", headers=NATIONAL)
    assert response.status_code == 200
    assert str(carer_id) not in response.text
    response = await client.get(f"/fhir/Location/{carer_id}", headers=NATIONAL)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("url", "headers", "status", "code"),
    [
        ("/fhir/Location", {}, 401, "login"),
        ("/fhir/Location", {"Authorization": "Bearer nope"}, 401, "login"),
        ("/fhir/Location?_count=abc", NATIONAL, 400, "invalid"),
        ("/fhir/Location?_count=501", NATIONAL, 400, "invalid"),
        ("/fhir/Location?_offset=-1", NATIONAL, 400, "invalid"),
        ("/fhir/Location?name=MECS", NATIONAL, 400, "not-supported"),
        ("/fhir/Location?_include=Location:partof", NATIONAL, 400, "not-supported"),
        ("/fhir/Location?organization=42", NATIONAL, 400, "invalid"),
        ("/fhir/Location?address-state=01&address-state=69", NATIONAL, 400, "invalid"),
        ("/fhir/Location?_format=xml", NATIONAL, 406, "not-supported"),
        ("/fhir/Location/not-a-uuid", NATIONAL, 404, "not-found"),
        ("/fhir/Organization/00000000-0000-4000-8000-000000000000", NATIONAL, 404, "not-found"),
    ],
)
async def test_errors_are_operation_outcomes(client, url, headers, status, code):
    response = await client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code and outcome["issue"][0]["diagnostics"]


async def test_lenient_handling_ignores_unknown_parameters(client):
    response = await client.get(
        "/fhir/Location?name=MECS&_count=1", headers={**NATIONAL, "Prefer": "handling=lenient"}
    )
    assert response.status_code == 200 and response.json()["type"] == "searchset"


async def test_every_role_reads_and_metadata_is_public(client, structure):
    url = f"/fhir/Location/{structure['unit_ids'][0]}"
    for headers in (
        bearer("structure", finess=structure["finess"]),
        bearer("department", authority="69M"),
        bearer("carer", carer_id="00000000-0000-4000-8000-000000000001"),
        bearer("operator"),
    ):
        assert (await client.get(url, headers=headers)).status_code == 200
    response = await client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"
