"""Opening a database already at the head revision skips Alembic (read with sqlite3 first); an older file,
a new one and one from a newer Cadence still go through the real migration path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cadence.adapters.db import engine as db_engine
from cadence.adapters.db.engine import (
    create_sqlite_engine,
    head_revision,
    is_at_head,
    migrate,
    open_database,
    script_head_revision,
    stored_revision,
)
from cadence.core.ports import StorageError, StorageErrorKind

REPO = Path(__file__).resolve().parents[2]


class CountingMigrate:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        migrate(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> CountingMigrate:
    counter = CountingMigrate()
    monkeypatch.setattr(db_engine, "migrate", counter)
    return counter


def test_the_head_read_from_the_scripts_is_alembics_head() -> None:
    assert script_head_revision() == head_revision()


def test_a_new_database_is_migrated_then_reopened_without_alembic(
    tmp_path: Path, counted: CountingMigrate
) -> None:
    path = tmp_path / "c.sqlite3"
    assert not is_at_head(path)
    open_database(path).close()
    assert counted.calls == 1
    assert stored_revision(path) == head_revision()
    open_database(path).close()
    assert counted.calls == 1  # already at head: skipped


def test_an_old_database_is_upgraded_and_keeps_its_rows(tmp_path: Path, counted: CountingMigrate) -> None:
    path = tmp_path / "old.sqlite3"
    engine = create_sqlite_engine(path)
    migrate(engine, path=path, revision="0001")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO meta (key, value) VALUES ('kept', 'yes')")
    engine.dispose()
    assert stored_revision(path) == "0001" and not is_at_head(path)
    database = open_database(path)
    try:
        assert counted.calls == 1
        assert stored_revision(path) == head_revision()
        with database.read() as connection:
            assert connection.exec_driver_sql("SELECT value FROM meta WHERE key = 'kept'").scalar() == "yes"
    finally:
        database.close()


def test_a_database_from_a_newer_cadence_still_goes_to_alembic_and_is_refused(
    tmp_path: Path, counted: CountingMigrate
) -> None:
    path = tmp_path / "c.sqlite3"
    open_database(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    raw.close()
    with pytest.raises(StorageError) as caught:
        open_database(path)
    assert caught.value.kind is StorageErrorKind.TOO_NEW
    assert counted.calls == 2


def test_stored_revision_of_files_that_are_not_at_any_revision(tmp_path: Path) -> None:
    assert stored_revision(tmp_path / "missing.sqlite3") is None
    assert not (tmp_path / "missing.sqlite3").exists()  # the check never creates the file
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 100)
    assert stored_revision(garbage) is None
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    assert stored_revision(empty) is None
    spaced = tmp_path / "a folder #1?" / "c.sqlite3"  # characters a file: URI must escape
    spaced.parent.mkdir()
    open_database(spaced).close()
    assert stored_revision(spaced) == head_revision()


def _write_script(folder: Path, name: str, revision: str, down: str) -> None:
    (folder / f"{name}.py").write_text(
        f'"""x"""\nfrom alembic import op\n\nrevision = "{revision}"\ndown_revision = {down}\n'
    )


def test_the_script_head_is_none_unless_the_history_is_one_line(tmp_path: Path) -> None:
    line = tmp_path / "line"
    line.mkdir()
    (line / "__init__.py").write_text("")
    _write_script(line, "a", "0001", "None")
    _write_script(line, "b", "0002", '"0001"')
    _write_script(line, "c", "0003", "'0002'")
    assert script_head_revision(line) == "0003"

    branched = tmp_path / "branched"
    branched.mkdir()
    _write_script(branched, "a", "0001", "None")
    _write_script(branched, "b", "0002", '"0001"')
    _write_script(branched, "c", "0003", '"0001"')
    assert script_head_revision(branched) is None

    merged = tmp_path / "merged"
    merged.mkdir()
    _write_script(merged, "a", "0001", "None")
    _write_script(merged, "b", "0002", '("0001", "0001b")')
    assert script_head_revision(merged) is None


def test_opening_a_database_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    open_database(path).close()
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cadence.adapters.db.engine import open_database\n"
        "open_database(Path(sys.argv[1])).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "desktop")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
