"""How long the approval queue takes to open with 100,000 pending drafts (target: ≤ 1 s).

Measures, on the offscreen platform with the in-memory demo runtime: building the main window, and the time
from show() until the queue tab shows its first page and the badge shows the full count. Prints figures.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/queue_open.py [--drafts 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drafts", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import qasync
    from PySide6.QtCore import QSettings

    from cadence.qt.main_window import MainWindow
    from cadence.qt.run import make_application
    from cadence.services.demo_runtime import DemoRuntime

    app = make_application(["bench"])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    started = time.perf_counter()
    runtime = DemoRuntime(pending=args.drafts)
    generated = time.perf_counter() - started
    state = QSettings(str(Path(tempfile.mkdtemp()) / "state.ini"), QSettings.Format.IniFormat)

    async def measure() -> None:
        t0 = time.perf_counter()
        window = MainWindow(runtime, window_state=state, now=runtime.now, use_tray=False)
        window.resize(1280, 800)
        window.tabs.setCurrentWidget(window.queue)
        built = time.perf_counter() - t0
        t1 = time.perf_counter()
        window.show()
        while window.queue.model.rowCount() == 0:
            await asyncio.sleep(0.001)
        opened = time.perf_counter() - t1
        t2 = time.perf_counter()
        window.queue.table.scrollToBottom()
        while window.queue.model.rowCount() < 2 * window.queue.model.page_size:
            await asyncio.sleep(0.001)
        page = time.perf_counter() - t2
        print(
            f"drafts in the demo store:        {args.drafts:,} (generated in {generated:.2f} s, not counted)"
        )
        print(f"window built:                    {built * 1000:.0f} ms")
        print(
            f"show() → first page on screen:   {opened * 1000:.0f} ms "
            f"(rows loaded: {window.queue.model.rowCount()})"
        )
        print(f"scroll to bottom → next page:    {page * 1000:.0f} ms")
        print(f"total open (build + first page): {(built + opened) * 1000:.0f} ms (target ≤ 1000 ms)")
        print(f"badge: {window.tabs.tabText(window.tabs.indexOf(window.queue)).replace('&', '')}")
        window.close()
        while not window.is_shut_down():
            await asyncio.sleep(0.01)
        window.deleteLater()

    loop.run_until_complete(measure())
    loop.close()
    app.processEvents()
    app.shutdown()


if __name__ == "__main__":
    main()
