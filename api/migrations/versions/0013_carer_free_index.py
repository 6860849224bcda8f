"""the partial index of free carers no longer assumes ``status = 'active'``; carers by
employing authority (#15)

Revision ID: 0013
Revises: 0012

Search proposes a carer whose agrément is valid today and who is not on leave today: a
carer with status ``leave`` whose leave starts later (``leave_from``) or has ended
(``status_until``) is proposed too. The predicate of ``foster_carers_free_public_location_gist``
(``status = 'active' AND available_places > 0``) would no longer be implied by search's, and
the KNN walk would turn into a scan; its predicate becomes ``available_places > 0`` (the
trigger of 0012 keeps free places off agréments that are not valid, the query checks the
rest row by row — dates cannot be in an index predicate).

An authority's carers list (registry) is the carers whose agrément it issued and those it
employs (``employer_authority``, indexed here) — the same for most, not for a carer living
across the border of the authority that employs them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX foster_carers_employer_authority_idx ON foster_carers (employer_authority)"
        " WHERE employer_authority IS NOT NULL"
    )
    op.execute("DROP INDEX foster_carers_free_public_location_gist")
    op.execute(
        "CREATE INDEX foster_carers_free_public_location_gist ON foster_carers"
        " USING gist (public_location) WHERE available_places > 0"
    )


def downgrade() -> None:
    op.execute("DROP INDEX foster_carers_employer_authority_idx")
    op.execute("DROP INDEX foster_carers_free_public_location_gist")
    op.execute(
        "CREATE INDEX foster_carers_free_public_location_gist ON foster_carers"
        " USING gist (public_location) WHERE status = 'active' AND available_places > 0"
    )
