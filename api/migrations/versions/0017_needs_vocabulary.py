"""needs vocabulary split into timing, public and formula; ages in months (#16, deliverable 6)

Revision ID: 0017
Revises: 0016

The single care mode of old mixed three things (timing, public, formula), so "a young adult
in emergency" could not be asked; ages in whole years let a pouponnière take a child of
3 years 11 months. This migration moves every table to the new vocabulary, one truth each:

- ``units`` and ``foster_carers`` (the agrément and the carer's preferences): ``timings``,
  ``publics``, ``formulas`` from ``care_modes`` by the one legacy mapping
  (``matching.vocabulary.legacy_offer_sets``, repeated below in SQL and tested against it);
  ages ``age_min_months`` / ``age_max_months`` from years: ``y_min*12 .. y_max*12 + 11``
  (a "0–3 ans" unit of old took a child until the eve of their 4th birthday).
- units of a pouponnière (FINESS 172) or a centre parental (166) are clipped to 35 months:
  both take children under 3 only (décret n° 74-58 of 15 January 1974; CASF L222-5 4° and
  L222-5-3). A unit of theirs whose band would start after 35 months is set to 0–35.
- ``placement_requests``: ``timing``, ``public``, ``formula`` from ``care_mode``
  (``LEGACY_CARE_MODE``), ``parent_expecting`` false; each child of ``children`` (JSONB)
  gets ``age_months = age * 12`` (the youngest of that year: nothing finer is known) and
  loses ``age``; a request of a parent expecting may have no child yet.
- the old columns are dropped, and the trigger that defaulted the carer's preferences
  (``places_carer_agrement``, 0012) reads the new ones.

Downgrade is refused: months and the three axes cannot be folded back into years and one
care mode without losing what was recorded since (a 34-month-old, a young adult in
emergency); restore the backup taken before upgrading instead.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMINGS = "ARRAY['urgence', 'durable', 'sequentiel']::text[]"
PUBLICS = "ARRAY['mineur', 'mna', 'jeune_majeur']::text[]"
FORMULAS = "ARRAY['enfant', 'parent_enfant']::text[]"
MAX_MONTHS = 21 * 12 + 11
UNDER_3_MAX_MONTHS = 35

# The legacy mapping of an offer's set of care modes (matching.vocabulary.legacy_offer_sets),
# as SQL expressions over a column of codes; ``{m}`` is the column.
_TIMINGS_OF = """ARRAY(SELECT t FROM unnest(ARRAY['urgence', 'durable', 'sequentiel']) t
      WHERE t = ANY({m})
         OR (t = 'durable' AND {m} && ARRAY['mna', 'jeune_majeur', 'mere_enfant']))"""
_PUBLICS_OF = """ARRAY(SELECT p FROM unnest(ARRAY['mineur', 'mna', 'jeune_majeur']) p
      WHERE (p = 'mineur' AND {m} && ARRAY['urgence', 'durable', 'sequentiel', 'mere_enfant'])
         OR p = ANY({m}))"""
_FORMULAS_OF = """ARRAY(SELECT f FROM unnest(ARRAY['enfant', 'parent_enfant']) f
      WHERE (f = 'parent_enfant' AND 'mere_enfant' = ANY({m}))
         OR (f = 'enfant'
             AND {m} && ARRAY['urgence', 'durable', 'sequentiel', 'mna', 'jeune_majeur']))"""


def _offer_sets(prefix: str, legacy: str) -> str:
    return (
        f"{prefix}timings = {_TIMINGS_OF.format(m=legacy)},"
        f" {prefix}publics = {_PUBLICS_OF.format(m=legacy)},"
        f" {prefix}formulas = {_FORMULAS_OF.format(m=legacy)}"
    )


def _checks(table: str, prefix: str = "") -> str:
    """CHECKs of one set of needs columns: known codes, none empty, months in 0…263."""
    p = prefix
    name = f"{table}_{p}needs" if p else f"{table}_needs"
    ages = f"{table}_{p}ages_months" if p else f"{table}_ages_months"
    return (
        f"ADD CONSTRAINT {name} CHECK ("
        f"{p}timings <@ {TIMINGS} AND cardinality({p}timings) > 0"
        f" AND {p}publics <@ {PUBLICS} AND cardinality({p}publics) > 0"
        f" AND {p}formulas <@ {FORMULAS} AND cardinality({p}formulas) > 0),"
        f" ADD CONSTRAINT {ages} CHECK ("
        f"{p}age_min_months >= 0 AND {p}age_min_months <= {p}age_max_months"
        f" AND {p}age_max_months <= {MAX_MONTHS})"
    )


def _add(prefix: str = "") -> str:
    return ", ".join(
        f"ADD COLUMN {prefix}{c}"
        for c in (
            "age_min_months smallint",
            "age_max_months smallint",
            "timings text[]",
            "publics text[]",
            "formulas text[]",
        )
    )


def _not_null(prefix: str = "") -> str:
    return ", ".join(
        f"ALTER COLUMN {prefix}{c} SET NOT NULL"
        for c in ("age_min_months", "age_max_months", "timings", "publics", "formulas")
    )


_CARER_TRIGGER = """
CREATE OR REPLACE FUNCTION places_carer_agrement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.valid_until := coalesce(NEW.valid_until, (NEW.issued_on + interval '5 years')::date);
    IF NEW.employer_authority IS NULL AND NEW.employer_structure IS NULL THEN
        NEW.employer_authority := NEW.authority;
    END IF;
    NEW.employing_authority := coalesce(
        NEW.employer_authority,
        (SELECT s.authority FROM structures s WHERE s.id = NEW.employer_structure));
    NEW.open_to_other_authorities :=
        coalesce(NEW.open_to_other_authorities, NEW.employer_structure IS NOT NULL);
    NEW.preferred_age_min_months := coalesce(NEW.preferred_age_min_months, NEW.age_min_months);
    NEW.preferred_age_max_months := coalesce(NEW.preferred_age_max_months, NEW.age_max_months);
    NEW.preferred_timings := coalesce(NEW.preferred_timings, NEW.timings);
    NEW.preferred_publics := coalesce(NEW.preferred_publics, NEW.publics);
    NEW.preferred_formulas := coalesce(NEW.preferred_formulas, NEW.formulas);
    IF NEW.available_places > 0
       AND NOT places_agrement_valid(NEW.agrement_state, NEW.issued_on, NEW.valid_until,
                                     NEW.suspended_from, NEW.suspended_until, current_date)
       AND (TG_OP = 'INSERT' OR NEW.available_places > OLD.available_places
            OR NEW.agrement_state IS DISTINCT FROM OLD.agrement_state
            OR NEW.valid_until IS DISTINCT FROM OLD.valid_until
            OR NEW.suspended_from IS DISTINCT FROM OLD.suspended_from) THEN
        RAISE EXCEPTION 'free places on an agrément that is not valid today (carer %)', NEW.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'foster_carers_agrement_valid';
    END IF;
    RETURN NEW;
END $$
"""


def upgrade() -> None:
    # Units: new columns, mapped, pouponnières and centres parentaux clipped, old dropped.
    op.execute(f"ALTER TABLE units {_add()}")
    op.execute(
        "UPDATE units SET age_min_months = age_min * 12, age_max_months = age_max * 12 + 11, "
        + _offer_sets("", "care_modes")
    )
    op.execute(
        f"""
        UPDATE units u
           SET age_max_months = {UNDER_3_MAX_MONTHS},
               age_min_months = CASE WHEN u.age_min_months > {UNDER_3_MAX_MONTHS} THEN 0
                                     ELSE u.age_min_months END
          FROM structures s
         WHERE s.id = u.structure_id AND s.category IN ('172', '166')
           AND u.age_max_months > {UNDER_3_MAX_MONTHS}
        """
    )
    op.execute(
        f"ALTER TABLE units {_not_null()}, DROP CONSTRAINT units_ages,"
        f" DROP CONSTRAINT units_care_modes, DROP COLUMN age_min, DROP COLUMN age_max,"
        f" DROP COLUMN care_modes, {_checks('units')}"
    )

    # Carers: the agrément's terms and the carer's preferences.
    op.execute(f"ALTER TABLE foster_carers {_add()}, {_add('preferred_')}")
    op.execute(
        "UPDATE foster_carers SET age_min_months = age_min * 12,"
        " age_max_months = age_max * 12 + 11,"
        " preferred_age_min_months = preferred_age_min * 12,"
        " preferred_age_max_months = preferred_age_max * 12 + 11, "
        + _offer_sets("", "care_modes")
        + ", "
        + _offer_sets("preferred_", "preferred_care_modes")
    )
    op.execute(_CARER_TRIGGER)
    op.execute(
        f"ALTER TABLE foster_carers {_not_null()}, {_not_null('preferred_')},"
        " DROP CONSTRAINT foster_carers_ages, DROP CONSTRAINT foster_carers_care_modes,"
        " DROP CONSTRAINT foster_carers_preferences,"
        " DROP COLUMN age_min, DROP COLUMN age_max, DROP COLUMN care_modes,"
        " DROP COLUMN preferred_age_min, DROP COLUMN preferred_age_max,"
        f" DROP COLUMN preferred_care_modes, {_checks('foster_carers')},"
        " ADD CONSTRAINT foster_carers_preferences CHECK ("
        " preferred_age_min_months >= age_min_months"
        " AND preferred_age_max_months <= age_max_months"
        " AND preferred_age_min_months <= preferred_age_max_months"
        " AND preferred_timings <@ timings AND cardinality(preferred_timings) > 0"
        " AND preferred_publics <@ publics AND cardinality(preferred_publics) > 0"
        " AND preferred_formulas <@ formulas AND cardinality(preferred_formulas) > 0)"
    )

    # Requests: the three axes from the care mode; children's ages in months.
    op.execute(
        "ALTER TABLE placement_requests ADD COLUMN timing varchar, ADD COLUMN public varchar,"
        " ADD COLUMN formula varchar,"
        " ADD COLUMN parent_expecting boolean NOT NULL DEFAULT false"
    )
    op.execute(
        """
        UPDATE placement_requests r
           SET timing = m.timing, public = m.public, formula = m.formula
          FROM (VALUES ('urgence', 'urgence', 'mineur', 'enfant'),
                       ('durable', 'durable', 'mineur', 'enfant'),
                       ('sequentiel', 'sequentiel', 'mineur', 'enfant'),
                       ('mere_enfant', 'durable', 'mineur', 'parent_enfant'),
                       ('mna', 'durable', 'mna', 'enfant'),
                       ('jeune_majeur', 'durable', 'jeune_majeur', 'enfant'))
               AS m (care_mode, timing, public, formula)
         WHERE m.care_mode = r.care_mode
        """
    )
    op.execute(
        """
        UPDATE placement_requests
           SET children = (
               SELECT coalesce(jsonb_agg(
                          (c - 'age') || jsonb_build_object(
                              'age_months', coalesce((c->>'age_months')::int,
                                                     (c->>'age')::int * 12))
                          ORDER BY i), '[]'::jsonb)
                 FROM jsonb_array_elements(children) WITH ORDINALITY AS e (c, i))
        """
    )
    op.execute(
        "ALTER TABLE placement_requests ALTER COLUMN timing SET NOT NULL,"
        " ALTER COLUMN public SET NOT NULL, ALTER COLUMN formula SET NOT NULL,"
        " DROP CONSTRAINT placement_requests_care_mode, DROP COLUMN care_mode,"
        " ADD CONSTRAINT placement_requests_timing"
        " CHECK (timing IN ('urgence', 'durable', 'sequentiel')),"
        " ADD CONSTRAINT placement_requests_public"
        " CHECK (public IN ('mineur', 'mna', 'jeune_majeur')),"
        " ADD CONSTRAINT placement_requests_formula"
        " CHECK (formula IN ('enfant', 'parent_enfant')),"
        " ADD CONSTRAINT placement_requests_parent_expecting"
        " CHECK (NOT parent_expecting OR formula = 'parent_enfant'),"
        # A parent expecting may have no child yet (CASF L222-5-3).
        " DROP CONSTRAINT placement_requests_children,"
        " ADD CONSTRAINT placement_requests_children CHECK (jsonb_typeof(children) = 'array'"
        " AND jsonb_array_length(children) <= 12"
        " AND (jsonb_array_length(children) >= 1 OR parent_expecting))"
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0017 cannot be downgraded faithfully (ages in months and the three needs axes do not "
        "fold back into years and one care mode): restore the backup taken before upgrading"
    )
