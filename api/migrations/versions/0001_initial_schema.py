"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 08:29:21.606475
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("object_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("object_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "audit_entries_object_idx", "audit_entries", ["object_type", "object_id"], unique=False
    )
    op.create_index(
        "audit_entries_occurred_at_brin",
        "audit_entries",
        ["occurred_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "departments",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("region_code", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("region_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "location",
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
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("principal", "key"),
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("national_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "outbox_events_unpublished_idx",
        "outbox_events",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "communes",
        sa.Column("insee", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column(
            "location",
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
        ),
        sa.Column("precision", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.CheckConstraint(
            "precision IN ('geonames', 'arrondissement_centroid', 'department_centroid')",
            name="communes_precision_check",
        ),
        sa.ForeignKeyConstraint(
            ["department"],
            ["departments.code"],
        ),
        sa.PrimaryKeyConstraint("insee"),
    )
    op.create_index("communes_department_idx", "communes", ["department"], unique=False)
    op.create_index(
        "communes_location_gist", "communes", ["location"], unique=False, postgresql_using="gist"
    )
    op.create_table(
        "foster_carers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("agrement_number", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("agrement_department", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("employer", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("commune", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "location",
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
        ),
        sa.Column("agrement_capacity", sa.SmallInteger(), nullable=False),
        sa.Column("age_min", sa.SmallInteger(), nullable=False),
        sa.Column("age_max", sa.SmallInteger(), nullable=False),
        sa.Column("care_modes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "disability_profiles",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "status", sqlmodel.sql.sqltypes.AutoString(), server_default="active", nullable=False
        ),
        sa.Column("status_until", sa.Date(), nullable=True),
        sa.Column("available_places", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "declared_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("declared_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.CheckConstraint(
            "care_modes <@ ARRAY['urgence', 'durable', 'sequentiel', 'mere_enfant', 'mna', 'jeune_majeur']::text[]",
            name="foster_carers_care_modes",
        ),
        sa.CheckConstraint(
            "disability_profiles <@ ARRAY['tsa', 'deficience_intellectuelle', 'troubles_psychiques_comportement', 'deficience_motrice', 'deficience_sensorielle', 'polyhandicap', 'soins_techniques']::text[]",
            name="foster_carers_profiles",
        ),
        sa.CheckConstraint(
            "status IN ('active', 'leave', 'suspended')", name="foster_carers_status"
        ),
        sa.CheckConstraint(
            "age_min >= 0 AND age_min <= age_max AND age_max <= 21", name="foster_carers_ages"
        ),
        sa.CheckConstraint("agrement_capacity BETWEEN 1 AND 6", name="foster_carers_capacity"),
        sa.CheckConstraint(
            "available_places >= 0 AND available_places <= agrement_capacity",
            name="foster_carers_available",
        ),
        sa.ForeignKeyConstraint(
            ["agrement_department"],
            ["departments.code"],
        ),
        sa.ForeignKeyConstraint(
            ["commune"],
            ["communes.insee"],
        ),
        sa.ForeignKeyConstraint(
            ["department"],
            ["departments.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agrement_number"),
    )
    op.create_index("foster_carers_department_idx", "foster_carers", ["department"], unique=False)
    op.create_index(
        "foster_carers_location_gist",
        "foster_carers",
        ["location"],
        unique=False,
        postgresql_using="gist",
    )
    op.create_table(
        "structures",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("finess", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
        sa.Column("finess_ej", sqlmodel.sql.sqltypes.AutoString(length=9), nullable=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("department", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("commune", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "location",
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
        ),
        sa.Column("tarif_authority", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('166', '172', '175', '176', '177', '236', '238', '241', '378', '462')",
            name="structures_category_check",
        ),
        sa.CheckConstraint(
            "finess ~ '^([0-9]{2}|2A|2B|9[A-F])[0-9]{7}$'", name="structures_finess_format"
        ),
        sa.ForeignKeyConstraint(
            ["commune"],
            ["communes.insee"],
        ),
        sa.ForeignKeyConstraint(
            ["department"],
            ["departments.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("finess"),
    )
    op.create_index(
        "structures_department_category_idx", "structures", ["department", "category"], unique=False
    )
    op.create_index(
        "structures_location_gist",
        "structures",
        ["location"],
        unique=False,
        postgresql_using="gist",
    )
    op.create_table(
        "carer_declarations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("carer_id", sa.UUID(), nullable=False),
        sa.Column("available_places", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status_until", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "declared_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("declared_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["carer_id"],
            ["foster_carers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "carer_declarations_carer_idx",
        "carer_declarations",
        ["carer_id", "declared_at"],
        unique=False,
    )
    op.create_index(
        "carer_declarations_declared_at_brin",
        "carer_declarations",
        ["declared_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "units",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("structure_id", sa.UUID(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("age_min", sa.SmallInteger(), nullable=False),
        sa.Column("age_max", sa.SmallInteger(), nullable=False),
        sa.Column("sexes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("care_modes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "disability_profiles",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("installed", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint(
            "care_modes <@ ARRAY['urgence', 'durable', 'sequentiel', 'mere_enfant', 'mna', 'jeune_majeur']::text[]",
            name="units_care_modes",
        ),
        sa.CheckConstraint(
            "disability_profiles <@ ARRAY['tsa', 'deficience_intellectuelle', 'troubles_psychiques_comportement', 'deficience_motrice', 'deficience_sensorielle', 'polyhandicap', 'soins_techniques']::text[]",
            name="units_profiles",
        ),
        sa.CheckConstraint(
            "sexes <@ ARRAY['F','M']::text[] AND cardinality(sexes) > 0", name="units_sexes"
        ),
        sa.CheckConstraint(
            "age_min >= 0 AND age_min <= age_max AND age_max <= 21", name="units_ages"
        ),
        sa.CheckConstraint("installed >= 0", name="units_installed"),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("units_structure_idx", "units", ["structure_id"], unique=False)
    op.create_table(
        "capacity_declarations",
        sa.Column("temporality", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("installed", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("additional", sa.Integer(), nullable=False),
        sa.Column("available_gender", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("declared_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("declared_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("unit_id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "available_gender IN ('any','F','M')", name="capacity_declarations_gender"
        ),
        sa.CheckConstraint(
            "temporality IN ('current', 'h1', 'h24', 'h48', 'd7')",
            name="capacity_declarations_temporality",
        ),
        sa.CheckConstraint(
            "installed >= 0 AND occupied >= 0 AND reserved >= 0 AND closed >= 0 AND available >= 0 AND additional >= 0",
            name="capacity_declarations_counts",
        ),
        sa.CheckConstraint(
            "occupied + reserved + available + closed <= installed + additional",
            name="capacity_declarations_used",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "capacity_declarations_declared_at_brin",
        "capacity_declarations",
        ["declared_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_index(
        "capacity_declarations_unit_idx",
        "capacity_declarations",
        ["unit_id", "temporality", "declared_at"],
        unique=False,
    )
    op.create_table(
        "capacity_snapshots",
        sa.Column("installed", sa.Integer(), nullable=False),
        sa.Column("occupied", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("additional", sa.Integer(), nullable=False),
        sa.Column("available_gender", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("declared_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("declared_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("unit_id", sa.UUID(), nullable=False),
        sa.Column("temporality", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.CheckConstraint("available_gender IN ('any','F','M')", name="capacity_snapshots_gender"),
        sa.CheckConstraint(
            "temporality IN ('current', 'h1', 'h24', 'h48', 'd7')",
            name="capacity_snapshots_temporality",
        ),
        sa.CheckConstraint(
            "installed >= 0 AND occupied >= 0 AND reserved >= 0 AND closed >= 0 AND available >= 0 AND additional >= 0",
            name="capacity_snapshots_counts",
        ),
        sa.CheckConstraint(
            "occupied + reserved + available + closed <= installed + additional",
            name="capacity_snapshots_used",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("unit_id", "temporality"),
    )
    op.create_index(
        "capacity_snapshots_available_idx",
        "capacity_snapshots",
        ["temporality", "unit_id"],
        unique=False,
        postgresql_where=sa.text("available > 0"),
    )


def downgrade() -> None:
    op.drop_index(
        "capacity_snapshots_available_idx",
        table_name="capacity_snapshots",
        postgresql_where=sa.text("available > 0"),
    )
    op.drop_table("capacity_snapshots")
    op.drop_index("capacity_declarations_unit_idx", table_name="capacity_declarations")
    op.drop_index(
        "capacity_declarations_declared_at_brin",
        table_name="capacity_declarations",
        postgresql_using="brin",
    )
    op.drop_table("capacity_declarations")
    op.drop_index("units_structure_idx", table_name="units")
    op.drop_table("units")
    op.drop_index(
        "carer_declarations_declared_at_brin",
        table_name="carer_declarations",
        postgresql_using="brin",
    )
    op.drop_index("carer_declarations_carer_idx", table_name="carer_declarations")
    op.drop_table("carer_declarations")
    op.drop_index("structures_location_gist", table_name="structures", postgresql_using="gist")
    op.drop_index("structures_department_category_idx", table_name="structures")
    op.drop_table("structures")
    op.drop_index(
        "foster_carers_location_gist", table_name="foster_carers", postgresql_using="gist"
    )
    op.drop_index("foster_carers_department_idx", table_name="foster_carers")
    op.drop_table("foster_carers")
    op.drop_index("communes_location_gist", table_name="communes", postgresql_using="gist")
    op.drop_index("communes_department_idx", table_name="communes")
    op.drop_table("communes")
    op.drop_index(
        "outbox_events_unpublished_idx",
        table_name="outbox_events",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox_events")
    op.drop_table("idempotency_keys")
    op.drop_table("departments")
    op.drop_index(
        "audit_entries_occurred_at_brin", table_name="audit_entries", postgresql_using="brin"
    )
    op.drop_index("audit_entries_object_idx", table_name="audit_entries")
    op.drop_table("audit_entries")
