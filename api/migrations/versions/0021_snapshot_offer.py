"""free places carry what a search filters and shows: one row per offer, no join per row

A search walks the free snapshots nearest first (GiST KNN) and, for each row, read its unit
to check the need (ages, sexes, timings, publics, formulas, disability profiles) and then
its unit, structure and commune again for what the answer shows. Measured with EXPLAIN
(ANALYZE, BUFFERS) at scales 1 and 4 (#16): of a national read's 4,900 buffers, 1,550 were the
unit checks and 2,900 the output's joins, against 360 for the walk itself; and for a rarer
need the planner swapped the walk for a scan of every free snapshot hashed to the units.

The snapshot now carries copies of those columns, kept by triggers — the one path for every
writer (API, FINESS import, seed, SQL by hand):

- ``capacity_snapshot_offer`` (BEFORE INSERT, or an UPDATE of ``unit_id``): copied from the
  unit and its structure;
- ``unit_offer_to_snapshots`` (AFTER UPDATE of units, when a copied column or its structure
  changed);
- ``structure_offer_to_snapshots`` (AFTER UPDATE of structures, when a copied column, its
  commune or location changed): also the searchable point (a lieu de vie's commune's,
  ``api.precision.point_sql``), which before was set by the writers only.

The search's queries then read ``capacity_snapshots`` alone (``api.search.repository``).

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIT_COLUMNS = (
    "age_min_months",
    "age_max_months",
    "sexes",
    "timings",
    "publics",
    "formulas",
    "disability_specialised",
    "disability_supported",
)
STRUCTURE_COLUMNS = ("finess", "category", "department", "commune")
"""And ``structure_name`` (the structure's ``name``)."""

_TEXT_ARRAY = postgresql.ARRAY(sa.Text())
_TYPES: dict[str, Any] = {
    "age_min_months": sa.SmallInteger(),
    "age_max_months": sa.SmallInteger(),
    "structure_id": postgresql.UUID(as_uuid=True),
    "structure_name": sa.Text(),
    "finess": sa.Text(),
    "category": sa.Text(),
    "department": sa.Text(),
    "commune": sa.Text(),
}

_POINT = "CASE WHEN s.category = '462' THEN cm.location ELSE s.location END"
"""``api.precision.point_sql`` (462: lieu de vie et d'accueil, at its commune)."""

_SET_FROM_UNIT = ", ".join(f"{c} = u.{c}" for c in UNIT_COLUMNS)
_SET_FROM_STRUCTURE = ", ".join(f"{c} = s.{c}" for c in STRUCTURE_COLUMNS)
_NEW_FROM_UNIT = "\n".join(f"    NEW.{c} := u.{c};" for c in UNIT_COLUMNS)
_NEW_FROM_STRUCTURE = "\n".join(f"    NEW.{c} := s.{c};" for c in STRUCTURE_COLUMNS)
_UNIT_CHANGED = " OR ".join(
    f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in (*UNIT_COLUMNS, "structure_id")
)
_STRUCTURE_CHANGED = " OR ".join(
    f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in (*STRUCTURE_COLUMNS, "name", "location")
)


def upgrade() -> None:
    for column in (*UNIT_COLUMNS, "structure_id", "structure_name", *STRUCTURE_COLUMNS):
        op.add_column(
            "capacity_snapshots", sa.Column(column, _TYPES.get(column, _TEXT_ARRAY), nullable=True)
        )
    op.execute(
        f"""
        UPDATE capacity_snapshots cs
           SET {_SET_FROM_UNIT}, structure_id = u.structure_id, structure_name = s.name,
               {_SET_FROM_STRUCTURE}
          FROM units u
          JOIN structures s ON s.id = u.structure_id
         WHERE u.id = cs.unit_id
        """
    )
    for column in (*UNIT_COLUMNS, "structure_id", "structure_name", *STRUCTURE_COLUMNS):
        op.alter_column("capacity_snapshots", column, nullable=False)
    op.create_index("capacity_snapshots_structure_idx", "capacity_snapshots", ["structure_id"])
    # The search's neighbours step (radius OR departments): the departments' side.
    op.create_index(
        "capacity_snapshots_free_department_idx",
        "capacity_snapshots",
        ["department"],
        postgresql_where=sa.text("available > 0"),
    )
    # The search's first ring (places free now within the radius): a third of the free rows.
    op.create_index(
        "capacity_snapshots_free_now_gist",
        "capacity_snapshots",
        ["location"],
        postgresql_using="gist",
        postgresql_where=sa.text("available > 0 AND temporality = 'current'"),
    )
    for statement in (
        f"""
        CREATE FUNCTION capacity_snapshot_offer() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            u units%ROWTYPE;
            s structures%ROWTYPE;
        BEGIN
            SELECT * INTO STRICT u FROM units WHERE id = NEW.unit_id;
            SELECT * INTO STRICT s FROM structures WHERE id = u.structure_id;
        {_NEW_FROM_UNIT}
            NEW.structure_id := s.id;
            NEW.structure_name := s.name;
        {_NEW_FROM_STRUCTURE}
            RETURN NEW;
        END
        $$;
        """,
        """
        CREATE TRIGGER capacity_snapshot_offer
            BEFORE INSERT OR UPDATE OF unit_id ON capacity_snapshots
            FOR EACH ROW EXECUTE FUNCTION capacity_snapshot_offer();
        """,
        f"""
        CREATE FUNCTION unit_offer_to_snapshots() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE capacity_snapshots cs
               SET {_SET_FROM_UNIT}, structure_id = u.structure_id, structure_name = s.name,
                   {_SET_FROM_STRUCTURE}, location = {_POINT}
              FROM units u
              JOIN structures s ON s.id = u.structure_id
              JOIN communes cm ON cm.insee = s.commune
             WHERE u.id = NEW.id AND cs.unit_id = NEW.id;
            RETURN NULL;
        END
        $$;
        """,
        f"""
        CREATE TRIGGER unit_offer_to_snapshots
            AFTER UPDATE ON units
            FOR EACH ROW WHEN ({_UNIT_CHANGED})
            EXECUTE FUNCTION unit_offer_to_snapshots();
        """,
        f"""
        CREATE FUNCTION structure_offer_to_snapshots() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE capacity_snapshots cs
               SET structure_name = s.name, {_SET_FROM_STRUCTURE}, location = {_POINT}
              FROM structures s
              JOIN communes cm ON cm.insee = s.commune
             WHERE s.id = NEW.id AND cs.structure_id = NEW.id;
            RETURN NULL;
        END
        $$;
        """,
        f"""
        CREATE TRIGGER structure_offer_to_snapshots
            AFTER UPDATE ON structures
            FOR EACH ROW WHEN ({_STRUCTURE_CHANGED})
            EXECUTE FUNCTION structure_offer_to_snapshots();
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in """
        DROP TRIGGER structure_offer_to_snapshots ON structures;
        DROP FUNCTION structure_offer_to_snapshots();
        DROP TRIGGER unit_offer_to_snapshots ON units;
        DROP FUNCTION unit_offer_to_snapshots();
        DROP TRIGGER capacity_snapshot_offer ON capacity_snapshots;
        DROP FUNCTION capacity_snapshot_offer();
        """.split(";")[:-1]:
        op.execute(statement)
    op.drop_index("capacity_snapshots_free_now_gist", "capacity_snapshots")
    op.drop_index("capacity_snapshots_free_department_idx", "capacity_snapshots")
    op.drop_index("capacity_snapshots_structure_idx", "capacity_snapshots")
    for column in (*UNIT_COLUMNS, "structure_id", "structure_name", *STRUCTURE_COLUMNS):
        op.drop_column("capacity_snapshots", column)
