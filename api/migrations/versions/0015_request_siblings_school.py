"""a request records where siblings already live and the child's school commune (#16)

Revision ID: 0015
Revises: 0014

``siblings_placed``: where brothers and sisters already live (Code civil art. 371-5: ties
between siblings are kept even when they cannot be placed together) — a list of
``{"kind": "unit"|"carer", "id", "commune"}`` or ``{"kind": "commune", "commune"}``. A carer is
recorded by id and commune only, never a point: search finds their public point (their
commune's) itself. ``school_commune``: the INSEE code of the child's school, a second origin
scored by search (the ladder's geography stays the family's). Existing requests: none of
either.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "placement_requests",
        sa.Column(
            "siblings_placed",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    op.add_column(
        "placement_requests",
        sa.Column(
            "school_commune",
            sa.String(),
            sa.ForeignKey("communes.insee", name="placement_requests_school_commune_fkey"),
            nullable=True,
        ),
    )
    op.create_check_constraint(
        "placement_requests_siblings_placed",
        "placement_requests",
        "jsonb_typeof(siblings_placed) = 'array' AND jsonb_array_length(siblings_placed) <= 8",
    )


def downgrade() -> None:
    op.drop_constraint("placement_requests_siblings_placed", "placement_requests")
    op.drop_column("placement_requests", "school_commune")
    op.drop_column("placement_requests", "siblings_placed")
