"""audit integrity: the service's own database role, and sealed segments of the audit

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-28

The service stops connecting as the owner of the schema. This revision creates (once per
cluster) the login role ``places_app`` and grants it what the service does — read and write
every table — except on the audit: ``audit_entries`` and ``audit_seals`` take INSERT and
SELECT only, so no UPDATE, DELETE or TRUNCATE of the trail through the service's connection,
whatever the code above it does. ``alembic_version`` and PostGIS' ``spatial_ref_sys`` are
read-only to it. Tables and sequences created later by the owner (the role that runs the
migrations) get the same grants by default privileges; a later audit-like table must revoke
its own UPDATE/DELETE. The role is created without a password: how production authenticates
it (SCRAM password or client certificate in pg_hba.conf) is in docs/architecture.md.

``audit_seals``: one row per sealed segment of the audit, a contiguous range of entry ids
with its count, the digest of its rows and a hash chained with the previous seal's
(``api.audit.service``). Purged segments keep their seal (``purged_at``), so the chain from
the first seal stays checkable and the last purged one is the checkpoint verify starts from.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "places_app"
"""The service's role (cluster-wide); ``api.db.APP_ROLE`` names the same."""

APPEND_ONLY = ("audit_entries", "audit_seals")
READ_ONLY = ("alembic_version", "spatial_ref_sys")


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column("segment", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("rows_digest", sa.String(length=64), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column(
            "sealed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("last_id >= first_id AND entries >= 0", name="audit_seals_range"),
        sa.PrimaryKeyConstraint("segment"),
    )
    op.create_index("audit_seals_last_id_idx", "audit_seals", ["last_id"], unique=True)

    # Cluster-wide and idempotent: several databases of one cluster (tests run many at once)
    # share the role; a concurrent creation is not an error.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{APP_ROLE}') THEN
                BEGIN
                    CREATE ROLE {APP_ROLE} LOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;
                END;
            END IF;
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP_ROLE}',
                           current_database());
        END
        $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(APPEND_ONLY)} FROM {APP_ROLE}")
    for table in READ_ONLY:
        op.execute(
            f"""
            DO $$ BEGIN
                IF to_regclass('public.{table}') IS NOT NULL THEN
                    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE};
                END IF;
            END $$
            """
        )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )


def downgrade() -> None:
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public"
        f" REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public"
        f" REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}"
    )
    op.drop_index("audit_seals_last_id_idx", table_name="audit_seals")
    op.drop_table("audit_seals")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute(
        f"""
        DO $$ BEGIN
            EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM {APP_ROLE}',
                           current_database());
        END $$
        """
    )
    # The role itself stays: it is the cluster's, other databases may use it.
