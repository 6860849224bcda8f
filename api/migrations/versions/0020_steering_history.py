"""figures of steering over a history (#18, second part): the windows' indexes

Revision ID: 0020
Revises: 0019

The indicators count the admissions and refusals of a window (``api.stats.children``,
``api.stats.flows``, the open-data months): partial indexes on ``request_events`` by
``occurred_at`` for those two events, so that a window reads its own events and not the
whole history (which grows by a few hundred thousand rows a year nationally). The window's
bound is written sargably (``occurred_at >= <start of the Paris day>``) for them to serve.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for event in ("admitted", "refused"):
        op.execute(
            f"CREATE INDEX request_events_{event}_idx ON request_events (occurred_at)"
            f" INCLUDE (request_id, hold_id) WHERE event = '{event}'"
        )


def downgrade() -> None:
    for event in ("admitted", "refused"):
        op.execute(f"DROP INDEX request_events_{event}_idx")
