"""search indexes: nearest free carers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only carers who can take a child: the KNN walk of a national search step stays short.
    op.execute(
        """
        CREATE INDEX foster_carers_free_location_gist
            ON foster_carers USING gist (location)
         WHERE status = 'active' AND available_places > 0
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX foster_carers_free_location_gist")
