"""a request records a separation of siblings ordered and a minimum distance from the family
(#16)

Revision ID: 0014
Revises: 0013

``separation_ordered``: the judge (or the department) decided the siblings may be placed apart
(Code civil art. 371-5: together "unless impossible or the child's interest commands
otherwise"); search then allows a split from the first step, not as a relaxation, and the
decision stays on the request. ``min_distance_km``: the place must be kept at least that far
from the family (art. 375-7); search leaves nearer places out and scores distance from that
minimum. Existing requests: no separation ordered, no minimum distance.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "placement_requests",
        sa.Column("separation_ordered", sa.Boolean(), nullable=False, server_default="false"),
    )
    op.add_column("placement_requests", sa.Column("min_distance_km", sa.Float(), nullable=True))
    op.create_check_constraint(
        "placement_requests_min_distance",
        "placement_requests",
        "min_distance_km IS NULL OR (min_distance_km >= 0 AND min_distance_km <= 1200)",
    )


def downgrade() -> None:
    op.drop_constraint("placement_requests_min_distance", "placement_requests")
    op.drop_column("placement_requests", "min_distance_km")
    op.drop_column("placement_requests", "separation_ordered")
