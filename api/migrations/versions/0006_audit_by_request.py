"""audit lookups by request: index the request ids an entry's detail names

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "Who read this child's request?" (GET /v1/audit?request_id=…) matches an entry by its
    # object, by detail.request_id (hold actions) or by detail.request_ids (list reads). The
    # audit table grows with every child-level read: each branch of that OR needs an index
    # so the lookup is a BitmapOr, never a scan of the whole trail.
    op.execute(
        """
        CREATE INDEX audit_entries_request_id_idx
            ON audit_entries ((detail->>'request_id'))
         WHERE detail ? 'request_id'
        """
    )
    op.execute(
        """
        CREATE INDEX audit_entries_request_ids_gin
            ON audit_entries USING gin ((detail->'request_ids'))
         WHERE detail ? 'request_ids'
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX audit_entries_request_ids_gin")
    op.execute("DROP INDEX audit_entries_request_id_idx")
