"""Every error an operation can answer is documented in the OpenAPI document with its body:
problem+json (OperationOutcome under /fhir), so a schema-driven client or fuzzer finds each
status it meets."""

from typing import Any

import pytest

from api.errors import TABLE, DomainError, field_error, status_of
from tests.support.factories import bearer


async def _schema(client: Any) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    schema: dict[str, Any] = r.json()
    return schema


async def test_every_error_response_has_a_problem_body(client):
    schema = await _schema(client)
    assert "ProblemDetails" in schema["components"]["schemas"]
    operations = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            operations += 1
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert {"422", "500"} <= set(errors), (method, path)
            if path.startswith("/v1"):
                assert {"401", "403", "429"} <= set(errors), (method, path)
            media = (
                "application/fhir+json"
                if path.startswith("/fhir")
                else ("application/problem+json")
            )
            for status, response in errors.items():
                # 400 is also h11's own plain text: a header block over the server's limit.
                expected = [media, "text/plain"] if status == "400" else [media]
                assert list(response["content"]) == expected, (method, path, status)
    assert operations > 30


async def test_a_documented_refusal_comes_as_documented(client):
    """A refusal the document announces (401 on a /v1 read) is the problem+json it shows."""
    r = await client.get("/v1/departments")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == 401


@pytest.mark.pure
def test_every_domain_error_has_one_row_of_the_table():
    """Each named error maps to one status; a subclass without a row takes its parent's."""
    for cls, (status, title, fhir_code) in TABLE.items():
        assert status_of(cls("x")) == status and title and fhir_code
    assert status_of(field_error("f", "m")) == 422

    class Unlisted(DomainError):
        pass

    assert status_of(Unlisted("x")) == 400


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "token", "status"),
    [
        # Found by the fuzz run (tests/test_fuzz.py): answered, but missing from the document.
        ("get", "/ui/api/moi", "", None, None, 401),
        ("get", "/v1/stats/departments.csv", "?department=04", None, {"role": "national"}, 404),
        (
            "post",
            "/v1/assignments/optimize",
            "",
            {"authority": "08"},
            {"role": "authority_admin", "authority": "08"},
            404,
        ),
    ],
)
async def test_a_status_the_fuzzer_met_is_documented(
    client, method, path, query, body, token, status
):
    """An authority whose departments are not in the referential (the fixture database has
    ten), a department without data, a page API called without a token: each refusal is
    problem+json and listed for its operation."""
    headers = bearer(**token) if token else {}
    r = await client.request(method.upper(), path + query, json=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    documented = (await _schema(client))["paths"][path][method]["responses"]
    assert str(status) in documented
