"""FINESS import: postal code, location precision and import time of structures; default units

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "structures", sa.Column("postal_code", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.add_column(
        "structures",
        sa.Column(
            "location_precision",
            sqlmodel.sql.sqltypes.AutoString(),
            nullable=False,
            server_default="address",
        ),
    )
    op.add_column("structures", sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "structures_location_precision",
        "structures",
        "location_precision IN ('address', 'commune')",
    )
    op.create_index("structures_postal_code_idx", "structures", ["postal_code"])
    op.add_column(
        "units",
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )


def downgrade() -> None:
    op.drop_column("units", "is_default")
    op.drop_index("structures_postal_code_idx", table_name="structures")
    op.drop_constraint("structures_location_precision", "structures", type_="check")
    op.drop_column("structures", "imported_at")
    op.drop_column("structures", "location_precision")
    op.drop_column("structures", "postal_code")
