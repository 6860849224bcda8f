"""Tokens: missing, invalid, expired ⇒ 401; out of scope ⇒ 403; all as problem+json."""

import time

import jwt
import pytest

from api.auth import issue_token
from tests.support.factories import bearer


async def test_no_token_is_401(client):
    r = await client.get("/v1/departments")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_garbage_and_wrong_scheme_are_401(client):
    for header in ("Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "):
        r = await client.get("/v1/departments", headers={"Authorization": header})
        assert r.status_code == 401, header


async def test_expired_token_is_401(client):
    token = issue_token("operator", ttl_minutes=-1)
    r = await client.get("/v1/departments", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert "expiré" in r.json()["detail"]


async def test_token_signed_by_another_key_is_401(client):
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    claims = {
        "sub": "x",
        "role": "operator",
        "iss": "places-local",
        "aud": "places",
        "exp": int(time.time()) + 60,
    }
    token = jwt.encode(claims, other, algorithm="ES256")
    r = await client.get("/v1/departments", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


async def test_hs256_with_public_key_is_refused(client):
    """Algorithm confusion: an HMAC token keyed with the public key must not pass."""
    from api.settings import get_settings

    public = (get_settings().keys_dir / "public.pem").read_bytes()
    claims = {
        "sub": "x",
        "role": "operator",
        "iss": "places-local",
        "aud": "places",
        "exp": int(time.time()) + 60,
    }
    import base64
    import hashlib
    import hmac
    import json

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest())
    r = await client.get(
        "/v1/departments", headers={"Authorization": f"Bearer {head}.{body}.{sig}"}
    )
    assert r.status_code == 401


async def test_department_cannot_list_other_departments_carers(client):
    r = await client.get(
        "/v1/foster-carers?department=01", headers=bearer("department", authority="69M")
    )
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


async def test_national_and_structure_cannot_list_carers(client):
    for headers in (bearer("national"), bearer("structure", finess="690000018")):
        r = await client.get("/v1/foster-carers?authority=69M", headers=headers)
        assert r.status_code == 403


@pytest.mark.pure
def test_token_command_requires_scope():
    with pytest.raises(ValueError, match="department"):
        issue_token("department")
    with pytest.raises(ValueError, match="role"):
        issue_token("superuser")
