"""carers' public point: search places a foster carer at their commune, never at their home

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

``foster_carers.public_location`` is the point every search uses for a carer — radius
filter, nearest-first order, distance shown, the distance part of the score: their commune's
point (``communes.location``), which reveals no more than the commune the answer names
anyway (issue #15: a department user bisecting search origins located a home to the metre
from the rounded ``distance_km``). A trigger keeps it equal to the commune's point whatever
the writer says: on insert, on a change of commune, and when the referential moves a
commune's point. The home (``location``) stays for the carer's own records; no search reads
it. The partial GiST index of free carers moves to the public point (the search's KNN walk).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTIONS = (
    """
CREATE FUNCTION places_carer_public_point() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.public_location := (SELECT location FROM communes WHERE insee = NEW.commune);
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER foster_carers_public_point
    BEFORE INSERT OR UPDATE OF commune, public_location ON foster_carers
    FOR EACH ROW EXECUTE FUNCTION places_carer_public_point()
""",
    """
CREATE FUNCTION places_commune_moves_carers() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE foster_carers SET public_location = NEW.location WHERE commune = NEW.insee;
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER communes_move_carers AFTER UPDATE OF location ON communes
    FOR EACH ROW WHEN (OLD.location IS DISTINCT FROM NEW.location)
    EXECUTE FUNCTION places_commune_moves_carers()
""",
)


def upgrade() -> None:
    op.execute("ALTER TABLE foster_carers ADD COLUMN public_location geography(Point, 4326)")
    op.execute(
        "UPDATE foster_carers c SET public_location = cm.location"
        " FROM communes cm WHERE cm.insee = c.commune"
    )
    op.execute("ALTER TABLE foster_carers ALTER COLUMN public_location SET NOT NULL")
    for statement in _FUNCTIONS:
        op.execute(statement)
    op.execute("DROP INDEX foster_carers_free_location_gist")
    op.execute(
        "CREATE INDEX foster_carers_free_public_location_gist ON foster_carers"
        " USING gist (public_location) WHERE status = 'active' AND available_places > 0"
    )


def downgrade() -> None:
    op.execute("DROP INDEX foster_carers_free_public_location_gist")
    op.execute(
        "CREATE INDEX foster_carers_free_location_gist ON foster_carers"
        " USING gist (location) WHERE status = 'active' AND available_places > 0"
    )
    op.execute("DROP TRIGGER communes_move_carers ON communes")
    op.execute("DROP FUNCTION places_commune_moves_carers()")
    op.execute("DROP TRIGGER foster_carers_public_point ON foster_carers")
    op.execute("DROP FUNCTION places_carer_public_point()")
    op.execute("ALTER TABLE foster_carers DROP COLUMN public_location")
