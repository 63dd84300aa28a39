"""`cadence screenshots OUTDIR`: render every tab, the settings dialog and the new-campaign dialog to PNG
files at 1280×800 on Qt's offscreen platform, using the in-memory DEMO data set, then exit."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from cadence.cli import ArgumentError

NAME = "screenshots"
HELP = "render every tab and the settings dialog to PNG files (demo data, offscreen) and exit"

SIZE = (1280, 800)

DEMO_CSV = (
    b"Email,First name,Last name,Company,Role\n"
    b"amara.okafor@harborfreight-lines.example,Amara,Okafor,Harbor Freight Lines,Head of Operations\n"
    b"jonas.lindqvist@copperleaf.example,Jonas,Lindqvist,Copperleaf Logistics,Fleet Manager\n"
    b"priya.raman@northgate-coldchain.example,Priya,Raman,Northgate Cold Chain,COO\n"
    b"not-an-address,Mateo,Alvarez,Bluefin Couriers,Dispatcher\n"
    b"hannah.becker@tallpine.example,Hannah,,Tallpine Warehousing,Site Lead\n"
    b"jonas.lindqvist@copperleaf.example,Jonas,Lindqvist,Copperleaf Logistics,Fleet Manager\n"
    b",Kenji,Tanaka,Saltmarsh Shipping,Planner\n"
    b"sofia.marchetti@meridianparcel.example,Sofia,Marchetti,Meridian Parcel\n"
    b"liam.obrien@oakridge-dist.example,Liam,O'Brien,Oakridge Distribution,VP Logistics\n"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", type=Path, help="directory for the PNG files (created if missing)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="device pixel ratio, e.g. 2 for 200 %% scaling"
    )
    parser.add_argument("--dark", action="store_true", help="render with a dark palette")


def run(args: argparse.Namespace) -> int:
    outdir: Path = args.outdir
    if not 0.5 <= args.scale <= 4:
        raise ArgumentError("--scale must be between 0.5 and 4")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArgumentError(f"cannot create {outdir}: {exc.strerror}") from exc
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = f"{args.scale:g}"
    written = render_all(outdir, dark=args.dark)
    for path in written:
        print(path)
    return 0


def render_all(outdir: Path, *, dark: bool = False) -> list[Path]:
    import qasync
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QWidget

    from cadence.core.model import Step
    from cadence.qt.errors import install_excepthook, reset_messages, uninstall_excepthook
    from cadence.qt.main_window import MainWindow
    from cadence.qt.run import make_application
    from cadence.services.demo_runtime import STEP_ONE, STEP_TWO, DemoRuntime

    app = make_application(["cadence"])
    if dark:
        _apply_dark_palette(app)
    install_excepthook()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    written: list[Path] = []
    state_file = outdir / ".window-state.ini"
    windows: list[MainWindow] = []

    async def settle(window: MainWindow) -> None:
        for _ in range(200):
            await asyncio.sleep(0.02)
            window.batcher.flush()
            if not window.runner.busy:
                break
        await asyncio.sleep(0.05)

    def save(widget: QWidget, name: str) -> None:
        path = outdir / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        written.append(path)

    async def shoot(
        paused: bool,
        names: list[tuple[int, str]],
        extra: Callable[[MainWindow], object] | None,
        *,
        pending: int = 37,
    ) -> None:
        runtime = DemoRuntime(paused=paused, pending=pending)
        window = MainWindow(
            runtime,
            window_state=QSettings(str(state_file), QSettings.Format.IniFormat),
            now=runtime.now,
            use_tray=False,
        )
        windows.append(window)
        window.resize(*SIZE)
        window.show()
        await settle(window)
        for index, name in names:
            window.tabs.setCurrentIndex(index)
            if index == 1 and window.queue.proxy.rowCount():
                window.queue.table.selectRow(1)
                window.queue.table.setFocus()
            await settle(window)
            save(window, name)
        if extra is not None:
            result = extra(window)
            if asyncio.iscoroutine(result):
                await result
        window.close()
        for _ in range(100):
            if window.is_shut_down():
                break
            await asyncio.sleep(0.02)

    async def dialogs(window: MainWindow) -> None:
        settings = await window.runtime.get_account_settings(1)
        dialog = window._show_settings(settings)
        await settle(window)
        save(dialog, "settings-mailbox")
        dialog.tabs.setCurrentIndex(1)
        await settle(window)
        save(dialog, "settings-limits")
        dialog.tabs.setCurrentIndex(2)
        await settle(window)
        save(dialog, "settings-safety")
        dialog.reject()
        new = window.open_new_campaign()
        new.steps = [
            Step(
                1,
                STEP_ONE.subject,
                STEP_ONE.body.replace("Would a", "Our fleet report: https://fieldnote.example/r\n\nWould a"),
            ),
            STEP_TWO,
        ]
        new._refresh_step_list(0)
        new.load_csv_bytes(DEMO_CSV, name="expo-leads-november.csv")
        await settle(window)
        save(new, "new-campaign-leads")
        new.tabs.setCurrentIndex(1)
        await settle(window)
        save(new, "new-campaign-steps")
        new.tabs.setCurrentIndex(2)
        await settle(window)
        await asyncio.sleep(0.4)
        await settle(window)
        save(new, "new-campaign-preview")
        new.reject()
        window.tabs.setCurrentIndex(1)
        window.queue.table.selectRow(0)
        window.queue.table.setFocus()
        window.queue.edit_selected()
        await settle(window)
        if window.queue._dialog is not None:
            save(window.queue._dialog, "edit-draft")
            window.queue._dialog.reject()
        window.banners.show_message(
            "error", "Could not reach smtp.fieldnote-analytics.example: connection refused."
        )
        window.tabs.setCurrentIndex(1)
        await settle(window)
        save(window, "banner-error")

    async def main() -> None:
        await shoot(
            False,
            [(0, "campaigns"), (1, "queue"), (2, "suppression"), (3, "deliverability"), (4, "activity")],
            dialogs,
        )
        await shoot(True, [(3, "deliverability-paused")], None)
        await shoot(False, [(1, "queue-empty")], None, pending=0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
        for window in windows:
            window.deleteLater()
        windows.clear()
        app.processEvents()
        reset_messages()
        uninstall_excepthook()
        state_file.unlink(missing_ok=True)
        app.shutdown()
    return written


def _apply_dark_palette(app: object) -> None:
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    assert isinstance(app, QApplication)
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e8e8e8",
        QPalette.ColorRole.Base: "#1f1f1f",
        QPalette.ColorRole.AlternateBase: "#262626",
        QPalette.ColorRole.Text: "#e8e8e8",
        QPalette.ColorRole.Button: "#333333",
        QPalette.ColorRole.ButtonText: "#e8e8e8",
        QPalette.ColorRole.Highlight: "#4a78d0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.PlaceholderText: "#9a9a9a",
        QPalette.ColorRole.ToolTipBase: "#333333",
        QPalette.ColorRole.ToolTipText: "#e8e8e8",
        QPalette.ColorRole.Mid: "#555555",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    app.setPalette(palette)
