"""Every benchmark runs on a fresh machine with its documented command (issue #19, 7): each
``python -m loadtests.…`` / ``seed.national`` command the docs give parses its arguments,
and no default names a database, server or path of a particular machine — databases come
from the settings (``PLACES_DATABASE_URL``, made ready like ``scripts/run`` does) or are
made by the script itself. Cheap: the scripts stop right after parsing, nothing runs."""

import argparse
import re
import runpy
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(
    r"python -m ((?:loadtests\.[a-z_]+)|seed\.national)((?: --?[a-z][\w-]*(?: [\w.]+)?)*)"
)
NOT_SCRIPTS = {"loadtests.harness", "loadtests.common", "loadtests.locustfile"}
"""Modules of loadtests/ that are not run by a command of their own."""
SCRIPT_MADE = {"places_bench_feeds", "places_load", "places_load_template"}
"""Databases a default may name: the script makes them itself (``loadtests.common.
prepare_database``: a fresh copy of a template it seeds when missing)."""
LOCAL = re.compile(r"(postgres(ql)?|redis)://|127\.0\.0\.1|localhost|places_dev")
"""What a default must not name: a server, or the database nothing creates."""


class Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def documented() -> list[tuple[str, list[str]]]:
    """Every ``(module, arguments)`` the docs give, once each."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for doc in DOCS:
        for m in COMMAND.finditer(doc.read_text()):
            found[(m[1], tuple(m[2].split()))] = None
    # The dataset script's own usage (its ``prog``), without arguments.
    found[("seed.national", ())] = None
    return [(module, list(args)) for module, args in found]


def scripts() -> set[str]:
    return {
        f"loadtests.{p.stem}"
        for p in (ROOT / "loadtests").glob("*.py")
        if p.stem != "__init__" and "__main__" in p.read_text()
    } - NOT_SCRIPTS


def parse(module: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Run ``python -m module args`` until its arguments are parsed, then stop it."""
    original = argparse.ArgumentParser.parse_args

    def stop_after(self: argparse.ArgumentParser, *a: Any, **k: Any) -> argparse.Namespace:
        raise Parsed(original(self, *a, **k))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop_after)
    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(Parsed) as parsed, warnings.catch_warnings():
        # A script another one imports is already loaded: runpy says so, harmlessly.
        warnings.filterwarnings("ignore", "'loadtests.", RuntimeWarning)
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    return parsed.value.namespace


def values(namespace: argparse.Namespace) -> list[tuple[str, Any]]:
    out = []
    for name, value in vars(namespace).items():
        for v in value if isinstance(value, list) else [value]:
            out.append((name, v))
    return out


def test_every_script_has_a_documented_command():
    commands = {module for module, _ in documented()}
    missing = scripts() - commands
    assert not missing, f"scripts without a documented command: {missing}"


@pytest.mark.parametrize(
    ("module", "args"), documented(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_the_documented_command_parses_to_nothing_machine_specific(module, args, monkeypatch):
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    if "ArgumentParser" not in source:  # a script without options: its literals, then
        assert not LOCAL.search(source), module
        return
    namespace = parse(module, args, monkeypatch)
    for name, value in values(namespace):
        text = str(value)
        if isinstance(value, Path):  # the project's own folders (var/…) only
            assert not value.is_absolute() or value.is_relative_to(ROOT), (name, value)
            continue
        assert not LOCAL.search(text), f"{module} --{name} defaults to {text!r}"
        if re.fullmatch(r"places(_\w+)?", text) and name in {"database", "template", "dsn"}:
            assert text in SCRIPT_MADE, f"{module} --{name} names {text}, which it does not make"
            assert "prepare_database(" in source, module


def test_the_check_would_catch_the_former_default(monkeypatch):
    """seed/national.py's former ``--dsn`` default, a database nothing creates."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/places_dev")
    assert LOCAL.search(str(parser.parse_args([]).dsn))


def test_the_dataset_script_defaults_to_the_settings_database(monkeypatch):
    namespace = parse("seed.national", [], monkeypatch)
    assert namespace.dsn is None  # connects to get_settings().owner_dsn (seed/national.py)
    source = (ROOT / "seed" / "national.py").read_text()
    assert "args.dsn or get_settings().owner_dsn" in source
