"""Persons and habilitations (#14): what a person may do comes from the habilitation table,
administered per authority; revocation and sign-out everywhere apply to the next request.

Persons here are tokens of the local issuer without a ``role`` claim (``issue_token(None,
sub=…)``): the table decides for them even with ``PLACES_LOCAL_ROLES`` on. The identity
provider's tokens (ProConnect, Pro Santé Connect) are tested against a real server in
tests/test_identity_provider.py.
"""

import asyncio
import importlib.util
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import issue_token
from api.permissions import FUNCTIONS, PERMISSIONS, ROLE_PERMISSIONS, ROLES
from tests.support.factories import (
    AUTHORITY,
    bearer,
    dept,
    idem,
    make_carer,
    make_structure,
    new_request,
)

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "migration_0008", ROOT / "api" / "migrations" / "versions" / "0008_persons.py"
)
assert _spec is not None and _spec.loader is not None
migration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(migration)
ADMIN = bearer("authority_admin", authority=AUTHORITY)
PATH = f"/v1/authorities/{AUTHORITY}/habilitations"


def person(sub: str | None = None) -> tuple[str, dict[str, str]]:
    """A new person's ``sub`` and the header of their token (no role claim)."""
    sub = sub or f"agent-{uuid.uuid4().hex[:10]}"
    return sub, {"Authorization": f"Bearer {issue_token(None, sub=sub)}"}


async def grant(
    client: httpx.AsyncClient,
    sub: str,
    function: str,
    headers: dict[str, str] = ADMIN,
    path: str = PATH,
    **territory: str,
) -> httpx.Response:
    body = {"sub": sub, "function": function, **territory}
    return await client.post(path, json=body, headers={**headers, **idem()})


# --- the one table -----------------------------------------------------------------------


@pytest.mark.pure
def test_the_matrix_is_one_table_and_documented() -> None:
    assert tuple(FUNCTIONS) == migration.FUNCTIONS  # the migration's frozen copy
    for name, function in FUNCTIONS.items():
        assert function.role in ROLES, name
        assert function.permissions <= PERMISSIONS.keys(), name
        assert "offer.read" in function.permissions
    # A local role token can do what the union of its role's functions can, nothing more.
    assert ROLE_PERMISSIONS["department"] == (
        FUNCTIONS["orientation_officer"].permissions
        | FUNCTIONS["ase_manager"].permissions
        | FUNCTIONS["pmi_agrement"].permissions
        | FUNCTIONS["inspector"].permissions
    )
    # The platform operator reads no child data; the authority administrator does, scoped.
    operator = FUNCTIONS["platform_operator"].permissions
    assert not operator & {"placement", "audit.read", "carers.read", "holds.respond"}
    assert {"placement", "audit.read", "habilitations.manage"} <= FUNCTIONS[
        "authority_admin"
    ].permissions
    # docs/domain.md shows the matrix: every function (with its French label) and permission.
    domain = (ROOT / "docs" / "domain.md").read_text()
    matrix = domain[domain.index("### Functions × permissions") :]
    for name, function in FUNCTIONS.items():
        assert f"`{name}`" in matrix and function.label in matrix, name
    for permission in PERMISSIONS:
        assert f"`{permission}`" in matrix, permission
    row = re.search(r"^\| `orientation_officer`.*$", matrix, re.MULTILINE)
    assert row is not None
    cells = [c.strip() for c in row.group(0).strip("|").split("|")]
    header = re.search(r"^\| Function.*$", matrix, re.MULTILINE)
    assert header is not None
    columns = [c.strip().strip("`") for c in header.group(0).strip("|").split("|")]
    for column, cell in zip(columns[2:], cells[2:], strict=True):
        assert (cell == "✓") == (column in FUNCTIONS["orientation_officer"].permissions), column


# --- a person without habilitation ------------------------------------------------------


@pytest.mark.database
async def test_a_person_without_habilitation_may_only_see_who_they_are(client) -> None:
    sub, headers = person()
    r = await client.get("/v1/me", headers=headers)
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["sub"], me["role"], me["habilitations"]) == (sub, "", [])
    assert me["person_id"] is not None  # registered on first sight
    r = await client.get("/v1/requests", headers=headers)
    assert r.status_code == 403 and "Aucune habilitation" in r.json()["detail"]
    assert (await client.get("/v1/departments", headers=headers)).status_code == 403


# --- granting, acting, revoking -----------------------------------------------------------


@pytest.mark.database
async def test_grant_act_revoke_at_once_and_audited(client, pool) -> None:
    request = await new_request(client)
    sub, headers = person()
    r = await grant(client, sub, "orientation_officer")
    assert r.status_code == 201, r.text
    hab = r.json()
    assert hab["function_label"] == "chargé·e d'orientation"
    assert (hab["authority"], hab["person"]["sub"]) == (AUTHORITY, sub)
    assert r.headers["location"].endswith(f"/habilitations/{hab['id']}")
    # The person acts under it at once, scoped to the authority.
    r = await client.get(f"/v1/requests/{request['id']}", headers=headers)
    assert r.status_code == 200, r.text
    assert (await client.get("/v1/requests?authority=13", headers=headers)).status_code == 403
    me = (await client.get("/v1/me", headers=headers)).json()
    assert (me["function"], me["role"], me["authority"]) == (
        "orientation_officer",
        "department",
        AUTHORITY,
    )
    assert "placement" in me["permissions"] and "audit.read" not in me["permissions"]
    # An orientation officer does not read the audit trail (the matrix).
    assert (await client.get("/v1/audit", headers=headers)).status_code == 403
    # The audit records the person, the function and the authority they acted for.
    row = await pool.fetchrow(
        "SELECT person_id, function, actor_authority, role FROM audit_entries"
        " WHERE action = 'request.read' AND actor = $1",
        sub,
    )
    assert dict(row) == {
        "person_id": me["person_id"],
        "function": "orientation_officer",
        "actor_authority": AUTHORITY,
        "role": "department",
    }
    trail = (await client.get(f"/v1/audit?object_id={request['id']}", headers=dept())).json()
    mine = [i for i in trail["items"] if i["actor"] == sub]
    assert mine and mine[0]["function"] == "orientation_officer"
    assert mine[0]["person_id"] == me["person_id"]
    # Revoked: the very next request is refused, not at the token's expiry.
    revoked = await client.delete(f"{PATH}/{hab['id']}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and revoked.json()["revoked_by"]
    r = await client.get(f"/v1/requests/{request['id']}", headers=headers)
    assert r.status_code == 403
    again = await client.delete(f"{PATH}/{hab['id']}", headers=ADMIN)  # idempotent
    assert again.status_code == 200 and again.json() == revoked.json()
    # The list: live ones by default, the revoked on demand; both audited.
    live = (await client.get(PATH, headers=ADMIN)).json()["items"]
    assert hab["id"] not in {h["id"] for h in live}
    every = (await client.get(f"{PATH}?include_revoked=true", headers=ADMIN)).json()["items"]
    assert hab["id"] in {h["id"] for h in every}
    actions = {
        r["action"]
        for r in await pool.fetch(
            "SELECT action FROM audit_entries WHERE object_type = 'habilitation'"
            " AND object_id = $1",
            str(hab["id"]),
        )
    }
    assert actions == {"habilitation.grant", "habilitation.revoke"}


@pytest.mark.database
async def test_a_grant_is_idempotent_and_not_doubled(client) -> None:
    sub, _ = person()
    key = idem()
    body = {"sub": sub, "function": "inspector"}
    first = await client.post(PATH, json=body, headers={**ADMIN, **key})
    again = await client.post(PATH, json=body, headers={**ADMIN, **key})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    r = await client.post(PATH, json=body, headers={**ADMIN, **idem()})
    assert r.status_code == 409
    r = await client.post(PATH, json=body, headers=ADMIN)
    assert r.status_code == 428


@pytest.mark.database
@pytest.mark.parametrize(
    ("headers", "path", "function", "status"),
    [
        # An authority administrator: its own authority, no administrative function.
        (ADMIN, "/v1/authorities/13/habilitations", "orientation_officer", 403),
        (ADMIN, PATH, "authority_admin", 403),
        (ADMIN, PATH, "platform_operator", 403),
        (ADMIN, PATH, "national_analyst", 403),
        # The platform operator grants authority administrators only.
        (bearer("operator"), PATH, "orientation_officer", 403),
        (bearer("operator"), PATH, "authority_admin", 201),
        (bearer("operator"), "/v1/authorities/ZZ/habilitations", "authority_admin", 422),
        (bearer("operator"), "/v1/authorities/99/habilitations", "authority_admin", 404),
        # Nobody else.
        (dept(), PATH, "orientation_officer", 403),
        (bearer("national"), PATH, "orientation_officer", 403),
        (ADMIN, PATH, "king", 422),
    ],
)
async def test_who_grants_what(client, headers, path, function, status) -> None:
    sub, _ = person()
    r = await grant(client, sub, function, headers, path)
    assert r.status_code == status, r.text


@pytest.mark.database
async def test_the_operator_lists_and_revokes_authority_admins_only(client) -> None:
    admin_sub, admin_headers = person()
    r = await grant(client, admin_sub, "authority_admin", bearer("operator"))
    assert r.status_code == 201
    admin_hab = r.json()["id"]
    # The new administrator (a person) grants in turn.
    agent, _ = person()
    r = await grant(client, agent, "ase_manager", admin_headers)
    assert r.status_code == 201, r.text
    agent_hab = r.json()["id"]
    assert r.json()["granted_by"] == admin_sub
    r = await client.delete(f"{PATH}/{agent_hab}", headers=bearer("operator"))
    assert r.status_code == 403
    r = await client.delete(f"{PATH}/{admin_hab}", headers=admin_headers)
    assert r.status_code == 403  # an administrator is revoked by the operator
    r = await client.delete(f"{PATH}/{admin_hab}", headers=bearer("operator"))
    assert r.status_code == 200
    assert (await client.get(PATH, headers=admin_headers)).status_code == 403
    r = await client.delete(f"/v1/authorities/13/habilitations/{agent_hab}", headers=ADMIN)
    assert r.status_code == 403


@pytest.mark.database
async def test_establishment_and_carer_functions_name_their_territory(client, pool) -> None:
    ours = await make_structure(pool)
    theirs = await make_structure(pool, department="13", commune="13055")
    carer = await make_carer(pool)
    director, director_headers = person()
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"function": "establishment_director"}, 422, "finess"),
        ({"function": "establishment_director", "finess": theirs["finess"]}, 422, "finess"),
        ({"function": "orientation_officer", "finess": ours["finess"]}, 422, "finess"),
        ({"function": "carer"}, 422, "carer_id"),
        ({"function": "carer", "carer_id": str(uuid.uuid4())}, 422, "carer_id"),
        ({"function": "establishment_director", "finess": ours["finess"]}, 201, None),
    ]
    for territory, status, field in cases:
        function = territory.pop("function")
        r = await grant(client, director, function, **territory)
        assert r.status_code == status, (function, territory, r.text)
        if field:
            assert r.json()["errors"][0]["field"] == field
    staff, staff_headers = person()
    assert (
        await grant(client, staff, "establishment_staff", finess=ours["finess"])
    ).status_code == 201
    carer_sub, carer_headers = person()
    r = await grant(client, carer_sub, "carer", carer_id=str(carer))
    assert r.status_code == 201, r.text
    # Each acts on their own territory, and by their function.
    unit = ours["unit_ids"][0]
    body = {"temporality": "current", "available": 2}
    for headers in (director_headers, staff_headers):
        r = await client.put(f"/v1/units/{unit}/capacity", json=body, headers={**headers, **idem()})
        assert r.status_code == 200, r.text
    unit_body = {"name": "Nouvelle", "installed": 4, "age_min": 6, "age_max": 12}
    path = f"/v1/structures/{ours['id']}/units"
    r = await client.post(path, json=unit_body, headers={**staff_headers, **idem()})
    assert r.status_code == 403  # staff declare, the director describes
    r = await client.put(
        f"/v1/foster-carers/{carer}/availability",
        json={"available_places": 1, "status": "active"},
        headers={**carer_headers, **idem()},
    )
    assert r.status_code == 200, r.text


@pytest.mark.database
async def test_several_habilitations_are_chosen_by_header(client, pool) -> None:
    structure = await make_structure(pool)
    sub, headers = person()
    officer = (await grant(client, sub, "orientation_officer")).json()["id"]
    director = (
        await grant(client, sub, "establishment_director", finess=structure["finess"])
    ).json()["id"]
    r = await client.get("/v1/requests", headers=headers)
    assert r.status_code == 403 and "X-Places-Habilitation" in r.json()["detail"]
    me = (await client.get("/v1/me", headers=headers)).json()
    assert {h["id"] for h in me["habilitations"]} == {officer, director}
    r = await client.get("/v1/requests", headers={**headers, "X-Places-Habilitation": str(officer)})
    assert r.status_code == 200
    r = await client.get(
        "/v1/requests", headers={**headers, "X-Places-Habilitation": str(director)}
    )
    assert r.status_code == 403
    r = await client.get("/v1/requests", headers={**headers, "X-Places-Habilitation": "999999999"})
    assert r.status_code == 403


# --- sign out everywhere ------------------------------------------------------------------


@pytest.mark.database
async def test_sign_out_everywhere_invalidates_earlier_tokens(client) -> None:
    """A local role token (its sub) and a person's: both stop at once; new ones work."""
    sub = f"agent-{uuid.uuid4().hex[:10]}"
    local = bearer("department", authority=AUTHORITY, sub=sub)
    assert (await client.get("/v1/requests", headers=local)).status_code == 200
    r = await client.post("/v1/me/sign-out-everywhere", headers=local)
    assert r.status_code == 200, r.text
    assert r.json()["signed_out_at"]
    r = await client.get("/v1/requests", headers=local)
    assert r.status_code == 401 and "déconnexion" in r.json()["detail"]
    await asyncio.sleep(1.05)  # ``iat`` counts whole seconds
    fresh = bearer("department", authority=AUTHORITY, sub=sub)
    assert (await client.get("/v1/requests", headers=fresh)).status_code == 200
    # A person's too; their habilitation stays (signing out revokes nothing).
    person_sub, headers = person()
    assert (await grant(client, person_sub, "inspector")).status_code == 201
    assert (await client.get("/v1/audit", headers=headers)).status_code == 200
    assert (await client.post("/v1/me/sign-out-everywhere", headers=headers)).status_code == 200
    assert (await client.get("/v1/audit", headers=headers)).status_code == 401
    assert (await client.get("/v1/me", headers=headers)).status_code == 401
    await asyncio.sleep(1.05)
    _, again = person(person_sub)
    assert (await client.get("/v1/audit", headers=again)).status_code == 200
