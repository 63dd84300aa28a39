"""Campaigns: the list on the left, the selected campaign's numbers, steps and controls on the right."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.qt import fmt
from cadence.qt.context import WindowContext
from cadence.qt.models.paged import ROW_ROLE, Column, PagedTableModel, SortProxy
from cadence.qt.theme import Level, LevelColors, level_color
from cadence.qt.widgets.common import EmptyState, StatTile, heading, muted, setup_table

STATUS_TEXT = {
    v.CampaignStatus.DRAFT: "Not started",
    v.CampaignStatus.RUNNING: "Running",
    v.CampaignStatus.PAUSED: "Paused",
    v.CampaignStatus.FINISHED: "Finished",
}
STATUS_LEVEL = {
    v.CampaignStatus.DRAFT: Level.NONE,
    v.CampaignStatus.RUNNING: Level.OK,
    v.CampaignStatus.PAUSED: Level.WARN,
    v.CampaignStatus.FINISHED: Level.NONE,
}


def _share(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f} % of sent" if whole else ""


class CampaignDetail(QWidget):
    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.campaign: v.CampaignSummary | None = None
        self.name = heading("", scale=1.4)
        self.name.setWordWrap(True)
        self.status = QLabel()
        self.meta = muted()
        self.tiles = {
            key: StatTile(caption)
            for key, caption in (
                ("leads", "Leads"),
                ("sent", "Sent"),
                ("replied", "Replied"),
                ("bounced", "Bounced"),
                ("unsubscribed", "Unsubscribed"),
                ("held", "Held for approval"),
            )
        }
        grid = QGridLayout()
        grid.setSpacing(8)
        for i, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, i // 3, i % 3)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.finish = QLabel()
        self.finish.setWordWrap(True)
        self.steps_title = heading("Steps", scale=1.05)
        self.steps = QLabel()
        self.steps.setWordWrap(True)
        self.steps.setTextFormat(Qt.TextFormat.PlainText)
        self.steps.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.start_button = QPushButton("&Start")
        self.pause_button = QPushButton("&Pause")
        self.start_button.clicked.connect(self._start)
        self.pause_button.clicked.connect(self._pause)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.pause_button)
        buttons.addStretch(1)
        title_row = QHBoxLayout()
        title_row.addWidget(self.name, 1)
        title_row.addWidget(self.status, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(title_row)
        layout.addWidget(self.meta)
        layout.addSpacing(6)
        layout.addLayout(grid)
        layout.addSpacing(6)
        layout.addWidget(self.progress)
        layout.addWidget(self.finish)
        layout.addSpacing(6)
        layout.addWidget(self.steps_title)
        layout.addWidget(self.steps)
        layout.addStretch(1)
        layout.addLayout(buttons)

    def set_campaign(self, campaign: v.CampaignSummary) -> None:
        self.campaign = campaign
        now = self.ctx.now()
        self.name.setText(campaign.name)
        self.status.setText(f"● {STATUS_TEXT[campaign.status]}")
        palette = self.status.palette()
        palette.setColor(self.status.foregroundRole(), level_color(STATUS_LEVEL[campaign.status]))
        self.status.setPalette(palette)
        self.meta.setText(f"From {campaign.account_email} · created {fmt.day_text(campaign.created_at)}")
        tiles = self.tiles
        tiles["leads"].set_value(f"{campaign.leads:,}")
        tiles["sent"].set_value(f"{campaign.sent:,}", sub=f"{campaign.sent} of {campaign.leads} leads")
        tiles["replied"].set_value(f"{campaign.replied:,}", sub=_share(campaign.replied, campaign.sent))
        bounce_rate = campaign.bounced / campaign.sent if campaign.sent else 0.0
        tiles["bounced"].set_value(
            f"{campaign.bounced:,}",
            sub=_share(campaign.bounced, campaign.sent),
            color=level_color(Level.BAD) if bounce_rate >= 0.05 else None,
        )
        tiles["unsubscribed"].set_value(
            f"{campaign.unsubscribed:,}", sub=_share(campaign.unsubscribed, campaign.sent)
        )
        tiles["held"].set_value(
            f"{campaign.held:,}",
            color=level_color(Level.WARN) if campaign.held else None,
            sub="see Approval queue",
        )
        self.progress.setRange(0, max(1, campaign.leads))
        self.progress.setValue(min(campaign.sent, campaign.leads))
        self.progress.setFormat(f"{campaign.sent:,} of {campaign.leads:,} leads contacted")
        if campaign.status is v.CampaignStatus.RUNNING and campaign.finish_estimate is not None:
            self.finish.setText(
                f"At today's pace the last step goes out around {fmt.day_text(campaign.finish_estimate)} "
                f"({fmt.until(campaign.finish_estimate, now)})."
            )
        elif campaign.status is v.CampaignStatus.RUNNING:
            note = campaign.finish_note or "nothing is waiting to be sent"
            self.finish.setText(f"Finish date: {note}")
        elif campaign.status is v.CampaignStatus.PAUSED:
            self.finish.setText(campaign.paused_reason or "Paused: nothing is sent until you resume.")
        elif campaign.status is v.CampaignStatus.FINISHED:
            self.finish.setText(
                "Every lead has finished the sequence or stopped (reply, bounce, unsubscribe)."
            )
        else:
            self.finish.setText("Not started. Start it when the steps and leads look right.")
        lines = []
        for step in campaign.steps:
            when = "first" if step.index == 1 else f"{step.delay_days:g} days after step {step.index - 1}"
            lines.append(f"{step.index}.  {step.subject}   ({when})")
        self.steps.setText("\n".join(lines) or "No steps yet.")
        running = campaign.status is v.CampaignStatus.RUNNING
        finished = campaign.status is v.CampaignStatus.FINISHED
        self.start_button.setText("Res&ume" if campaign.status is v.CampaignStatus.PAUSED else "&Start")
        self.start_button.setEnabled(not running and not finished)
        self.pause_button.setEnabled(running)

    def _start(self) -> None:
        if self.campaign is not None:
            name = self.campaign.name
            self.ctx.runner.run(
                self.ctx.runtime.start_campaign(self.campaign.id),
                on_success=lambda _r: self.ctx.messages.info(f"“{name}” is running."),
            )

    def _pause(self) -> None:
        if self.campaign is not None:
            name = self.campaign.name
            self.ctx.runner.run(
                self.ctx.runtime.pause_campaign(self.campaign.id),
                on_success=lambda _r: self.ctx.messages.info(f"“{name}” is paused."),
            )


class CampaignsTab(QWidget):
    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.colors = LevelColors()
        columns = [
            Column("Campaign", lambda c: c.name),
            Column(
                "Status",
                lambda c: STATUS_TEXT[c.status],
                foreground=lambda c: (
                    self.colors[STATUS_LEVEL[c.status]] if c.status is not v.CampaignStatus.DRAFT else None
                ),
            ),
            Column("Leads", lambda c: f"{c.leads:,}", sort_key=lambda c: c.leads, align_right=True),
            Column("Sent", lambda c: f"{c.sent:,}", sort_key=lambda c: c.sent, align_right=True),
            Column("Replied", lambda c: f"{c.replied:,}", sort_key=lambda c: c.replied, align_right=True),
            Column("Bounced", lambda c: f"{c.bounced:,}", sort_key=lambda c: c.bounced, align_right=True),
            Column(
                "Unsub.",
                lambda c: f"{c.unsubscribed:,}",
                sort_key=lambda c: c.unsubscribed,
                align_right=True,
                header_tip="Unsubscribed",
            ),
            Column(
                "Held",
                lambda c: f"{c.held:,}",
                sort_key=lambda c: c.held,
                align_right=True,
                header_tip="Drafts waiting for approval",
            ),
            Column(
                "Finishes",
                lambda c: fmt.day_text(c.finish_estimate) if c.finish_estimate else (c.finish_note or "—"),
                sort_key=lambda c: c.finish_estimate.timestamp() if c.finish_estimate else 0,
            ),
        ]

        async def no_fetch(offset: int, limit: int) -> list[v.CampaignSummary]:
            return []

        async def no_count() -> int:
            return 0

        self.model = PagedTableModel(columns, fetch=no_fetch, count=no_count, runner=ctx.runner, parent=self)
        self.proxy = SortProxy(self.model, self)
        self.table = QTableView()
        setup_table(self.table, name="campaignsTable", accessible="Campaigns")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        em = self.fontMetrics().height()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, header.ResizeMode.Stretch)
        for column, width in enumerate((14, 6, 3.6, 3.6, 4.4, 4.6, 4, 3.4, 6)):
            if column:
                self.table.setColumnWidth(column, int(em * width))
        ctx.restore_header("campaigns", header)

        self.new_button = QPushButton("&New campaign…")
        self.new_button.setToolTip("Import leads from CSV, write the steps, check the preview")
        top = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(heading("Campaigns"))
        self.summary = muted(wrap=False)
        titles.addWidget(self.summary)
        top.addLayout(titles, 1)
        top.addWidget(self.new_button, 0, Qt.AlignmentFlag.AlignBottom)

        self.detail = CampaignDetail(ctx)
        detail_frame = QFrame()
        detail_frame.setFrameShape(QFrame.Shape.StyledPanel)
        QVBoxLayout(detail_frame).addWidget(self.detail)
        self.detail_empty = EmptyState(
            "No campaign selected", "Select a campaign to see its numbers and steps."
        )
        self.detail_stack = QStackedWidget()
        self.detail_stack.addWidget(self.detail_empty)
        self.detail_stack.addWidget(detail_frame)
        self.list_empty = EmptyState(
            "No campaigns yet",
            "Create one with New campaign…: import leads from a CSV file and write the steps.",
        )
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.table)
        self.list_stack.addWidget(self.list_empty)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.list_stack)
        self.splitter.addWidget(self.detail_stack)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([int(em * 46), int(em * 30)])
        ctx.restore_splitter("campaigns", self.splitter)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)

        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        ctx.bridge.campaigns_changed.connect(lambda: ctx.batcher.mark("campaigns"))
        ctx.batcher.register("campaigns", self.load)
        self._selected_id: int | None = None

    def load(self) -> None:
        self.ctx.runner.run(self.ctx.runtime.list_campaigns(), on_success=self.set_campaigns)

    def save_state(self) -> None:
        self.ctx.save_header("campaigns", self.table.horizontalHeader())
        self.ctx.save_splitter("campaigns", self.splitter)

    def set_campaigns(self, campaigns: list[v.CampaignSummary]) -> None:
        keep = self._selected_id
        self.model.set_rows(campaigns)
        self.list_stack.setCurrentWidget(self.table if campaigns else self.list_empty)
        running = sum(1 for c in campaigns if c.status is v.CampaignStatus.RUNNING)
        self.summary.setText(f"{fmt.count(len(campaigns), 'campaign')} · {running} running")
        row = self.model.row_of_key(keep) if keep is not None else None
        if row is None and campaigns:
            row = 0
        if row is not None:
            proxy_row = self.proxy.mapFromSource(self.model.index(row, 0)).row()
            self.table.selectRow(proxy_row)
        else:
            self.detail_stack.setCurrentWidget(self.detail_empty)

    def _current_changed(self, current: object, _previous: object) -> None:
        index = self.table.currentIndex()
        campaign = index.data(ROW_ROLE) if index.isValid() else None
        if campaign is None:
            self.detail_stack.setCurrentIndex(0)
            return
        self._selected_id = campaign.id
        self.detail.set_campaign(campaign)
        self.detail_stack.setCurrentIndex(1)
