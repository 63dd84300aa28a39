"""Where the shipped resources (icons, …) are: inside a PyInstaller bundle, or in the source checkout.

The resources/ folder stays at the top of the repository; packaging/cadence.spec copies it into the bundle
as `resources/`. No Qt here: the self-check and the CLI use it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

ICON_NAME = "cadence"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)


def _candidates() -> list[Path]:
    found: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if isinstance(bundle, str):
        found.append(Path(bundle) / "resources")
    found.append(Path(__file__).resolve().parents[2] / "resources")  # desktop/cadence/ → repository root
    return found


def resources_dir() -> Path | None:
    """The resources folder holding icons/, or None when this installation has none (a bare wheel)."""
    for candidate in _candidates():
        if (candidate / "icons").is_dir():
            return candidate
    return None


def icon_path(*, size: int | None = None) -> Path | None:
    """The app icon: the SVG by default, or the PNG of one of ICON_SIZES; None if it is not installed."""
    if size is not None and size not in ICON_SIZES:
        raise ValueError(f"no {size} px icon; sizes are {', '.join(map(str, ICON_SIZES))}")
    folder = resources_dir()
    if folder is None:
        return None
    name = f"{ICON_NAME}.svg" if size is None else f"{ICON_NAME}-{size}.png"
    path = folder / "icons" / name
    return path if path.is_file() else None
