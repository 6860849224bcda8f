"""lieux de vie searched at their commune: their snapshots' point is the commune's

Search filters (radius) and orders (KNN) free places by ``capacity_snapshots.location``. For
a lieu de vie et d'accueil (FINESS 462) that point was the structure's own, so the radius
boundary and the order depended on the door even though the distance shown was the
commune's (#14): bisecting origins could find it. Every writer now stores the searchable
point (``api.precision.point_sql``); this migration moves the existing rows.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOVE = """
UPDATE capacity_snapshots cs
   SET location = {point}
  FROM units u
  JOIN structures s ON s.id = u.structure_id
  JOIN communes cm ON cm.insee = s.commune
 WHERE u.id = cs.unit_id AND s.category = '462'
"""


def upgrade() -> None:
    op.execute(_MOVE.format(point="cm.location"))


def downgrade() -> None:
    op.execute(_MOVE.format(point="s.location"))
