"""The architecture's import rules, enforced by walking every module's AST."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "desktop" / "cadence"
STDLIB = set(sys.stdlib_module_names)
# Small pure helpers the core may use (no I/O at import or call time for what core uses).
CORE_EXTRA = {"email_validator", "idna"}
IO_LIBRARIES = {"aiosmtplib", "aioimaplib", "keyring", "sqlalchemy", "alembic", "dns", "secretstorage"}
QT_LIBRARIES = {"PySide6", "qasync", "shiboken6"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # relative import: resolve against the file's package
            parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
            base = parts[: len(parts) - node.level]
            names.add(".".join([*base, node.module] if node.module else base))
    return names


def _layer_files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _cadence_layer(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "cadence":
        return None
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("path", _layer_files("core"), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    for name in _imports(path):
        layer = _cadence_layer(name)
        if layer is not None:
            assert layer == "core", f"{path.name}: core imports {name}"
            continue
        assert _top(name) in STDLIB | CORE_EXTRA, f"{path.name}: core imports non-stdlib {name}"
        assert _top(name) not in {"asyncio", "sqlite3", "socket", "ssl", "smtplib", "imaplib"}, (
            f"{path.name}: core must not do I/O or asyncio ({name})"
        )


@pytest.mark.parametrize("path", _layer_files("services"), ids=lambda p: p.name)
def test_services_use_core_and_ports_only(path: Path) -> None:
    for name in _imports(path):
        layer = _cadence_layer(name)
        if layer is not None:
            assert layer in {"core", "services", ""}, f"{path.name}: services import {name}"
            continue
        assert _top(name) not in IO_LIBRARIES | QT_LIBRARIES, f"{path.name}: services import {name}"


@pytest.mark.parametrize("path", _layer_files("adapters"), ids=lambda p: p.name)
def test_adapters_do_not_reach_up(path: Path) -> None:
    for name in _imports(path):
        layer = _cadence_layer(name)
        if layer is not None:
            assert layer in {"core", "adapters", ""}, f"{path.name}: adapters import {name}"
        assert _top(name) not in QT_LIBRARIES, f"{path.name}: adapters import Qt ({name})"


# Top-level helpers with no I/O library behind them (locating bundled files).
PURE_HELPERS = {"resources"}


@pytest.mark.parametrize("path", _layer_files("qt"), ids=lambda p: p.name)
def test_qt_never_imports_adapters(path: Path) -> None:
    for name in _imports(path):
        layer = _cadence_layer(name)
        if layer is not None:
            assert layer in {"core", "services", "qt", "", *PURE_HELPERS}, f"{path.name}: qt imports {name}"
        assert _top(name) not in IO_LIBRARIES, f"{path.name}: qt imports an I/O library ({name})"


def test_only_composition_roots_import_qt_and_adapters_together() -> None:
    roots = {PACKAGE / "app.py", PACKAGE / "cli.py", *(PACKAGE / "commands").rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        if path in roots:
            continue
        layers = {_cadence_layer(n) for n in _imports(path)} - {None}
        assert not {"qt", "adapters"} <= layers, f"{path}: only app.py and commands wire qt to adapters"


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlalchemy\nfrom cadence.adapters.db import engine\n")
    names = _imports(bad)
    assert "sqlalchemy" in names and "cadence.adapters.db" in names
