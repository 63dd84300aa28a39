"""Render resources/icons/cadence.svg to the PNG sizes desktops ask for (16 … 512 px).

    .venv/bin/python packaging/render_icons.py           write resources/icons/cadence-<size>.png
    .venv/bin/python packaging/render_icons.py --check   exit 1 if a PNG is missing or differs from the SVG

Rendering uses Qt's own SVG renderer (PySide6.QtSvg), so the PNGs are reproducible with the pinned PySide6.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
SVG_PATH = ICON_DIR / "cadence.svg"
SIZES = (16, 32, 48, 64, 128, 256, 512)


def png_path(size: int, *, directory: Path = ICON_DIR) -> Path:
    return directory / f"cadence-{size}.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(SVG_PATH))
    if not renderer.isValid():
        print(f"render_icons: {SVG_PATH} is not a valid SVG", file=sys.stderr)
        return 1
    stale: list[str] = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        image = image.convertToFormat(QImage.Format.Format_ARGB32)
        target = png_path(size)
        if args.check:
            existing = QImage(str(target))
            if existing.isNull() or existing.convertToFormat(QImage.Format.Format_ARGB32) != image:
                stale.append(target.name)
        elif not image.save(str(target)):
            print(f"render_icons: could not write {target}", file=sys.stderr)
            return 1
    del app
    if stale:
        print(
            f"render_icons: out of date: {', '.join(stale)}; run packaging/render_icons.py", file=sys.stderr
        )
        return 1
    print(f"render_icons: {'checked' if args.check else 'wrote'} {len(SIZES)} PNGs in {ICON_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
