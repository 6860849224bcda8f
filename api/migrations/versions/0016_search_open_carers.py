"""free carers split by whom they may be proposed to: the carers open to every authority,
and each employing authority's own (#16, search cost)

Revision ID: 0016
Revises: 0015

Since #15 a search proposes a carer to the searching authority when the carer's employer
opened them to other authorities, or when that authority is their employer
(``carer_open_to_sql``). Most carers are not open (the seed: one free carer in five), so the
KNN walk of ``foster_carers_free_public_location_gist`` (every free carer) threw away four
rows in five, and a national step of a rare need walked every free carer of the country —
cost growing with the whole offer rather than with what the searcher may be shown.
Search now reads the open carers nearest first from their own partial GiST index, and the
searching authority's own closed carers (a department's share: a few hundred) from a partial
B-tree by employing authority, and merges the two (``api.search.repository.CARERS_SQL``).
The index of 0013 stays: the optimiser and statistics read every free carer.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX foster_carers_free_open_public_location_gist ON foster_carers"
        " USING gist (public_location)"
        " WHERE available_places > 0 AND open_to_other_authorities"
    )
    op.execute(
        "CREATE INDEX foster_carers_free_closed_employing_idx ON foster_carers"
        " (employing_authority) WHERE available_places > 0 AND NOT open_to_other_authorities"
    )


def downgrade() -> None:
    op.execute("DROP INDEX foster_carers_free_closed_employing_idx")
    op.execute("DROP INDEX foster_carers_free_open_public_location_gist")
