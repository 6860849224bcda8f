"""snapshot location: free places searchable nearest first

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "capacity_snapshots",
        sa.Column(
            "location",
            geoalchemy2.types.Geography(
                geometry_type="POINT",
                srid=4326,
                spatial_index=False,
                from_text="ST_GeogFromText",
                name="geography",
            ),
            nullable=True,
        ),
    )
    op.execute(
        """
        UPDATE capacity_snapshots cs
           SET location = s.location
          FROM units u
          JOIN structures s ON s.id = u.structure_id
         WHERE u.id = cs.unit_id
        """
    )
    op.execute(
        """
        CREATE INDEX capacity_snapshots_free_location_gist
            ON capacity_snapshots USING gist (location)
         WHERE available > 0
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX capacity_snapshots_free_location_gist")
    op.drop_column("capacity_snapshots", "location")
