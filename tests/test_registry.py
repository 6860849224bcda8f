"""Registry reads against the real database."""

import httpx

from tests.support.database import DEPARTMENTS
from tests.support.factories import bearer, idem, make_carer, make_structure


async def test_health(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["postgres"] == "ok"


async def test_departments_listed(client):
    r = await client.get("/v1/departments", headers=bearer("national"))
    assert r.status_code == 200
    codes = [d["code"] for d in r.json()]
    assert codes == sorted(c for c, *_ in DEPARTMENTS)
    assert set(r.json()[0]) == {"code", "name", "region_code"}


async def test_structures_with_units_and_capacity(client, pool):
    s = await make_structure(
        pool,
        department="38",
        commune="38185",
        category="172",
        units=[{"name": "Bébés", "age_min": 0, "age_max": 3, "installed": 8}],
    )
    unit_id = str(s["unit_ids"][0])
    token = bearer("structure", finess=s["finess"])
    r = await client.put(
        f"/v1/units/{unit_id}/capacity",
        headers={**token, **idem()},
        json={"temporality": "current", "occupied": 6, "available": 2},
    )
    assert r.status_code == 200, r.text
    r = await client.get("/v1/structures?department=38&category=172", headers=token)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 1
    item = page["items"][0]
    assert item["finess"] == s["finess"]
    assert abs(item["location"]["lat"] - 45.1885) < 1e-6
    unit = item["units"][0]
    assert unit["id"] == unit_id and unit["age_max"] == 3
    assert unit["capacity"]["available"] == 2 and unit["capacity"]["version"] == 1


async def test_structures_pagination(client, pool):
    for _ in range(3):
        await make_structure(pool, department="01", commune="01053", category="462")
    headers = bearer("operator")
    first = (
        await client.get("/v1/structures?department=01&category=462&limit=2", headers=headers)
    ).json()
    rest = (
        await client.get(
            "/v1/structures?department=01&category=462&limit=2&offset=2", headers=headers
        )
    ).json()
    assert first["total"] == rest["total"] == 3
    ids = [i["id"] for i in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 3


async def test_foster_carers_never_expose_location(client, pool):
    carer_id = await make_carer(pool, department="69")
    r = await client.get(
        "/v1/foster-carers?authority=69M", headers=bearer("department", authority="69M")
    )
    assert r.status_code == 200
    items = r.json()["items"]
    mine = [c for c in items if c["id"] == str(carer_id)]
    assert mine and mine[0]["commune"] == "69266"
    text = r.text
    assert "location" not in text and "lat" not in text and "lon" not in text
    assert "agrement_number" not in text


async def test_unknown_department_and_category_are_422(client):
    headers = bearer("operator")
    r = await client.get("/v1/structures?department=99", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department"
    r = await client.get("/v1/structures?department=95", headers=headers)  # valid code, not loaded
    assert r.status_code == 422 and "95" in r.json()["detail"]
    r = await client.get("/v1/structures?category=101", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "category"
    r = await client.get("/v1/structures?limit=100000", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"


async def test_openapi_describes_the_contract(client):
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/v1/departments",
        "/v1/structures",
        "/v1/foster-carers",
        "/v1/units/{unit_id}/capacity",
        "/v1/foster-carers/{carer_id}/availability",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    schemas = spec["components"]["schemas"]
    assert schemas["CapacityIn"]["examples"]


async def test_readyz_is_503_when_configured_redis_is_unreachable(database):
    from api.main import create_app
    from api.settings import get_settings

    settings = get_settings().model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["postgres"] == "ok"
            assert r.json()["checks"]["redis"].startswith("down")
            assert (await c.get("/healthz")).status_code == 200
