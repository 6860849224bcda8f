"""CSV cells safe to open in a spreadsheet (OWASP "CSV injection").

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read
as a formula by Excel or LibreOffice: it is prefixed with ``'``, which they show as text.
Numbers are left as they are (a negative number is a number, not a formula); only strings
are escaped. Every CSV export goes through ``safe_cell``.
"""

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
