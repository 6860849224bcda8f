"""Dependencies run one way: ``api → realtime → (bus, db)``. ``realtime`` is handed what it
needs (DSN, NOTIFY channel, connection set-up, settings values) and imports nothing of the
service, so that it can be read, tested and reused without the API."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(source: str, package: tuple[str, ...] = ()) -> set[str]:
    """Every module a source imports, at the top or inside a function; relative imports are
    resolved against ``package``, and ``from a import b`` counts both ``a`` and ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *([node.module] if node.module else [])))
            found.add(module)
            found.update(f"{module}.{a.name}" if module else a.name for a in node.names)
    return found


def from_api(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "api" or m.startswith("api."))


def test_realtime_imports_nothing_from_api() -> None:
    files = sorted((ROOT / "realtime").rglob("*.py"))
    assert files
    offending = {
        str(path.relative_to(ROOT)): from_api(
            imported_modules(path.read_text(), path.relative_to(ROOT).parent.parts)
        )
        for path in files
    }
    assert {name: mods for name, mods in offending.items() if mods} == {}


def test_the_check_sees_every_form_of_import() -> None:
    """The rule rests on the parser: it must see imports inside functions and ``from api
    import x``, and resolve relative imports to their package."""
    source = (
        "import api.db\nfrom api import auth\ndef f():\n    from api.settings import get_settings\n"
    )
    assert from_api(imported_modules(source, ("realtime",))) == [
        "api",
        "api.auth",
        "api.db",
        "api.settings",
        "api.settings.get_settings",
    ]
    relative = imported_modules("from . import bus\nfrom .hub import Hub\n", ("realtime",))
    assert relative == {"realtime", "realtime.bus", "realtime.hub", "realtime.hub.Hub"}


def _project_imports(folder: str) -> dict[str, set[str]]:
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT)
        out[str(rel)] = imported_modules(path.read_text(), rel.parent.parts)
    return out


PROJECT_PACKAGES = ("api", "realtime", "matching", "geo", "seed", "interop", "loadtests", "tests")


def test_matching_and_geo_import_nothing_of_the_project() -> None:
    """``matching/`` is pure and ``geo/`` only knows places: both stand alone."""
    for folder in ("matching", "geo"):
        for name, modules in _project_imports(folder).items():
            foreign = sorted(
                m
                for m in modules
                if m.split(".")[0] in PROJECT_PACKAGES and m.split(".")[0] != folder
            )
            assert foreign == [], name


def test_the_service_imports_no_tool_of_the_repository() -> None:
    """Nothing the service runs imports the synthetic data, the load tests or the tests
    (the CLI imports seed/ and interop/ lazily, inside its commands)."""
    for folder in ("api", "realtime", "matching", "geo"):
        for name, modules in _project_imports(folder).items():
            assert not {m.split(".")[0] for m in modules} & {"loadtests", "tests"}, name


def test_services_and_repositories_do_not_speak_http() -> None:
    """Services return data or raise domain errors; only routes make responses."""
    layers = [
        path
        for path in sorted((ROOT / "api").rglob("*.py"))
        if path.name in {"service.py", "repository.py", "moves.py"}
        or path.name in {"changes.py", "events.py"}
    ]
    assert len(layers) > 10
    for path in layers:
        modules = imported_modules(path.read_text())
        assert not [m for m in modules if m.startswith(("fastapi", "starlette"))], path
