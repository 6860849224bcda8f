"""agréments owned by their issuer, employers, the carer's own part (#15)

Revision ID: 0012
Revises: 0011

A carer's row now carries their **agrément** as the issuing authority (the competent
authority of their home's commune, ``foster_carers.authority``) records it — issued on,
valid until (five years by default, CASF R421-… and L421-3), capacity with its derogation
above three children (CASF L421-5), state ``valid`` / ``suspended`` (from, until, coded
reason) / ``withdrawn`` (on, coded reason, CASF L421-6), renewal requested — versioned on
its own (``agrement_version``), apart from what is the carer's (``version``: free places,
leave, preferences within the agrément).

Validity is one SQL function, ``places_agrement_valid(…, day)``, inlined where it is called
(search, statistics, FHIR, open data, the triggers); ``places_agrement_state`` derives what a
reader sees (``expired`` comes from the date, it is never stored). Two triggers keep a
direct write from slipping through: free places can only be raised on an agrément valid
today, and a hold can only be inserted on a carer whose agrément is valid today.

The **employer** is a reference — an authority (the department's ASE: the carer is its
employee) or a private placement service (a FINESS 236 structure) — no longer free text;
the synthetic seed's text ``<name> (FINESS n)`` maps to the structure.
``employing_authority`` (kept by the trigger) is the employer's authority — the structure's
for a placement service — which search and the feeds use without a join. Carers employed
by an authority are closed to other authorities by default, those of a placement service
open (``open_to_other_authorities``).

Migrated rows: carers ``suspended`` become ``valid``-but-``suspended`` agréments (reason
``anterieur_enregistrement``) with no free places; carers with 4–6 children get a derogation
with that reason, until their agrément's end; issue dates are spread deterministically over
the last 1,700 days (the dataset had none).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = """
ALTER TABLE foster_carers
    ADD COLUMN issued_on date,
    ADD COLUMN valid_until date,
    ADD COLUMN agrement_state varchar NOT NULL DEFAULT 'valid',
    ADD COLUMN suspended_from date,
    ADD COLUMN suspended_until date,
    ADD COLUMN suspension_reason varchar,
    ADD COLUMN withdrawn_on date,
    ADD COLUMN withdrawal_reason varchar,
    ADD COLUMN renewal_requested_on date,
    ADD COLUMN derogation_children smallint,
    ADD COLUMN derogation_reason varchar,
    ADD COLUMN derogation_until date,
    ADD COLUMN agrement_version integer NOT NULL DEFAULT 1,
    ADD COLUMN employer_authority varchar REFERENCES authorities (code),
    ADD COLUMN employer_structure uuid REFERENCES structures (id),
    ADD COLUMN employing_authority varchar REFERENCES authorities (code),
    ADD COLUMN open_to_other_authorities boolean,
    ADD COLUMN leave_from date,
    ADD COLUMN preferred_age_min smallint,
    ADD COLUMN preferred_age_max smallint,
    ADD COLUMN preferred_care_modes text[]
"""

_BACKFILL = (
    # Suspended carers: the suspension moves to the agrément, recorded without a reason.
    """
    UPDATE foster_carers
       SET agrement_state = 'suspended', suspended_from = declared_at::date,
           suspension_reason = 'anterieur_enregistrement', status = 'active',
           status_until = NULL, available_places = 0
     WHERE status = 'suspended'
    """,
    """
    UPDATE foster_carers
       SET issued_on = current_date - (abs(hashtext(id::text)) % 1700),
           preferred_age_min = age_min, preferred_age_max = age_max,
           preferred_care_modes = care_modes
    """,
    "UPDATE foster_carers SET valid_until = (issued_on + interval '5 years')::date",
    """
    UPDATE foster_carers
       SET derogation_children = agrement_capacity,
           derogation_reason = 'anterieur_enregistrement', derogation_until = valid_until
     WHERE agrement_capacity > 3
    """,
    # The employer: the seed's "<name> (FINESS n)" is a placement service; anything else
    # is the authority that issued the agrément.
    """
    UPDATE foster_carers c
       SET employer_structure = s.id
      FROM structures s
     WHERE s.finess = substring(c.employer FROM '\\(FINESS ([0-9]{9})\\)$')
    """,
    """
    UPDATE foster_carers
       SET employer_authority = authority
     WHERE employer_structure IS NULL
    """,
    "UPDATE foster_carers SET open_to_other_authorities = employer_structure IS NOT NULL",
    """
    UPDATE foster_carers c
       SET employing_authority = coalesce(c.employer_authority,
                                          (SELECT s.authority FROM structures s
                                            WHERE s.id = c.employer_structure))
    """,
)

_CONSTRAINTS = """
ALTER TABLE foster_carers
    ALTER COLUMN issued_on SET NOT NULL,
    ALTER COLUMN valid_until SET NOT NULL,
    ALTER COLUMN open_to_other_authorities SET NOT NULL,
    ALTER COLUMN employing_authority SET NOT NULL,
    ALTER COLUMN preferred_age_min SET NOT NULL,
    ALTER COLUMN preferred_age_max SET NOT NULL,
    ALTER COLUMN preferred_care_modes SET NOT NULL,
    DROP COLUMN employer,
    DROP CONSTRAINT foster_carers_status,
    ADD CONSTRAINT foster_carers_status CHECK (status IN ('active', 'leave')),
    ADD CONSTRAINT foster_carers_validity_dates CHECK (valid_until > issued_on),
    ADD CONSTRAINT foster_carers_agrement_state
        CHECK (agrement_state IN ('valid', 'suspended', 'withdrawn')),
    ADD CONSTRAINT foster_carers_suspension CHECK (
        (agrement_state = 'suspended') = (suspended_from IS NOT NULL)
        AND (suspended_from IS NULL) = (suspension_reason IS NULL)
        AND (suspended_until IS NULL OR suspended_until >= suspended_from)),
    ADD CONSTRAINT foster_carers_suspension_reason CHECK (suspension_reason IN (
        'situation_de_danger', 'enquete_administrative', 'procedure_penale',
        'conditions_accueil', 'sante', 'anterieur_enregistrement')),
    ADD CONSTRAINT foster_carers_withdrawal CHECK (
        (agrement_state = 'withdrawn') = (withdrawn_on IS NOT NULL)
        AND (withdrawn_on IS NULL) = (withdrawal_reason IS NULL)),
    ADD CONSTRAINT foster_carers_withdrawal_reason CHECK (withdrawal_reason IN (
        'conditions_non_remplies', 'maltraitance', 'demande_assistant', 'cessation_activite',
        'autre')),
    ADD CONSTRAINT foster_carers_derogation CHECK (
        (derogation_children IS NULL) = (derogation_reason IS NULL)
        AND (derogation_children IS NULL OR derogation_children BETWEEN 4 AND 6)
        AND (agrement_capacity <= 3 OR agrement_capacity <= derogation_children)),
    ADD CONSTRAINT foster_carers_derogation_reason CHECK (derogation_reason IN (
        'fratrie', 'continuite_parcours', 'accueil_urgence', 'anterieur_enregistrement')),
    ADD CONSTRAINT foster_carers_employer CHECK (
        (employer_authority IS NULL) <> (employer_structure IS NULL)),
    ADD CONSTRAINT foster_carers_preferences CHECK (
        preferred_age_min >= age_min AND preferred_age_max <= age_max
        AND preferred_age_min <= preferred_age_max
        AND preferred_care_modes <@ care_modes AND cardinality(preferred_care_modes) > 0)
"""

_FUNCTIONS = (
    """
CREATE FUNCTION places_agrement_valid(
    state text, issued_on date, valid_until date, suspended_from date, suspended_until date,
    day date
) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT issued_on <= day AND day <= valid_until
       AND (state = 'valid'
            OR (state = 'suspended'
                AND (day < suspended_from OR day > coalesce(suspended_until, 'infinity'))))
$$
""",
    """
CREATE FUNCTION places_agrement_state(
    state text, issued_on date, valid_until date, suspended_from date, suspended_until date,
    day date
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN state = 'withdrawn' THEN 'withdrawn'
        WHEN day > valid_until THEN 'expired'
        WHEN day < issued_on THEN 'not_yet_valid'
        WHEN state = 'suspended' AND day >= suspended_from
             AND day <= coalesce(suspended_until, 'infinity') THEN 'suspended'
        ELSE 'valid'
    END
$$
""",
    # Defaults a writer may leave out, then the rule no direct write escapes: free places
    # are raised only on an agrément valid today; an agrément leaving its valid state
    # (suspension, withdrawal) takes the free places with it in the same write.
    """
CREATE FUNCTION places_carer_agrement() RETURNS trigger LANGUAGE plpgsql AS $$
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
    NEW.preferred_age_min := coalesce(NEW.preferred_age_min, NEW.age_min);
    NEW.preferred_age_max := coalesce(NEW.preferred_age_max, NEW.age_max);
    NEW.preferred_care_modes := coalesce(NEW.preferred_care_modes, NEW.care_modes);
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
""",
    # After foster_carers_authority (alphabetical order of triggers), which sets
    # NEW.authority from the commune.
    """
CREATE TRIGGER foster_carers_validity BEFORE INSERT OR UPDATE ON foster_carers
    FOR EACH ROW EXECUTE FUNCTION places_carer_agrement()
""",
    """
CREATE FUNCTION places_hold_on_valid_agrement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM foster_carers c
         WHERE c.id = NEW.carer_id
           AND places_agrement_valid(c.agrement_state, c.issued_on, c.valid_until,
                                     c.suspended_from, c.suspended_until, current_date)
    ) THEN
        RAISE EXCEPTION 'hold on a carer whose agrément is not valid today (carer %)',
            NEW.carer_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'holds_agrement_valid';
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER holds_agrement_valid BEFORE INSERT ON holds
    FOR EACH ROW WHEN (NEW.carer_id IS NOT NULL)
    EXECUTE FUNCTION places_hold_on_valid_agrement()
""",
)


def upgrade() -> None:
    op.execute(_COLUMNS)
    for statement in _BACKFILL:
        op.execute(statement)
    op.execute(_CONSTRAINTS)
    for statement in _FUNCTIONS:
        op.execute(statement)
    op.execute(
        "CREATE INDEX foster_carers_employer_structure_idx ON foster_carers (employer_structure)"
        " WHERE employer_structure IS NOT NULL"
    )
    # The issuer's list: its agréments by end of validity (expiring first).
    op.execute(
        "CREATE INDEX foster_carers_authority_valid_until_idx"
        " ON foster_carers (authority, valid_until)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX foster_carers_authority_valid_until_idx")
    op.execute("DROP INDEX foster_carers_employer_structure_idx")
    op.execute("DROP TRIGGER holds_agrement_valid ON holds")
    op.execute("DROP FUNCTION places_hold_on_valid_agrement()")
    op.execute("DROP TRIGGER foster_carers_validity ON foster_carers")
    op.execute("DROP FUNCTION places_carer_agrement()")
    op.execute("DROP FUNCTION places_agrement_state(text, date, date, date, date, date)")
    op.execute("DROP FUNCTION places_agrement_valid(text, date, date, date, date, date)")
    op.execute("ALTER TABLE foster_carers ADD COLUMN employer text")
    op.execute(
        "UPDATE foster_carers c SET employer = coalesce("
        " (SELECT s.name || ' (FINESS ' || s.finess || ')' FROM structures s"
        "   WHERE s.id = c.employer_structure), 'CD ' || c.department)"
    )
    op.execute(
        """
        ALTER TABLE foster_carers
            ALTER COLUMN employer SET NOT NULL,
            DROP CONSTRAINT foster_carers_status,
            ADD CONSTRAINT foster_carers_status
                CHECK (status IN ('active', 'leave', 'suspended'))
        """
    )
    op.execute(
        "UPDATE foster_carers SET status = 'suspended', status_until = NULL"
        " WHERE agrement_state <> 'valid'"
    )
    op.execute(
        """
        ALTER TABLE foster_carers
            DROP COLUMN issued_on, DROP COLUMN valid_until, DROP COLUMN agrement_state,
            DROP COLUMN suspended_from, DROP COLUMN suspended_until,
            DROP COLUMN suspension_reason, DROP COLUMN withdrawn_on,
            DROP COLUMN withdrawal_reason, DROP COLUMN renewal_requested_on,
            DROP COLUMN derogation_children, DROP COLUMN derogation_reason,
            DROP COLUMN derogation_until, DROP COLUMN agrement_version,
            DROP COLUMN employer_authority, DROP COLUMN employer_structure,
            DROP COLUMN employing_authority,
            DROP COLUMN open_to_other_authorities, DROP COLUMN leave_from,
            DROP COLUMN preferred_age_min, DROP COLUMN preferred_age_max,
            DROP COLUMN preferred_care_modes
        """
    )
