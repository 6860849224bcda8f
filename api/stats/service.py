"""The statistics' rules beyond the schema: which territory a query may name."""

from api import authorities
from api.errors import field_error


def check_authority(code: str | None) -> str | None:
    """``code`` when it names a competent authority (or is None); else the 422 of
    ``api.authorities`` naming the ``authority`` parameter with the valid codes."""
    return None if code is None else authorities.check_authority(code)


def check_history_scope(department: str | None, authority: str | None) -> None:
    """A history is of one territory: a department (geography) or an authority, not both."""
    check_authority(authority)
    if department is not None and authority is not None:
        raise field_error("authority", "un historique porte sur un département ou une autorité")
