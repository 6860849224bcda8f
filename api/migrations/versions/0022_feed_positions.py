"""feed positions consistent with a snapshot (#19)

Revision ID: 0022
Revises: 0021

``feed_positions``: each feed's newest entry id, written by the outbox relay in the same
transaction as ``published_at`` (``realtime.relay``). A read that sees a row holds every event
of that feed up to that entry, whichever server it was read on (a standby replays commits in
order), so the snapshot endpoints return it and a client resumes its feed from there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE feed_positions (
            feed VARCHAR NOT NULL PRIMARY KEY,
            entry_id VARCHAR NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE feed_positions")
