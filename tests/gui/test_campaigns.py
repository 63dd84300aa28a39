"""Campaigns: the list and detail, start / pause, and the new-campaign dialog's CSV import."""

from __future__ import annotations

from typing import Any

import pytest

from cadence.core.views import CampaignStatus
from cadence.services.demo_runtime import DemoRuntime

pytestmark = pytest.mark.gui

BAD_CSV = (
    b"Email,First name,Company\n"
    b"ada@lovelace-engines.example,Ada,Lovelace Engines\n"
    b"not an address,Bob,Nowhere\n"
    b",Carla,Blank Ltd\n"
    b"ada@lovelace-engines.example,Ada,Lovelace Engines\n"
    b"dan@extra-column.example,Dan,Extra,Column\n"
    b"erin@fine-foods.example,Erin,Fine Foods\n"
)


def test_import_with_bad_rows_shows_each_reason(qtbot: Any, make_window: Any) -> None:
    window = make_window(DemoRuntime())
    dialog = window.open_new_campaign()
    with qtbot.waitSignal(dialog.preview_ready):
        dialog.load_csv_bytes(BAD_CSV, name="trade-fair.csv")
    reasons = {int(line): reason for line, reason, _raw in dialog.skipped_model.records}
    assert reasons == {
        3: "not a valid address: 'not an address'",
        4: "no email address",
        5: "duplicate of line 2",
        6: "4 values for 3 columns",
    }
    assert dialog.skipped_box.isVisibleTo(dialog)
    assert dialog.import_summary.text() == "2 leads ready · 4 rows skipped"
    assert [r[0] for r in dialog.rows_model.records] == [
        "ada@lovelace-engines.example",
        "erin@fine-foods.example",
    ]
    assert dialog.name.text() == "Trade fair"
    dialog.reject()


def test_remapping_a_column_reruns_the_preview(qtbot: Any, make_window: Any) -> None:
    window = make_window(DemoRuntime())
    dialog = window.open_new_campaign()
    with qtbot.waitSignal(dialog.preview_ready):
        dialog.load_csv_bytes(BAD_CSV)
    combo = dialog.mapping_combos["Email"]
    with qtbot.waitSignal(dialog.preview_ready):
        combo.setCurrentIndex(combo.findData(""))
    assert dialog.import_preview is not None and dialog.import_preview.accepted == 0
    assert "No column is mapped to Email" in dialog.import_warnings.text()
    dialog.reject()


def test_preview_renders_merge_fields_and_create_adds_the_campaign(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    dialog = window.open_new_campaign()
    with qtbot.waitSignal(dialog.preview_ready):
        dialog.load_csv_bytes(BAD_CSV)
    dialog.tabs.setCurrentIndex(1)
    dialog.subject.setText("Hello {first_name} at {company}")
    dialog.subject.textEdited.emit(dialog.subject.text())
    dialog.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: dialog.rendered_subject.text() == "Hello Ada at Lovelace Engines")
    assert "No opt-out line" not in dialog.risks.text()
    dialog.preview_lead.setCurrentIndex(1)
    qtbot.waitUntil(lambda: dialog.rendered_subject.text() == "Hello Erin at Fine Foods")
    before = len(runtime._campaigns)
    dialog.create_button.click()
    qtbot.waitUntil(lambda: len(runtime._campaigns) == before + 1)
    qtbot.waitUntil(lambda: window.campaigns.model.rowCount() == before + 1)
    qtbot.waitUntil(lambda: not dialog.isVisible())


def test_create_refuses_without_leads(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    dialog = window.open_new_campaign()
    dialog.name.setText("Empty")
    dialog.create_button.click()
    assert dialog.error.isVisible() and "CSV file" in dialog.error.text()
    assert "create_campaign" not in runtime.calls
    dialog.reject()


def test_pause_and_resume_a_campaign(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    window = make_window(runtime)
    tab = window.campaigns
    qtbot.waitUntil(lambda: tab.detail.campaign is not None)
    assert tab.detail.campaign.status is CampaignStatus.RUNNING
    assert tab.detail.pause_button.isEnabled() and not tab.detail.start_button.isEnabled()
    tab.detail.pause_button.click()
    qtbot.waitUntil(lambda: tab.detail.campaign.status is CampaignStatus.PAUSED)
    assert tab.detail.start_button.text() == "Res&ume"
    tab.detail.start_button.click()
    qtbot.waitUntil(lambda: tab.detail.campaign.status is CampaignStatus.RUNNING)
    assert runtime.calls[-2:] == ["pause_campaign", "start_campaign"]
