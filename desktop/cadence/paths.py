"""Where Cadence keeps its files. No Qt here: the CLI and the tests use it too."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from cadence import APP_NAME

DATABASE_FILENAME = "cadence.sqlite3"


def data_dir(override: Path | None = None) -> Path:
    """The per-user data directory (or `override`, from `--data-dir`), created private to the user."""
    if override is not None:
        directory = override.expanduser()
    else:
        directory = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    existed = directory.is_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not existed and os.name == "posix":
        # mkdir's mode is filtered by the umask; the database holds personal data, so be explicit.
        directory.chmod(0o700)
    return directory


def database_path(directory: Path) -> Path:
    return directory / DATABASE_FILENAME
