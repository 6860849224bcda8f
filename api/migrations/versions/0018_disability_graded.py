"""disability, graded: per profile, specialised or with support (#16, deliverable 5)

Revision ID: 0018
Revises: 0017

A unit and an agrément (the carer's is the agrément's: the issuer's word) stated a set of
disability profiles they "accepted", all or nothing. They now state per profile a level, in
two disjoint arrays that replace ``disability_profiles``:

- ``disability_specialised`` — the unit's project and staff are built for the profile;
- ``disability_supported`` — it takes a child with the profile with the support of an
  outside service (SESSAD, CMP…).

A profile in neither is *unstated*: such an offer takes a child with that profile only as a
stated relaxation (``matching.disability``). Existing rows: every profile stated becomes
``with_support`` — what "accepts" said, no more — except in a centre d'accueil familial
spécialisé (FINESS category 238): its very category is the specialised accueil of children
with a disability (accueil familial spécialisé, décret 89-798 annexe XXXII bis), so its
units' profiles become ``specialised``. A carer's become ``with_support``: nothing in an
agrément as recorded so far says the carer was trained for the profile.

No index, function, trigger or statistic read ``disability_profiles`` (search filtered it
in its own queries); the API keeps returning it, deprecated, as the union of both levels.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The codes as of this revision (a migration never follows the vocabulary's later changes).
_PROFILES = (
    "ARRAY['tsa', 'deficience_intellectuelle', 'troubles_psychiques_comportement',"
    " 'deficience_motrice', 'deficience_sensorielle', 'polyhandicap', 'soins_techniques']::text[]"
)
_SPECIALISED_CATEGORIES = ("238",)


def _columns(table: str) -> str:
    return f"""
ALTER TABLE {table}
    ADD COLUMN disability_specialised text[] NOT NULL DEFAULT '{{}}',
    ADD COLUMN disability_supported text[] NOT NULL DEFAULT '{{}}'
"""


def _constraints(table: str) -> str:
    return f"""
ALTER TABLE {table}
    DROP COLUMN disability_profiles,
    ADD CONSTRAINT {table}_disability_specialised CHECK (disability_specialised <@ {_PROFILES}),
    ADD CONSTRAINT {table}_disability_supported CHECK (disability_supported <@ {_PROFILES}),
    ADD CONSTRAINT {table}_disability_disjoint
        CHECK (NOT (disability_specialised && disability_supported))
"""


def upgrade() -> None:
    for table in ("units", "foster_carers"):
        op.execute(_columns(table))
    categories = ", ".join(f"'{c}'" for c in _SPECIALISED_CATEGORIES)
    op.execute(
        f"""
        UPDATE units u
           SET disability_specialised = CASE WHEN s.category IN ({categories})
                                             THEN u.disability_profiles ELSE '{{}}' END,
               disability_supported = CASE WHEN s.category IN ({categories})
                                           THEN '{{}}' ELSE u.disability_profiles END
          FROM structures s
         WHERE s.id = u.structure_id AND cardinality(u.disability_profiles) > 0
        """
    )
    op.execute(
        "UPDATE foster_carers SET disability_supported = disability_profiles"
        " WHERE cardinality(disability_profiles) > 0"
    )
    for table in ("units", "foster_carers"):
        op.execute(_constraints(table))


def downgrade() -> None:
    short = {"units": "units_profiles", "foster_carers": "foster_carers_profiles"}
    for table in ("units", "foster_carers"):
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN disability_profiles text[] NOT NULL DEFAULT '{{}}'"
        )
        op.execute(
            f"UPDATE {table} SET disability_profiles = disability_specialised"
            " || disability_supported"
        )
        op.execute(
            f"""
            ALTER TABLE {table}
                DROP COLUMN disability_specialised,
                DROP COLUMN disability_supported,
                ADD CONSTRAINT {short[table]} CHECK (disability_profiles <@ {_PROFILES})
            """
        )
