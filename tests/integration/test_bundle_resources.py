"""What the bundle ships besides code: the icon set, its lookup at run time, and the Linux desktop files."""

from __future__ import annotations

import configparser
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cadence import resources
from tests.integration.cli_harness import REPO

LINUX = REPO / "packaging" / "linux"
DESKTOP_ID = "io.github.cadence_outreach.Cadence"
DESKTOP_FILE = LINUX / f"{DESKTOP_ID}.desktop"
METAINFO_FILE = LINUX / f"{DESKTOP_ID}.metainfo.xml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_source_checkout_finds_the_svg_and_every_png_size() -> None:
    svg = resources.icon_path()
    assert svg == REPO / "resources" / "icons" / "cadence.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    for size in resources.ICON_SIZES:
        png = resources.icon_path(size=size)
        assert png is not None, f"no {size} px icon"
        assert _png_size(png) == (size, size)


def test_an_unknown_icon_size_is_refused() -> None:
    with pytest.raises(ValueError, match="no 20 px icon"):
        resources.icon_path(size=20)


def test_the_bundle_folder_wins_over_the_source_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    icons = tmp_path / "resources" / "icons"
    icons.mkdir(parents=True)
    (icons / "cadence.svg").write_text("<svg/>")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)

    assert resources.resources_dir() == tmp_path / "resources"
    assert resources.icon_path() == icons / "cadence.svg"
    assert resources.icon_path(size=16) is None  # that bundle has no PNGs


def test_the_pngs_are_the_svg_rendered_by_the_render_script() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "render_icons.py"), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_desktop_entry_names_the_app_icon_and_categories() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(DESKTOP_FILE, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Icon"] == DESKTOP_ID
    assert section["Exec"].split()[0] == "cadence"
    assert section["Categories"] == "Office;Network;Email;"


def test_metainfo_id_licence_and_launchable_match_the_desktop_file() -> None:
    root = ET.parse(METAINFO_FILE).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == DESKTOP_ID
    assert "-" not in DESKTOP_ID  # AppStream discourages hyphens in component ids
    assert root.findtext("project_license") == "GPL-3.0-or-later"
    assert root.findtext("launchable") == DESKTOP_FILE.name
    assert (root.findtext("description/p") or "").strip()


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="Debian package desktop-file-utils")
def test_desktop_file_validates() -> None:
    result = subprocess.run(["desktop-file-validate", str(DESKTOP_FILE)], capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if "error:" in line or "warning:" in line]
    assert result.returncode == 0 and not errors, result.stdout


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="Debian package appstream")
def test_metainfo_validates() -> None:
    result = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(METAINFO_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
