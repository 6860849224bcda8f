"""figures national steering can trust (#18): coded outcomes, the waiting situation of a
child, the child's pseudonymous key

Revision ID: 0019
Revises: 0018

- ``reason_code`` on ``request_events`` and ``holds``: the coded reason of a refusal, a
  release, a cancellation and an exit (``api.codes.OUTCOME_REASONS``), required by a CHECK on
  those transitions and absent on the others. Rows written before: the holds Places released
  itself on an agrément decision keep their code (their text was the code,
  ``agrement_suspendu`` / ``agrement_retire``) and lose the text; every other refusal,
  release, cancellation and exit becomes ``autre`` and keeps its free text (the authority's
  own, never exported).
- ``request_situations``: where a child waiting for its placement lives, with the day it
  started, one row per change (the current one is the latest); every request gets
  ``inconnu`` since its creation.
- ``placement_requests.child_key``: HMAC of authority and file reference
  (``api.requests.children``), computed here for the existing rows with the service's secret
  and by the API for every new one. Nullable: a row written straight to the table (tests,
  benchmarks) has none and counts as its own child (``api.stats`` ``CHILD``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out (a migration does not follow later edits of api.codes).
REFUSAL = (
    "profil_inadapte",
    "pas_de_place_reelle",
    "fratrie_non_accueillable",
    "age_hors_agrement",
    "distance",
    "securite_du_groupe",
    "autre",
)
RELEASE = (
    "autre_solution_retenue",
    "refus_famille_ou_enfant",
    "delai_admission",
    "erreur_reservation",
    "agrement_suspendu",
    "agrement_retire",
    "autre",
)
CANCELLATION = (
    "mainlevee_mesure",
    "retour_famille",
    "placement_hors_places",
    "majorite",
    "fugue",
    "doublon",
    "autre",
)
EXIT = ("retour_famille", "majorite", "reorientation", "fin_mesure", "fugue", "autre")
SITUATIONS = (
    "domicile",
    "accueil_urgence",
    "hopital",
    "hotel_derogation",
    "autre_placement",
    "inconnu",
)


def _in(values: tuple[str, ...]) -> str:
    return "reason_code IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _reason_check(column: str, by_value: dict[str, tuple[str, ...]]) -> str:
    """``reason_code`` required and coded on the transitions that take one, absent elsewhere."""
    cases = " ".join(f"WHEN '{k}' THEN {_in(v)}" for k, v in by_value.items())
    return f"CASE {column} {cases} ELSE reason_code IS NULL END"


EVENT_REASONS = {
    "refused": REFUSAL,
    "released": RELEASE,
    "cancelled": CANCELLATION,
    "exited": EXIT,
}
HOLD_REASONS = {"refused": REFUSAL, "released": RELEASE, "exited": EXIT}


def upgrade() -> None:
    for table in ("request_events", "holds"):
        op.add_column(table, sa.Column("reason_code", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE request_events
           SET reason_code = CASE WHEN event = 'released'
                                   AND reason IN ('agrement_suspendu', 'agrement_retire')
                                  THEN reason ELSE 'autre' END,
               reason = CASE WHEN event = 'released'
                              AND reason IN ('agrement_suspendu', 'agrement_retire')
                             THEN NULL ELSE reason END
         WHERE event IN ('refused', 'released', 'cancelled', 'exited')
        """
    )
    op.execute(
        """
        UPDATE holds
           SET reason_code = CASE WHEN status = 'released'
                                   AND reason IN ('agrement_suspendu', 'agrement_retire')
                                  THEN reason ELSE 'autre' END,
               reason = CASE WHEN status = 'released'
                              AND reason IN ('agrement_suspendu', 'agrement_retire')
                             THEN NULL ELSE reason END
         WHERE status IN ('refused', 'released', 'exited')
        """
    )
    op.create_check_constraint(
        "request_events_reason_code", "request_events", _reason_check("event", EVENT_REASONS)
    )
    op.create_check_constraint("holds_reason_code", "holds", _reason_check("status", HOLD_REASONS))

    op.create_table(
        "request_situations",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "request_id",
            sa.dialects.postgresql.UUID(as_uuid=True),
            sa.ForeignKey("placement_requests.id"),
            nullable=False,
        ),
        sa.Column("situation", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.CheckConstraint(
            "situation IN (" + ", ".join(f"'{v}'" for v in SITUATIONS) + ")",
            name="request_situations_situation",
        ),
    )
    op.create_index("request_situations_request_idx", "request_situations", ["request_id", "id"])
    op.execute(
        """
        INSERT INTO request_situations (request_id, situation, since, recorded_at, recorded_by)
        SELECT id, 'inconnu', (created_at AT TIME ZONE 'Europe/Paris')::date, created_at,
               'migration:0019'
          FROM placement_requests
        """
    )

    op.add_column("placement_requests", sa.Column("child_key", sa.Text(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, authority, reference FROM placement_requests")).all()
    if rows:
        from api.requests.children import child_key, secret_of
        from api.settings import get_settings

        secret = secret_of(get_settings())
        bind.execute(
            sa.text("UPDATE placement_requests SET child_key = :key WHERE id = :id"),
            [{"id": r.id, "key": child_key(secret, r.authority, r.reference)} for r in rows],
        )
    op.create_index(
        "placement_requests_child_idx", "placement_requests", ["authority", "child_key"]
    )


def downgrade() -> None:
    op.drop_index("placement_requests_child_idx", table_name="placement_requests")
    op.drop_column("placement_requests", "child_key")
    op.drop_table("request_situations")
    op.drop_constraint("holds_reason_code", "holds")
    op.drop_constraint("request_events_reason_code", "request_events")
    for table in ("request_events", "holds"):
        op.drop_column(table, "reason_code")
