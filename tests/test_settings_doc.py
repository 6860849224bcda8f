"""The README's settings table is the settings' documentation: every ``Settings`` field has
its row there, with the default the code really has, and every row names a real variable."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from api.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.pure

README = Path(__file__).resolve().parent.parent / "README.md"
PREFIX = str(Settings.model_config.get("env_prefix", ""))
TEST_ONLY = {"PLACES_TEST_ADMIN_DSN", "PLACES_UI_ARTIFACTS"}
"""Rows for variables that only the test suite reads (not ``Settings`` fields)."""


def settings_table() -> dict[str, str]:
    """``{variable: documented default}`` from the table under ``## Settings``; a row like
    ``PLACES_HOST`` / ``PLACES_PORT`` | ``127.0.0.1`` / ``8000`` documents two."""
    section = README.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = [n.strip().strip("`") for n in cells[0].split(" / ")]
        defaults = [d.strip().strip("`") for d in cells[1].split(" / ")]
        assert len(names) == len(defaults), f"one default per variable: {line}"
        assert "|".join(cells[2:]).strip(), f"no meaning: {line}"
        for name, default in zip(names, defaults, strict=True):
            assert name not in rows, f"{name} documented twice"
            rows[name] = default
    return rows


def documented_value(field: str, text: str) -> Any:
    """The documented default read as the field's type ("unset" is None; a relative path is
    relative to the project's root, as the code's defaults are)."""
    info = Settings.model_fields[field]
    if text == "unset":
        return None
    adapter = TypeAdapter(info.annotation)
    value = adapter.validate_json(text) if text.startswith("{") else adapter.validate_python(text)
    return PROJECT_ROOT / value if isinstance(value, Path) and not value.is_absolute() else value


def test_the_table_parses() -> None:
    rows = settings_table()
    assert rows["PLACES_HOST"] == "127.0.0.1" and rows["PLACES_PORT"] == "8000"
    assert documented_value("port", "8000") == 8000
    assert documented_value("jwt_jwks_url", "unset") is None
    assert documented_value("keys_dir", "var/keys") == PROJECT_ROOT / "var" / "keys"


def test_every_setting_is_documented_with_its_default() -> None:
    rows = settings_table()
    missing = [f"{PREFIX}{f.upper()}" for f in Settings.model_fields]
    missing = [name for name in missing if name not in rows]
    assert missing == [], "add these to the README's settings table"
    wrong = {
        f"{PREFIX}{field.upper()}": (rows[f"{PREFIX}{field.upper()}"], info.default)
        for field, info in Settings.model_fields.items()
        if documented_value(field, rows[f"{PREFIX}{field.upper()}"]) != info.default
    }
    assert wrong == {}, "README default ≠ code default"


def test_every_documented_variable_exists() -> None:
    fields = {f"{PREFIX}{f.upper()}" for f in Settings.model_fields}
    unknown = sorted(set(settings_table()) - fields - TEST_ONLY)
    assert unknown == [], "documented but read by nothing"
    here = Path(__file__)
    tests = "".join(p.read_text() for p in here.parent.rglob("*.py") if p != here)
    assert all(name in tests for name in TEST_ONLY)
