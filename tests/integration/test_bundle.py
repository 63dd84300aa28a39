"""The PyInstaller bundle: build it with packaging/build.sh, then run its own self-check.

Slow (a few minutes) and changes dist/ and build/, so it runs only when asked:
  CADENCE_TEST_BUNDLE=1 tests/run.sh tests/integration/test_bundle.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_harness import REPO, keyring_session

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("CADENCE_TEST_BUNDLE") != "1",
        reason="builds the PyInstaller bundle (minutes); set CADENCE_TEST_BUNDLE=1 to run",
    ),
]

BUNDLE = REPO / "dist" / "cadence"
EXECUTABLE = BUNDLE / "cadence"
DESKTOP_ID = "io.github.cadence_outreach.Cadence"


@pytest.fixture(scope="module")
def bundle() -> Iterator[Path]:
    build = subprocess.run(
        ["bash", str(REPO / "packaging" / "build.sh"), "--no-check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert EXECUTABLE.is_file()
    yield BUNDLE


def _subcommands(help_text: str) -> set[str]:
    match = re.search(r"\{([a-z,\-]+)\}", help_text)
    assert match, help_text
    return set(match.group(1).split(","))


@pytest.mark.timeout(1800)
def test_bundle_self_check_passes(bundle: Path, tmp_path: Path) -> None:
    with keyring_session(tmp_path / "session") as env:
        headless = {k: v for k, v in env.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}}
        result = subprocess.run(
            [str(EXECUTABLE), "self-check"],
            env=dict(headless, QT_QPA_PLATFORM="offscreen"),
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(bundle," in result.stdout.splitlines()[0]
    assert "ok       worker    started the mail-classification worker process" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "self-check: all 5 checks passed (display skipped)"
    assert str(bundle / "_internal" / "resources" / "icons") in result.stdout


@pytest.mark.timeout(1800)
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian package xvfb)")
def test_bundle_opens_an_x_display(bundle: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"QT_QPA_PLATFORM", "WAYLAND_DISPLAY"}}
    result = subprocess.run(
        ["xvfb-run", "-a", str(EXECUTABLE), "self-check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    display = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["display"]]
    assert display and display[0].startswith("ok"), result.stdout + result.stderr
    assert "started with the xcb plugin" in display[0]


@pytest.mark.timeout(1800)
def test_bundle_has_every_subcommand_of_the_source_tree(bundle: Path) -> None:
    frozen = subprocess.run([str(EXECUTABLE), "--help"], capture_output=True, text=True, timeout=120)
    source = subprocess.run(
        [sys.executable, "-m", "cadence", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert frozen.returncode == 0 and source.returncode == 0, frozen.stderr + source.stderr
    assert _subcommands(frozen.stdout) == _subcommands(source.stdout)


@pytest.mark.timeout(1800)
def test_bundle_ships_migrations_as_files_and_no_plaintext_keyring(bundle: Path) -> None:
    migrations = bundle / "_internal" / "cadence" / "adapters" / "db" / "migrations"
    source_migrations = REPO / "desktop" / "cadence" / "adapters" / "db" / "migrations"
    expected = sorted(p.relative_to(source_migrations) for p in source_migrations.rglob("*.py"))
    shipped = sorted(p.relative_to(migrations) for p in migrations.rglob("*.py"))
    assert shipped == expected
    assert not list(bundle.rglob("keyrings")), "keyrings.alt must never be shipped"


@pytest.mark.timeout(1800)
def test_bundle_libraries_resolve_and_desktop_files_are_laid_out(bundle: Path) -> None:
    internal = bundle / "_internal"
    env = dict(os.environ, LD_LIBRARY_PATH=f"{internal}:{internal / 'PySide6' / 'Qt' / 'lib'}")
    unresolved = []
    for library in sorted(internal.rglob("*.so*")):
        if library.is_symlink() or not library.is_file():
            continue
        ldd = subprocess.run(["ldd", str(library)], env=env, capture_output=True, text=True, timeout=60)
        unresolved += [
            f"{library.name}: {line.strip()}" for line in ldd.stdout.splitlines() if "not found" in line
        ]
    assert unresolved == []
    share = bundle / "share"
    assert (share / "applications" / f"{DESKTOP_ID}.desktop").is_file()
    assert (share / "metainfo" / f"{DESKTOP_ID}.metainfo.xml").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / f"{DESKTOP_ID}.svg").is_file()
    assert (share / "icons" / "hicolor" / "48x48" / "apps" / f"{DESKTOP_ID}.png").is_file()


@pytest.mark.timeout(1800)
def test_installed_bundle_runs_from_its_bin_link_and_menu_entry(bundle: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix with space"
    install = subprocess.run(
        ["bash", str(REPO / "packaging" / "linux" / "install-bundle.sh"), "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    version = subprocess.run([str(prefix / "bin" / "cadence"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("Cadence ")
    entry = (prefix / "share" / "applications" / f"{DESKTOP_ID}.desktop").read_text(encoding="utf-8")
    assert f'Exec="{prefix}/bin/cadence"' in entry.splitlines()
    assert (prefix / "share" / "icons" / "hicolor" / "256x256" / "apps" / f"{DESKTOP_ID}.png").is_file()
    assert not (prefix / "lib" / "cadence" / "share").exists()


@pytest.mark.timeout(1800)
def test_bundle_renders_every_screen_offscreen(bundle: Path, tmp_path: Path) -> None:
    """Every tab and dialog (QtCharts included) comes up from the frozen GUI modules."""
    result = subprocess.run(
        [str(EXECUTABLE), "screenshots", str(tmp_path / "shots")],
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shots = sorted((tmp_path / "shots").glob("*.png"))
    assert len(shots) >= 5
    assert all(shot.stat().st_size > 10_000 for shot in shots)


@pytest.mark.timeout(1800)
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian package xvfb)")
def test_bundle_window_keeps_running_on_an_x_display(bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with keyring_session(tmp_path / "session") as env:
        window_env = {k: v for k, v in env.items() if k not in {"QT_QPA_PLATFORM", "WAYLAND_DISPLAY"}}
        result = subprocess.run(
            ["xvfb-run", "-a", "timeout", "10", str(EXECUTABLE), "--data-dir", str(data)],
            env=window_env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 124, result.stdout + result.stderr  # still running when `timeout` ended it
    assert (data / "cadence.sqlite3").is_file()
    assert "Traceback" not in (data / "cadence.log").read_text(encoding="utf-8")
