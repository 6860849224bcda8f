"""orientation workflow: placement requests, their status history, holds

Revision ID: 0002
Revises: 0001

Written by hand to mirror ``api.models`` (PlacementRequest, RequestEvent, Hold).
Tables are created in dependency order: requests, holds (→ requests), events (→ both).
"""

from collections.abc import Sequence
from typing import Any

import geoalchemy2
import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CARE_MODES = "('urgence', 'durable', 'sequentiel', 'mere_enfant', 'mna', 'jeune_majeur')"
REQUEST_STATUSES = "('waiting', 'held', 'placed', 'exited', 'cancelled')"


def _text(name: str, nullable: bool = False, **kwargs: Any) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=nullable, **kwargs)


def _timestamp(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _point(name: str) -> sa.Column:
    return sa.Column(
        name,
        geoalchemy2.types.Geography(
            geometry_type="POINT",
            srid=4326,
            dimension=2,
            spatial_index=False,
            from_text="ST_GeogFromText",
            name="geography",
            nullable=False,
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "placement_requests",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        _text("department"),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("children", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _text("origin_commune", nullable=True),
        _point("origin_location"),
        _text("care_mode"),
        _text("urgency"),
        _text("measure_kind"),
        sa.Column("decided_on", sa.Date(), nullable=False),
        _text("status", server_default="waiting"),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        _text("created_by"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "jsonb_typeof(children) = 'array' AND jsonb_array_length(children) BETWEEN 1 AND 12",
            name="placement_requests_children",
        ),
        sa.CheckConstraint(f"care_mode IN {CARE_MODES}", name="placement_requests_care_mode"),
        sa.CheckConstraint(
            "urgency IN ('immediate', 'days', 'planned')", name="placement_requests_urgency"
        ),
        sa.CheckConstraint(
            "measure_kind IN ('judicial', 'administrative')", name="placement_requests_measure"
        ),
        sa.CheckConstraint(f"status IN {REQUEST_STATUSES}", name="placement_requests_status"),
        sa.ForeignKeyConstraint(["department"], ["departments.code"]),
        sa.ForeignKeyConstraint(["origin_commune"], ["communes.insee"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "placement_requests_department_status_idx",
        "placement_requests",
        ["department", "status", "decided_on"],
    )

    op.create_table(
        "holds",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        _text("target_kind"),
        sa.Column("unit_id", sa.UUID(), nullable=True),
        sa.Column("carer_id", sa.UUID(), nullable=True),
        sa.Column("places", sa.SmallInteger(), nullable=False),
        _text("status", server_default="held"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _text("reason", nullable=True),
        _text("created_by"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('held', 'admitted', 'released', 'refused', 'expired', 'exited')",
            name="holds_status",
        ),
        sa.CheckConstraint(
            "(target_kind = 'unit' AND unit_id IS NOT NULL AND carer_id IS NULL)"
            " OR (target_kind = 'carer' AND carer_id IS NOT NULL AND unit_id IS NULL)",
            name="holds_target",
        ),
        sa.CheckConstraint("places BETWEEN 1 AND 12", name="holds_places"),
        sa.ForeignKeyConstraint(["request_id"], ["placement_requests.id"]),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"]),
        sa.ForeignKeyConstraint(["carer_id"], ["foster_carers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    # At most one live hold (held or admitted) per request, whatever the code does.
    op.create_index(
        "holds_one_active_per_request",
        "holds",
        ["request_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('held', 'admitted')"),
    )
    # The expiry pass reads only live holds, by deadline.
    op.create_index(
        "holds_due_idx", "holds", ["expires_at"], postgresql_where=sa.text("status = 'held'")
    )
    op.create_index(
        "holds_unit_idx",
        "holds",
        ["unit_id", "status"],
        postgresql_where=sa.text("unit_id IS NOT NULL"),
    )
    op.create_index(
        "holds_carer_idx",
        "holds",
        ["carer_id", "status"],
        postgresql_where=sa.text("carer_id IS NOT NULL"),
    )

    op.create_table(
        "request_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        _timestamp("occurred_at"),
        _text("event"),
        _text("from_status", nullable=True),
        _text("to_status"),
        sa.Column("hold_id", sa.UUID(), nullable=True),
        _text("actor"),
        _text("role"),
        _text("reason", nullable=True),
        sa.CheckConstraint(
            "event IN ('created', 'held', 'admitted', 'released', 'refused', 'expired',"
            " 'exited', 'cancelled')",
            name="request_events_event",
        ),
        sa.CheckConstraint(f"to_status IN {REQUEST_STATUSES}", name="request_events_to_status"),
        sa.ForeignKeyConstraint(["request_id"], ["placement_requests.id"]),
        sa.ForeignKeyConstraint(["hold_id"], ["holds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("request_events_request_idx", "request_events", ["request_id", "id"])


def downgrade() -> None:
    op.drop_index("request_events_request_idx", table_name="request_events")
    op.drop_table("request_events")
    op.drop_index("holds_carer_idx", table_name="holds")
    op.drop_index("holds_unit_idx", table_name="holds")
    op.drop_index("holds_due_idx", table_name="holds")
    op.drop_index("holds_one_active_per_request", table_name="holds")
    op.drop_table("holds")
    op.drop_index("placement_requests_department_status_idx", table_name="placement_requests")
    op.drop_table("placement_requests")
