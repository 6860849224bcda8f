"""competent authorities: who is in charge of child protection on each commune

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

Child protection is the competence of a collectivity, not always one INSEE department: the
Métropole de Lyon (69M) on its communes and the Département du Rhône (69D) on the others of
69, the Collectivité de Corse (20R) on 2A and 2B, the Collectivité européenne d'Alsace (6AE)
on 67 and 68; every other department is its own authority, under its own code. The lists
below are a frozen copy of ``geo/data/authorities.csv`` and of the Métropole's communes in
``geo/data/communes.csv`` as of this revision (a test checks that they agree); later changes
to the referential reach the database through ``places seed`` (reference data), not here.

Departments stay as geography. Each territorial row gains the code of its authority, filled
from its commune; structures, carers and requests get it from a trigger when the writer does
not give it, so that every writer (API, FINESS import, seed) follows the same rule.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "departement",
    "metropole",
    "collectivite_unique",
    "collectivite_europeenne",
    "ville_departement",
)

AUTHORITIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("01", "Département de l'Ain", "departement", ("01",)),
    ("02", "Département de l'Aisne", "departement", ("02",)),
    ("03", "Département de l'Allier", "departement", ("03",)),
    ("04", "Département des Alpes-de-Haute-Provence", "departement", ("04",)),
    ("05", "Département des Hautes-Alpes", "departement", ("05",)),
    ("06", "Département des Alpes-Maritimes", "departement", ("06",)),
    ("07", "Département de l'Ardèche", "departement", ("07",)),
    ("08", "Département des Ardennes", "departement", ("08",)),
    ("09", "Département de l'Ariège", "departement", ("09",)),
    ("10", "Département de l'Aube", "departement", ("10",)),
    ("11", "Département de l'Aude", "departement", ("11",)),
    ("12", "Département de l'Aveyron", "departement", ("12",)),
    ("13", "Département des Bouches-du-Rhône", "departement", ("13",)),
    ("14", "Département du Calvados", "departement", ("14",)),
    ("15", "Département du Cantal", "departement", ("15",)),
    ("16", "Département de la Charente", "departement", ("16",)),
    ("17", "Département de la Charente-Maritime", "departement", ("17",)),
    ("18", "Département du Cher", "departement", ("18",)),
    ("19", "Département de la Corrèze", "departement", ("19",)),
    ("20R", "Collectivité de Corse", "collectivite_unique", ("2A", "2B")),
    ("21", "Département de la Côte-d'Or", "departement", ("21",)),
    ("22", "Département des Côtes-d'Armor", "departement", ("22",)),
    ("23", "Département de la Creuse", "departement", ("23",)),
    ("24", "Département de la Dordogne", "departement", ("24",)),
    ("25", "Département du Doubs", "departement", ("25",)),
    ("26", "Département de la Drôme", "departement", ("26",)),
    ("27", "Département de l'Eure", "departement", ("27",)),
    ("28", "Département d'Eure-et-Loir", "departement", ("28",)),
    ("29", "Département du Finistère", "departement", ("29",)),
    ("30", "Département du Gard", "departement", ("30",)),
    ("31", "Département de la Haute-Garonne", "departement", ("31",)),
    ("32", "Département du Gers", "departement", ("32",)),
    ("33", "Département de la Gironde", "departement", ("33",)),
    ("34", "Département de l'Hérault", "departement", ("34",)),
    ("35", "Département d'Ille-et-Vilaine", "departement", ("35",)),
    ("36", "Département de l'Indre", "departement", ("36",)),
    ("37", "Département d'Indre-et-Loire", "departement", ("37",)),
    ("38", "Département de l'Isère", "departement", ("38",)),
    ("39", "Département du Jura", "departement", ("39",)),
    ("40", "Département des Landes", "departement", ("40",)),
    ("41", "Département du Loir-et-Cher", "departement", ("41",)),
    ("42", "Département de la Loire", "departement", ("42",)),
    ("43", "Département de la Haute-Loire", "departement", ("43",)),
    ("44", "Département de la Loire-Atlantique", "departement", ("44",)),
    ("45", "Département du Loiret", "departement", ("45",)),
    ("46", "Département du Lot", "departement", ("46",)),
    ("47", "Département du Lot-et-Garonne", "departement", ("47",)),
    ("48", "Département de la Lozère", "departement", ("48",)),
    ("49", "Département de Maine-et-Loire", "departement", ("49",)),
    ("50", "Département de la Manche", "departement", ("50",)),
    ("51", "Département de la Marne", "departement", ("51",)),
    ("52", "Département de la Haute-Marne", "departement", ("52",)),
    ("53", "Département de la Mayenne", "departement", ("53",)),
    ("54", "Département de Meurthe-et-Moselle", "departement", ("54",)),
    ("55", "Département de la Meuse", "departement", ("55",)),
    ("56", "Département du Morbihan", "departement", ("56",)),
    ("57", "Département de la Moselle", "departement", ("57",)),
    ("58", "Département de la Nièvre", "departement", ("58",)),
    ("59", "Département du Nord", "departement", ("59",)),
    ("60", "Département de l'Oise", "departement", ("60",)),
    ("61", "Département de l'Orne", "departement", ("61",)),
    ("62", "Département du Pas-de-Calais", "departement", ("62",)),
    ("63", "Département du Puy-de-Dôme", "departement", ("63",)),
    ("64", "Département des Pyrénées-Atlantiques", "departement", ("64",)),
    ("65", "Département des Hautes-Pyrénées", "departement", ("65",)),
    ("66", "Département des Pyrénées-Orientales", "departement", ("66",)),
    ("6AE", "Collectivité européenne d'Alsace", "collectivite_europeenne", ("67", "68")),
    ("69D", "Département du Rhône", "departement", ("69",)),
    ("69M", "Métropole de Lyon", "metropole", ("69",)),
    ("70", "Département de la Haute-Saône", "departement", ("70",)),
    ("71", "Département de Saône-et-Loire", "departement", ("71",)),
    ("72", "Département de la Sarthe", "departement", ("72",)),
    ("73", "Département de la Savoie", "departement", ("73",)),
    ("74", "Département de la Haute-Savoie", "departement", ("74",)),
    ("75", "Ville de Paris", "ville_departement", ("75",)),
    ("76", "Département de la Seine-Maritime", "departement", ("76",)),
    ("77", "Département de Seine-et-Marne", "departement", ("77",)),
    ("78", "Département des Yvelines", "departement", ("78",)),
    ("79", "Département des Deux-Sèvres", "departement", ("79",)),
    ("80", "Département de la Somme", "departement", ("80",)),
    ("81", "Département du Tarn", "departement", ("81",)),
    ("82", "Département du Tarn-et-Garonne", "departement", ("82",)),
    ("83", "Département du Var", "departement", ("83",)),
    ("84", "Département du Vaucluse", "departement", ("84",)),
    ("85", "Département de la Vendée", "departement", ("85",)),
    ("86", "Département de la Vienne", "departement", ("86",)),
    ("87", "Département de la Haute-Vienne", "departement", ("87",)),
    ("88", "Département des Vosges", "departement", ("88",)),
    ("89", "Département de l'Yonne", "departement", ("89",)),
    ("90", "Département du Territoire de Belfort", "departement", ("90",)),
    ("91", "Département de l'Essonne", "departement", ("91",)),
    ("92", "Département des Hauts-de-Seine", "departement", ("92",)),
    ("93", "Département de la Seine-Saint-Denis", "departement", ("93",)),
    ("94", "Département du Val-de-Marne", "departement", ("94",)),
    ("95", "Département du Val-d'Oise", "departement", ("95",)),
    ("971", "Département de la Guadeloupe", "departement", ("971",)),
    ("972", "Collectivité territoriale de Martinique", "collectivite_unique", ("972",)),
    ("973", "Collectivité territoriale de Guyane", "collectivite_unique", ("973",)),
    ("974", "Département de La Réunion", "departement", ("974",)),
    ("976", "Département de Mayotte", "departement", ("976",)),
)
METROPOLE_DE_LYON: tuple[str, ...] = (
    "69003",
    "69029",
    "69033",
    "69034",
    "69040",
    "69044",
    "69046",
    "69063",
    "69068",
    "69069",
    "69071",
    "69072",
    "69081",
    "69085",
    "69087",
    "69088",
    "69089",
    "69091",
    "69096",
    "69100",
    "69116",
    "69117",
    "69123",
    "69127",
    "69142",
    "69143",
    "69149",
    "69153",
    "69163",
    "69168",
    "69191",
    "69194",
    "69199",
    "69202",
    "69204",
    "69205",
    "69207",
    "69233",
    "69244",
    "69250",
    "69256",
    "69259",
    "69260",
    "69266",
    "69271",
    "69273",
    "69275",
    "69276",
    "69278",
    "69279",
    "69282",
    "69283",
    "69284",
    "69286",
    "69290",
    "69292",
    "69293",
    "69296",
)


_MAPPED = """
CASE WHEN {department} IN ('2A', '2B') THEN '20R'
     WHEN {department} IN ('67', '68') THEN '6AE'
     WHEN {department} = '69' AND {commune} = ANY(:lyon) THEN '69M'
     WHEN {department} = '69' THEN '69D'
     ELSE {department} END
"""

# The authority of a row placed by its commune: its commune's. A request placed by a point only
# takes the authority of the nearest commune (the API resolves it the same way before insert).
_TRIGGERS = (
    """
CREATE FUNCTION places_authority_from_commune() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.authority IS NULL
       OR (TG_OP = 'UPDATE' AND NEW.commune IS DISTINCT FROM OLD.commune
           AND NEW.authority IS NOT DISTINCT FROM OLD.authority) THEN
        NEW.authority := (SELECT c.authority FROM communes c WHERE c.insee = NEW.commune);
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER structures_authority BEFORE INSERT OR UPDATE OF commune ON structures
    FOR EACH ROW EXECUTE FUNCTION places_authority_from_commune()
""",
    """
CREATE TRIGGER foster_carers_authority BEFORE INSERT OR UPDATE OF commune ON foster_carers
    FOR EACH ROW EXECUTE FUNCTION places_authority_from_commune()
""",
    """
CREATE FUNCTION places_request_authority() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.authority IS NULL THEN
        NEW.authority := coalesce(
            (SELECT c.authority FROM communes c WHERE c.insee = NEW.origin_commune),
            (SELECT c.authority FROM communes c
              ORDER BY c.location <-> NEW.origin_location LIMIT 1));
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER placement_requests_authority BEFORE INSERT ON placement_requests
    FOR EACH ROW EXECUTE FUNCTION places_request_authority()
""",
)


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE authorities (
            code varchar PRIMARY KEY CHECK (code ~ '^[0-9][0-9A-Z]{{1,2}}$'),
            name varchar NOT NULL,
            kind varchar NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in KINDS)})),
            departments text[] NOT NULL CHECK (cardinality(departments) >= 1)
        )
        """
    )
    table = sa.table(
        "authorities",
        sa.column("code", sa.Text),
        sa.column("name", sa.Text),
        sa.column("kind", sa.Text),
        sa.column("departments", sa.ARRAY(sa.Text)),
    )
    op.bulk_insert(
        table,
        [{"code": c, "name": n, "kind": k, "departments": list(d)} for c, n, k, d in AUTHORITIES],
    )
    lyon = sa.bindparam("lyon", list(METROPOLE_DE_LYON), type_=sa.ARRAY(sa.Text))

    op.execute("ALTER TABLE communes ADD COLUMN authority varchar REFERENCES authorities (code)")
    op.get_bind().execute(
        sa.text(
            "UPDATE communes SET authority = "
            + _MAPPED.format(department="department", commune="insee")
        ).bindparams(lyon)
    )
    op.execute("ALTER TABLE communes ALTER COLUMN authority SET NOT NULL")
    op.execute("CREATE INDEX communes_authority_idx ON communes (authority)")

    for table_name in ("structures", "foster_carers"):
        op.execute(
            f"ALTER TABLE {table_name} ADD COLUMN authority varchar REFERENCES authorities (code)"
        )
        op.execute(
            f"UPDATE {table_name} t SET authority = c.authority"
            " FROM communes c WHERE c.insee = t.commune"
        )
        op.execute(f"ALTER TABLE {table_name} ALTER COLUMN authority SET NOT NULL")
        op.execute(f"CREATE INDEX {table_name}_authority_idx ON {table_name} (authority)")

    op.execute(
        "ALTER TABLE placement_requests ADD COLUMN authority varchar REFERENCES authorities (code)"
    )
    op.execute(
        """
        UPDATE placement_requests r
           SET authority = coalesce(
                   (SELECT c.authority FROM communes c WHERE c.insee = r.origin_commune),
                   (SELECT c.authority FROM communes c
                     ORDER BY c.location <-> r.origin_location LIMIT 1))
        """
    )
    op.execute("ALTER TABLE placement_requests ALTER COLUMN authority SET NOT NULL")
    op.execute(
        "CREATE INDEX placement_requests_authority_status_idx"
        " ON placement_requests (authority, status, decided_on)"
    )

    # The trail and the outbox keep their department; they gain the authority. Entries about
    # a request take the request's; others the department's own authority when it has one.
    op.execute("ALTER TABLE audit_entries ADD COLUMN authority varchar")
    op.execute(
        """
        UPDATE audit_entries a
           SET authority = r.authority
          FROM placement_requests r
         WHERE r.id::text = coalesce(a.detail->>'request_id',
                                     CASE WHEN a.object_type = 'placement_request'
                                          THEN a.object_id END)
        """
    )
    op.get_bind().execute(
        sa.text(
            "UPDATE audit_entries SET authority = "
            + _MAPPED.format(department="department", commune="NULL")
            + " WHERE authority IS NULL AND department IS NOT NULL AND department <> '69'"
        ).bindparams(lyon)
    )
    op.execute("CREATE INDEX audit_entries_authority_idx ON audit_entries (authority, id)")
    op.execute("ALTER TABLE outbox_events ADD COLUMN authority varchar")
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER placement_requests_authority ON placement_requests")
    op.execute("DROP TRIGGER foster_carers_authority ON foster_carers")
    op.execute("DROP TRIGGER structures_authority ON structures")
    op.execute("DROP FUNCTION places_request_authority()")
    op.execute("DROP FUNCTION places_authority_from_commune()")
    op.execute("ALTER TABLE outbox_events DROP COLUMN authority")
    op.execute("ALTER TABLE audit_entries DROP COLUMN authority")
    for table_name in ("placement_requests", "foster_carers", "structures", "communes"):
        op.execute(f"ALTER TABLE {table_name} DROP COLUMN authority")
    op.execute("DROP TABLE authorities")
