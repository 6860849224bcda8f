"""Production identity (#14) against a real server: an identity provider on loopback serves
its JWKS and signs tokens shaped like ProConnect's (agents of the collectivities: ``sub``,
``given_name``, ``usual_name``, ``email``, ``siret``, ``idp_id``) and Pro Santé Connect's
(``sub``, ``given_name``, ``family_name``, ``SubjectNameID``); ``places run`` (two workers)
verifies them through ``PLACES_JWT_JWKS_URL`` and decides what each person may do from the
habilitation table only — the local issuer and its role claims are refused.
"""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue_token
from api.db import drop_database
from loadtests.harness import ROOT, ServiceProcess
from tests.support.database import create_fixture_database
from tests.support.env import ADMIN_DSN, TEST_DB
from tests.support.factories import make_structure, request_body
from tests.support.identity import IdentityProvider, running

pytestmark = [pytest.mark.database, pytest.mark.server, pytest.mark.timeout(180)]

AUDIENCE = "places-client-id"
RECHECK = 0.5


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with running(IdentityProvider(audience=AUDIENCE)) as idp:
        yield idp


@dataclass
class Deployment:
    server: ServiceProcess
    dsn: str
    idp: IdentityProvider


@pytest.fixture(scope="module")
def deployment(provider: IdentityProvider) -> Iterator[Deployment]:
    dsn = f"{ADMIN_DSN.rsplit('/', 1)[0]}/{TEST_DB}_idp"
    asyncio.run(create_fixture_database(dsn))
    env = {
        "PLACES_DATABASE_URL": dsn,
        "PLACES_JWT_ISSUER": provider.url,
        "PLACES_JWT_AUDIENCE": AUDIENCE,
    }
    server = ServiceProcess(
        dsn,
        None,  # the session's Redis: two workers
        workers=2,
        PLACES_JWT_JWKS_URL=f"{provider.url}/jwks",
        PLACES_JWT_ISSUER=provider.url,
        PLACES_JWT_AUDIENCE=AUDIENCE,
        PLACES_DEV_SIGNIN=None,
        PLACES_LOCAL_ROLES=None,
        PLACES_HABILITATION_RECHECK_SECONDS=str(RECHECK),
        PLACES_WS_PING_SECONDS="0.5",  # the first ping says the subscription is live
    )
    server.spawn()
    # The first platform operator is granted from the command line (database access).
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "grant",
            "--sub",
            "op-1",
            "--function",
            "platform_operator",
        ],
        cwd=ROOT,
        env={**server.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    try:
        server.wait_ready()
        yield Deployment(server, dsn, provider)
    finally:
        server.stop()
        asyncio.run(drop_database(dsn))


@pytest.fixture
async def pool(deployment: Deployment) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(deployment.dsn, min_size=1, max_size=2)
    yield p
    await p.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}


async def statuses(http: httpx.AsyncClient, url: str, token: str, n: int = 12) -> set[int]:
    """``n`` requests over separate connections: both workers answer some."""
    codes = set()
    for _ in range(n):
        async with httpx.AsyncClient() as fresh:
            codes.add((await fresh.get(url, headers=auth(token))).status_code)
    return codes


async def grant(
    http: httpx.AsyncClient, base: str, token: str, sub: str, function: str, **territory: str
) -> dict[str, Any]:
    r = await http.post(
        f"{base}/v1/authorities/69M/habilitations",
        json={"sub": sub, "function": function, **territory},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_proconnect_agents_act_by_their_habilitations_revoked_at_once(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    idp, base = deployment.idp, deployment.server.http
    operator = idp.proconnect("op-1", "Olga", "Operatrice")
    admin = idp.proconnect(f"admin-{uuid.uuid4().hex[:6]}", "Alix", "Admin")
    agent_sub = f"agent-{uuid.uuid4().hex[:6]}"
    agent = idp.proconnect(agent_sub)
    async with httpx.AsyncClient() as http:
        # The agent exists at first sight, with what ProConnect says, and may do nothing.
        me = (await http.get(f"{base}/v1/me", headers=auth(agent))).json()
        assert me["display_name"] == "Camille Martin"
        assert me["email"] == "camille.martin@grandlyon.example"
        assert me["siret"] == "20004697700019" and me["habilitations"] == []
        assert await statuses(http, f"{base}/v1/requests", agent) == {403}
        # The operator (granted by the CLI) makes an administrator, who habilitates the agent.
        admin_sub = jwt.decode(admin, options={"verify_signature": False})["sub"]
        made = await grant(http, base, operator, admin_sub, "authority_admin")
        assert made["granted_by"] == "op-1" and made["person"]["issuer"] == idp.url
        r = await http.post(f"{base}/v1/requests", json=request_body(), headers=auth(operator))
        assert r.status_code == 403  # the operator reads and writes no child data
        hab = await grant(http, base, admin, agent_sub, "orientation_officer")
        assert await statuses(http, f"{base}/v1/requests", agent) == {200}
        r = await http.post(f"{base}/v1/requests", json=request_body(), headers=auth(agent))
        assert r.status_code == 201, r.text
        row = await pool.fetchrow(
            "SELECT a.function, a.actor_authority, p.sub FROM audit_entries a"
            " JOIN persons p ON p.id = a.person_id"
            " WHERE a.action = 'request.create' AND a.object_id = $1",
            r.json()["id"],
        )
        assert dict(row) == {
            "function": "orientation_officer",
            "actor_authority": "69M",
            "sub": agent_sub,
        }
        # Revoked: refused at once on every worker (no waiting for the token's expiry).
        r = await http.delete(
            f"{base}/v1/authorities/69M/habilitations/{hab['id']}", headers=auth(admin)
        )
        assert r.status_code == 200, r.text
        assert await statuses(http, f"{base}/v1/requests", agent, n=20) == {403}
        # The role claims of a token mean nothing in production, nor does the local issuer.
        forged = idp.mint(agent_sub, role="department", authority="69M")
        assert await statuses(http, f"{base}/v1/requests", forged, n=4) == {403}
        local = issue_token("department", authority="69M")
        assert (await http.get(f"{base}/v1/requests", headers=auth(local))).status_code == 401


async def test_pro_sante_connect_claims_and_an_establishment_function(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    idp, base = deployment.idp, deployment.server.http
    structure = await make_structure(pool)
    admin_sub = f"admin-{uuid.uuid4().hex[:6]}"
    admin = idp.proconnect(admin_sub, "Alix", "Admin")
    doctor_sub = f"psc-{uuid.uuid4().hex[:6]}"
    doctor = idp.psc(doctor_sub)
    async with httpx.AsyncClient() as http:
        await grant(http, base, idp.proconnect("op-1"), admin_sub, "authority_admin")
        await grant(
            http, base, admin, doctor_sub, "establishment_director", finess=structure["finess"]
        )
        me = (await http.get(f"{base}/v1/me", headers=auth(doctor))).json()
        assert (me["display_name"], me["rpps"], me["email"]) == (
            "Jean Dupont",
            "899700218896",
            None,
        )
        assert (me["function"], me["finess"]) == ("establishment_director", structure["finess"])
        unit = structure["unit_ids"][0]
        r = await http.put(
            f"{base}/v1/units/{unit}/capacity",
            json={"temporality": "current", "available": 3},
            headers=auth(doctor),
        )
        assert r.status_code == 200, r.text
        assert (await http.get(f"{base}/v1/requests", headers=auth(doctor))).status_code == 403


async def test_sign_out_everywhere_and_open_feeds_closed_on_revocation(
    deployment: Deployment,
) -> None:
    idp, server = deployment.idp, deployment.server
    admin_sub = f"admin-{uuid.uuid4().hex[:6]}"
    admin = idp.proconnect(admin_sub, "Alix", "Admin")
    agent_sub = f"agent-{uuid.uuid4().hex[:6]}"
    agent = idp.proconnect(agent_sub)
    async with httpx.AsyncClient() as http:
        await grant(http, server.http, idp.proconnect("op-1"), admin_sub, "authority_admin")
        hab = await grant(http, server.http, admin, agent_sub, "ase_manager")
        # A live feed of the agent closes at its next check once revoked.
        async with connect(
            f"{server.ws}/ws/authorities/69M",
            additional_headers={"Authorization": f"Bearer {agent}"},
        ) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # the first ping: subscribed
            r = await http.delete(
                f"{server.http}/v1/authorities/69M/habilitations/{hab['id']}",
                headers=auth(admin),
            )
            assert r.status_code == 200
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(RECHECK * 10):
                    while True:
                        await ws.recv()
            assert ws.close_code == 4401 and "révoquée" in (ws.close_reason or "")
        # Sign out everywhere: every earlier token stops, on every worker; a new one works.
        await grant(http, server.http, admin, agent_sub, "ase_manager")
        assert await statuses(http, f"{server.http}/v1/audit", agent, n=4) == {200}
        r = await http.post(f"{server.http}/v1/me/sign-out-everywhere", headers=auth(agent))
        assert r.status_code == 200, r.text
        assert await statuses(http, f"{server.http}/v1/audit", agent, n=12) == {401}
        await asyncio.sleep(1.05)
        fresh = idp.proconnect(agent_sub)
        assert await statuses(http, f"{server.http}/v1/audit", fresh, n=6) == {200}
