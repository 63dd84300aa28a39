"""The new-campaign dialog with a large CSV over the REAL runtime and a SQLite file: it shows progress, the
user can stop it, and the event loop keeps turning meanwhile (a 5 ms ticker keeps ticking). How long the loop
may stall is a speed target: benchmarks/gui_scale_bench.py prints it, a timed assertion here is flaky."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import settle_heap, smtp_mailer_for
from cadence.core.model import AccountSettings, CampaignStatus, MessageState
from cadence.core.ports import ProgressiveCampaignCreator
from cadence.qt.dialogs.new_campaign import NewCampaignDialog
from cadence.qt.main_window import MainWindow
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.runtime import Runtime

TICK_S = 0.005
LARGE = 50_000


def leads_csv(count: int) -> bytes:
    lines = ["Email,First name,Last name,Company"]
    lines += [f"lead{i}@company{i % 499}.example,Name{i},Surname{i},Company {i % 499}" for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


class Ticker:
    """The longest wait beyond its own 5 ms between two ticks of a task on the qasync loop, and the longest
    garbage-collector pass meanwhile (it holds the GIL from any thread, so it is the usual culprit)."""

    def __init__(self) -> None:
        self.max_stall = 0.0
        self.ticks = 0
        self.longest_gc = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)
        self._task = asyncio.ensure_future(self._run())

    def _gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.longest_gc = max(self.longest_gc, time.perf_counter() - self._gc_started)

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.max_stall = max(self.max_stall, time.perf_counter() - before - TICK_S)
            self.ticks += 1

    def stop(self, qtbot: Any) -> None:
        gc.callbacks.remove(self._gc)
        self._task.cancel()
        qtbot.waitUntil(self._task.done)
        with contextlib.suppress(asyncio.CancelledError):
            self._task.result()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest.fixture
def account_id(store: SqliteStore) -> int:
    settings = AccountSettings(email="sales@example.test", display_name="Sam", smtp_host="smtp.example.test")
    return store.create_account(settings, now=datetime.now(UTC)).id


@pytest.fixture
def window(
    qtbot: Any, qloop: qasync.QEventLoop, store: SqliteStore, account_id: int, tmp_path: Path
) -> Iterator[MainWindow]:
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for)
    assert isinstance(runtime, ProgressiveCampaignCreator)  # the dialog takes the batched path with Stop
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    main = MainWindow(runtime, window_state=state, use_tray=False)
    main.resize(1280, 800)
    main.show()
    qtbot.waitUntil(lambda: not main.runner.busy, timeout=10_000)
    settle_heap()  # as app.run_gui does once started: a full GC pass over the start-up heap stalls the loop
    yield main
    gc.unfreeze()
    if not main.is_shut_down():
        main.close()
        qtbot.waitUntil(main.is_shut_down, timeout=30_000)
    main.deleteLater()


def _dialog_with_file(qtbot: Any, window: MainWindow, count: int) -> NewCampaignDialog:
    dialog = window.open_new_campaign()
    qtbot.waitUntil(lambda: dialog.account.currentData() is not None)
    with qtbot.waitSignal(dialog.preview_ready, timeout=30_000):
        dialog.load_csv_bytes(leads_csv(count), name="big-fleet.csv")
        assert dialog.progress_row.isVisibleTo(dialog)
        assert dialog.progress_label.text() == "Reading big-fleet.csv…"
    assert not dialog.progress_row.isVisibleTo(dialog)
    return dialog


def test_stopping_while_the_file_is_read_keeps_nothing(qtbot: Any, window: MainWindow) -> None:
    dialog = window.open_new_campaign()
    dialog.load_csv_bytes(leads_csv(LARGE), name="big-fleet.csv")
    assert dialog.progress_row.isVisibleTo(dialog) and dialog.stop_button.isEnabled()
    with qtbot.waitSignal(dialog.import_stopped):
        dialog.stop_button.click()
    assert not dialog.progress_row.isVisibleTo(dialog)
    assert dialog.csv_bytes == b"" and dialog.import_preview is None
    assert dialog.import_summary.text() == "Import stopped. Choose the file again to import it."
    qtbot.wait(300)  # the abandoned parse must not fill the dialog in afterwards
    assert dialog.import_preview is None
    dialog.reject()


def test_a_large_import_shows_progress_can_be_stopped_and_the_loop_keeps_turning(
    qtbot: Any, window: MainWindow, store: SqliteStore
) -> None:
    ticker = Ticker()
    dialog = _dialog_with_file(qtbot, window, LARGE)
    assert dialog.import_summary.text() == f"{LARGE:,} leads ready · no rows skipped"
    seen: list[tuple[int, int]] = []
    dialog.progress_bar.valueChanged.connect(
        lambda value: seen.append((value, dialog.progress_bar.maximum()))
    )
    dialog.create_button.click()
    assert dialog.progress_row.isVisibleTo(dialog)
    qtbot.waitUntil(lambda: any(done > 0 for done, _ in seen), timeout=60_000)
    assert dialog.progress_label.text().startswith("Saving leads…")
    assert dialog.progress_bar.maximum() == LARGE
    with qtbot.waitSignal(dialog.import_stopped, timeout=60_000):
        dialog.stop_button.click()
    ticker.stop(qtbot)

    assert (
        "Import stopped after" in dialog.error.text()
        and "none of them will be emailed" in dialog.error.text()
    )
    assert not dialog.progress_row.isVisibleTo(dialog) and dialog.create_button.isEnabled()
    (campaign,) = store.list_campaigns()
    assert campaign.status is CampaignStatus.FINISHED
    kept = sum(store.count_leads(campaign.id).values())
    assert 0 < kept < LARGE
    counts = store.count_messages()
    assert counts.get(MessageState.PENDING_APPROVAL, 0) == 0 and counts.get(MessageState.APPROVED, 0) == 0
    assert counts.get(MessageState.REJECTED, 0) == kept
    assert ticker.ticks > 50, "the event loop hardly turned while the import ran"
    dialog.reject()


def test_an_import_that_runs_to_the_end_reports_every_lead(
    qtbot: Any, window: MainWindow, store: SqliteStore
) -> None:
    count = 2_500  # two batches
    dialog = _dialog_with_file(qtbot, window, count)
    values: list[int] = []
    dialog.progress_bar.valueChanged.connect(values.append)
    with qtbot.waitSignal(dialog.created, timeout=60_000) as created:
        dialog.create_button.click()
    assert values[-1] == count and values == sorted(values)
    campaign = store.get_campaign(created.args[0])
    assert campaign.status is CampaignStatus.PAUSED
    assert store.count_messages().get(MessageState.PENDING_APPROVAL) == count
    qtbot.waitUntil(lambda: window.queue.model.total == count, timeout=10_000)


def test_a_runtime_without_progressive_create_shows_a_busy_bar_that_cannot_be_stopped(
    qtbot: Any, make_window: Any
) -> None:
    from cadence.services.demo_runtime import DemoRuntime

    runtime = DemoRuntime()
    window = make_window(runtime)
    dialog = window.open_new_campaign()
    with qtbot.waitSignal(dialog.preview_ready):
        dialog.load_csv_bytes(leads_csv(20), name="small.csv")
    before = len(runtime._campaigns)
    with qtbot.waitSignal(dialog.created, timeout=10_000):
        dialog.create_button.click()
        assert dialog.progress_row.isVisibleTo(dialog)
        assert (dialog.progress_bar.minimum(), dialog.progress_bar.maximum()) == (0, 0)
        assert not dialog.stop_button.isEnabled()
        dialog.reject()  # closing while it saves says why it stays open
        assert dialog.isVisible() and "being saved" in dialog.error.text()
    assert len(runtime._campaigns) == before + 1
