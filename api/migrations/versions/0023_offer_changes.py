"""the free offer's changes, for the search's in-memory index (#16)

Revision ID: 0023
Revises: 0022

Each process keeps the free offer in memory (``api.search.offer_index``) and, at the start of
each search, reads only the rows changed since its last read. A row says which transaction
last wrote it — ``changed_xid``, set by a trigger whoever writes (the service, the 0021
triggers that copy a unit's or structure's columns, the seed, an operator's SQL) — and a read
returns the snapshot it was taken in: the rows changed since are those whose writer that
snapshot did not see (``pg_visible_in_snapshot``), found through a B-tree on ``changed_xid``
from the snapshot's ``xmin``. Unlike a sequence, which is taken before commit and so can
commit out of order, a snapshot's visibility is exactly what a reader had seen.

A deleted row has nothing left to say so: ``offer_removals`` keeps its key with the deleting
transaction's id (a statement trigger over the deleted rows), and a TRUNCATE leaves a row of
kind ``all`` (the index reloads the whole). Deletions are rare (a unit removed from the
registry, a carer erased), so the table stays small; it is never read but from a snapshot's
``xmin`` on.

Existing rows get ``changed_xid`` 0, older than any snapshot: the index's first read takes
them whole.

The search's spatial indexes of free places (0003/0004, 0010, 0013, 0016, 0021) are dropped:
their only reader was the step queries this index replaces, and each cost every declaration
its inserts (measured with ``bench_declarations``: with them kept beside the new B-tree, 230
declarations/s against 260 before 0023; without them, 254–260).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {"capacity_snapshots": "unit", "foster_carers": "carer"}
"""The two tables of the free offer, and their kind in ``offer_removals``."""

SEARCH_INDEXES = {
    "capacity_snapshots_free_location_gist": (
        "capacity_snapshots USING gist (location) WHERE available > 0"
    ),
    "capacity_snapshots_free_now_gist": (
        "capacity_snapshots USING gist (location) WHERE available > 0 AND temporality = 'current'"
    ),
    "foster_carers_free_public_location_gist": (
        "foster_carers USING gist (public_location) WHERE available_places > 0"
    ),
    "foster_carers_free_open_public_location_gist": (
        "foster_carers USING gist (public_location)"
        " WHERE available_places > 0 AND open_to_other_authorities"
    ),
    "foster_carers_free_closed_employing_idx": (
        "foster_carers (employing_authority)"
        " WHERE available_places > 0 AND NOT open_to_other_authorities"
    ),
}
"""The search's step queries' own indexes, dropped (recreated by the downgrade)."""

_REMOVED_KEYS = {
    "capacity_snapshots": "unit_id::text, temporality",
    "foster_carers": "id::text, NULL",
}


def upgrade() -> None:
    for name in SEARCH_INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute(
        """
        CREATE FUNCTION offer_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.changed_xid := pg_current_xact_id();
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE offer_removals (
            seq bigserial PRIMARY KEY,
            kind text NOT NULL
                CONSTRAINT offer_removals_kind_check CHECK (kind IN ('unit', 'carer', 'all')),
            offer_id text,
            temporality text,
            changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
        )
        """
    )
    op.execute("CREATE INDEX offer_removals_changed_idx ON offer_removals (changed_xid)")
    for table, kind in TABLES.items():
        op.execute(f"ALTER TABLE {table} ADD COLUMN changed_xid xid8 NOT NULL DEFAULT '0'")
        op.execute(f"CREATE INDEX {table}_changed_idx ON {table} (changed_xid)")
        op.execute(
            f"""
            CREATE TRIGGER {table}_changed
                BEFORE INSERT OR UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION offer_changed()
            """
        )
        op.execute(
            f"""
            CREATE FUNCTION {table}_removed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'TRUNCATE' THEN
                    INSERT INTO offer_removals (kind) VALUES ('all');
                ELSE
                    INSERT INTO offer_removals (kind, offer_id, temporality)
                    SELECT '{kind}', {_REMOVED_KEYS[table]} FROM gone;
                END IF;
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {table}_removed
                AFTER DELETE ON {table} REFERENCING OLD TABLE AS gone
                FOR EACH STATEMENT EXECUTE FUNCTION {table}_removed()
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {table}_truncated
                AFTER TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION {table}_removed()
            """
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_truncated ON {table}")
        op.execute(f"DROP TRIGGER {table}_removed ON {table}")
        op.execute(f"DROP FUNCTION {table}_removed()")
        op.execute(f"DROP TRIGGER {table}_changed ON {table}")
        op.execute(f"DROP INDEX {table}_changed_idx")
        op.execute(f"ALTER TABLE {table} DROP COLUMN changed_xid")
    op.execute("DROP TABLE offer_removals")
    op.execute("DROP FUNCTION offer_changed()")
    for name, definition in SEARCH_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {definition}")
