"""Competent authorities in the database (migration 0007): the frozen lists agree with the
referential, and every row placed by a commune inherits the commune's authority, whoever
writes it."""

import importlib.util
import uuid

import pytest

from api.settings import PROJECT_ROOT
from geo.referential import load_authorities, load_communes
from tests.support.factories import make_carer, make_structure


def _migration():  # type: ignore[no-untyped-def]
    path = PROJECT_ROOT / "api" / "migrations" / "versions" / "0007_authorities.py"
    spec = importlib.util.spec_from_file_location("m0007", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.pure
def test_the_migration_froze_the_referential():
    m = _migration()
    frozen = {code: (name, kind, tuple(deps)) for code, name, kind, deps in m.AUTHORITIES}
    assert frozen == {a.code: (a.name, a.kind, a.departments) for a in load_authorities().values()}
    lyon = sorted(c.insee for c in load_communes().values() if c.authority == "69M")
    assert list(m.METROPOLE_DE_LYON) == lyon


@pytest.mark.database
async def test_rows_inherit_their_communes_authority(pool):
    lyon = await make_structure(pool, commune="69123")
    paris = await make_structure(pool, department="75", commune="75056")
    carer = await make_carer(pool, commune="69266")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, authority FROM structures WHERE id = ANY($1::uuid[])",
            [lyon["id"], paris["id"]],
        )
        assert {r["id"]: r["authority"] for r in rows} == {lyon["id"]: "69M", paris["id"]: "75"}
        assert (
            await conn.fetchval("SELECT authority FROM foster_carers WHERE id = $1", carer) == "69M"
        )
        # A request placed by a point only takes the nearest commune's authority.
        authority = await conn.fetchval(
            """
            INSERT INTO placement_requests
                   (department, reference, children, origin_location, timing, public,
                    formula, urgency, measure_kind, decided_on, created_by)
            VALUES ('38', $1, '[{"age_months": 96, "sex": "F"}]',
                    ST_SetSRID(ST_MakePoint(5.72, 45.19), 4326)::geography,
                    'durable', 'mineur', 'enfant', 'days', 'judicial', current_date, 'test')
            RETURNING authority
            """,
            f"T-{uuid.uuid4().hex[:8]}",
        )
        assert authority == "38"
        # Moving a structure to another commune moves it to that commune's authority.
        await conn.execute(
            "UPDATE structures SET commune = '75056', department = '75' WHERE id = $1",
            lyon["id"],
        )
        assert (
            await conn.fetchval("SELECT authority FROM structures WHERE id = $1", lyon["id"])
            == "75"
        )
