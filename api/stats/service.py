"""The statistics' rules beyond the schema: which territory a query may name."""

from api.errors import field_error
from geo.referential import load_authorities


def check_authority(code: str | None) -> str | None:
    """``code`` when it names a competent authority of the referential (or is None); else
    the 422 that names the ``authority`` parameter and lists the valid codes.

    To be merged: the authority helper of issue 13 (``api/authorities.py``, written with the
    token scopes) validates the same codes for every route; this function should become a
    call to it once both branches are in.
    """
    if code is None or code in load_authorities():
        return code
    choices = ", ".join(load_authorities())
    raise field_error("authority", f"autorité compétente inconnue : {code} (valeurs : {choices})")


def check_history_scope(department: str | None, authority: str | None) -> None:
    """A history is of one territory: a department (geography) or an authority, not both."""
    check_authority(authority)
    if department is not None and authority is not None:
        raise field_error("authority", "un historique porte sur un département ou une autorité")
