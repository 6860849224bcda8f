"""The statistics' rules beyond the schema: which territory a query may name, which
windows a national view publishes."""

from datetime import date, timedelta

from api import authorities
from api.errors import Invalid, field_error


def check_authority(code: str | None) -> str | None:
    """``code`` when it names a competent authority (or is None); else the 422 of
    ``api.authorities`` naming the ``authority`` parameter with the valid codes."""
    return None if code is None else authorities.check_authority(code)


def check_history_scope(department: str | None, authority: str | None) -> None:
    """A history is of one territory: a department (geography) or an authority, not both."""
    check_authority(authority)
    if department is not None and authority is not None:
        raise field_error("authority", "un historique porte sur un département ou une autorité")


NATIONAL_WINDOWS = (30, 90, 365)
"""The only windows (days) of the national views of children and flows (#18, statistical
secrecy): a free window would let a caller difference two of them (30 and 31 days) and
read the admissions or refusals of one day, a count the secrecy of each hides."""


def check_national_window(window_days: int) -> int:
    """``window_days`` when a national view publishes it, else the 422 naming it."""
    if window_days not in NATIONAL_WINDOWS:
        listed = ", ".join(map(str, NATIONAL_WINDOWS))
        message = (
            f"une vue nationale est publiée sur {listed} jours seulement "
            "(secret statistique : deux fenêtres voisines donneraient leur différence)"
        )
        raise Invalid(
            f"window_days: {message}.",
            errors=[
                {"field": "window_days", "message": message, "choices": list(NATIONAL_WINDOWS)}
            ],
        )
    return window_days


def national_last_day(today: date) -> date:
    """The last day of a national window: yesterday (Paris). A window ending now would
    change within the day, and two calls minutes apart would give the admissions between
    them; a closed day never changes (admissions are dated when written)."""
    return today - timedelta(days=1)
