"""Deliverability: bounce gauges against the breaker, cap usage, warm-up, pause banner with Resume,
deferred messages, a per-day chart and the domain-health checklist. Redraws are batched."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSeries,
    QBarSet,
    QChart,
    QChartView,
    QLineSeries,
    QValueAxis,
)
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cadence.core import views as v
from cadence.qt import fmt
from cadence.qt.context import WindowContext
from cadence.qt.tabs.in_doubt import InDoubtPanel
from cadence.qt.theme import Level, level_color
from cadence.qt.widgets.cap_bar import CapBar
from cadence.qt.widgets.common import heading, muted, setup_table
from cadence.qt.widgets.gauge import BounceGauge

Index = QModelIndex | QPersistentModelIndex

CHECK_MARK = {
    v.CheckState.PASS: ("✔", Level.OK),
    v.CheckState.WARN: ("!", Level.WARN),
    v.CheckState.FAIL: ("✖", Level.BAD),
    v.CheckState.UNKNOWN: ("?", Level.NONE),
}


class DeferredModel(QAbstractTableModel):
    HEADERS = ("To", "Why", "Next attempt", "Detail")

    def __init__(self, now: object, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: tuple[v.DeferredMessage, ...] = ()
        self._now = now

    def set_items(self, items: tuple[v.DeferredMessage, ...]) -> None:
        self.beginResetModel()
        self.items = items
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            now = self._now() if callable(self._now) else None
            attempts = f" (attempt {item.attempts})" if item.attempts > 1 else ""
            return (
                item.recipient,
                fmt.DEFER_TEXT.get(item.reason, item.reason.value) + attempts,
                fmt.clock_time(item.next_attempt, now=now),
                item.detail,
            )[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{item.recipient}\n{item.subject}\n{item.detail}".strip()
        return None


class PauseBanner(QFrame):
    resume_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pauseBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        texts = QVBoxLayout()
        self.title = heading("Sending is paused", scale=1.1)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.persists = QLabel()
        self.persists.setWordWrap(True)
        texts.addWidget(self.title)
        texts.addWidget(self.reason)
        texts.addWidget(self.persists)
        layout.addLayout(texts, 1)
        self.resume_button = QPushButton("Res&ume sending")
        self.resume_button.clicked.connect(self.resume_requested)
        layout.addWidget(self.resume_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.pause: v.PauseState | None = None

    def set_pause(self, pause: v.PauseState | None, now: datetime) -> None:
        self.pause = pause
        self.setVisible(pause is not None)
        if pause is None:
            return
        accent = level_color(Level.BAD if pause.automatic else Level.WARN, self.palette())
        base = self.palette().color(QPalette.ColorRole.Base)
        tint = QColor(
            (accent.red() * 22 + base.red() * 78) // 100,
            (accent.green() * 22 + base.green() * 78) // 100,
            (accent.blue() * 22 + base.blue() * 78) // 100,
        )
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, tint)
        self.setPalette(palette)
        self.setStyleSheet(
            f"#pauseBanner {{ border: 1px solid {accent.name()}; border-radius: 4px; "
            f"background-color: {tint.name()}; }}"
        )
        who = "automatically" if pause.automatic else "by you"
        scope = "all accounts" if pause.scope is v.PauseScope.ALL else "this account"
        self.title.setText(f"Sending is paused for {scope}")
        since = f"Paused {who} at {fmt.clock_time(pause.since, now=now)}"
        if pause.until is not None:
            since += f", until {fmt.clock_time(pause.until, now=now)}"
        self.reason.setText(f"{pause.reason}\n{since}.")
        self.persists.setVisible(pause.cause_persists)
        self.persists.setText(
            "⚠ The cause is still there: " + (pause.cause_detail or "resuming may pause again.")
        )
        self.setAccessibleName(f"Sending paused: {pause.reason}")


class DeliverabilityTab(QWidget):
    def __init__(self, ctx: WindowContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.view: v.DeliverabilityView | None = None
        em = self.fontMetrics().height()

        self.pause_banner = PauseBanner()
        self.pause_banner.hide()
        self.pause_banner.resume_requested.connect(self.request_resume)
        self.in_doubt = InDoubtPanel(ctx)

        self.gauge_24h = BounceGauge("Bounces, last 24 h")
        self.gauge_7d = BounceGauge("Bounces, last 7 days")
        gauges = QGroupBox("Bounce rate")
        gauges_layout = QHBoxLayout(gauges)
        gauges_layout.addWidget(self.gauge_24h)
        gauges_layout.addWidget(self.gauge_7d)

        self.caps_box = QGroupBox("Caps")
        self.caps_layout = QVBoxLayout(self.caps_box)
        self.day_bar = CapBar()
        self.hour_bar = CapBar()
        self.caps_layout.addWidget(self.day_bar)
        self.caps_layout.addWidget(self.hour_bar)
        self.domains_title = muted("Per domain today", wrap=False)
        self.caps_layout.addWidget(self.domains_title)
        self.domain_bars: list[CapBar] = []
        self.domains_holder = QVBoxLayout()
        self.caps_layout.addLayout(self.domains_holder)
        self.caps_layout.addStretch(1)

        self.warmup_box = QGroupBox("Warm-up")
        warm = QVBoxLayout(self.warmup_box)
        self.warmup_bar = QProgressBar()
        self.warmup_bar.setTextVisible(True)
        self.warmup_label = QLabel()
        self.warmup_label.setWordWrap(True)
        warm.addWidget(self.warmup_label)
        warm.addWidget(self.warmup_bar)
        warm.addStretch(1)

        self.health_box = QGroupBox("Domain health")
        self.health_layout = QGridLayout(self.health_box)
        self.health_layout.setColumnStretch(2, 1)

        top = QHBoxLayout()
        top.addWidget(gauges, 0)
        top.addWidget(self.caps_box, 1)
        side = QVBoxLayout()
        side.addWidget(self.warmup_box)
        side.addWidget(self.health_box, 1)
        top.addLayout(side, 1)

        self.chart = QChart()
        self.chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        self.chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.chart.setBackgroundVisible(False)
        self.chart.setMargins(self.chart.margins().__class__(4, 4, 4, 4))
        self.chart_view = QChartView(self.chart)
        self.chart_view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.chart_view.setMinimumHeight(int(em * 12))
        self.chart_view.setAccessibleName("Sends, bounces, replies and unsubscribes per day")
        chart_box = QGroupBox("Per day, last 14 days")
        QVBoxLayout(chart_box).addWidget(self.chart_view)

        self.deferred_model = DeferredModel(ctx.now, self)
        self.deferred_table = QTableView()
        setup_table(self.deferred_table, name="deferredTable", accessible="Deferred messages")
        self.deferred_table.setModel(self.deferred_model)
        self.deferred_table.horizontalHeader().setStretchLastSection(True)
        for column, width in enumerate((13, 11, 7.5)):
            self.deferred_table.setColumnWidth(column, int(em * width))
        ctx.restore_header("deferred", self.deferred_table.horizontalHeader())
        self.deferred_table.setMinimumHeight(int(em * 7))
        self.deferred_table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.deferred_box = QGroupBox("Deferred")
        deferred_layout = QVBoxLayout(self.deferred_box)
        self.deferred_empty = muted("Nothing deferred: every due message went out on time.")
        deferred_layout.addWidget(self.deferred_empty)
        deferred_layout.addWidget(self.deferred_table)

        bottom = QHBoxLayout()
        bottom.addWidget(chart_box, 1)
        bottom.addWidget(self.deferred_box, 1)

        content = QWidget()
        layout = QVBoxLayout(content)
        self.account_label = muted(wrap=False)
        layout.addWidget(self.account_label)
        layout.addWidget(self.pause_banner)
        layout.addWidget(self.in_doubt)
        layout.addLayout(top)
        layout.addLayout(bottom, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        ctx.bridge.deliverability_changed.connect(lambda: ctx.batcher.mark("deliverability"))
        ctx.bridge.status_changed.connect(lambda _s: ctx.batcher.mark("deliverability"))
        ctx.batcher.register("deliverability", self.load)
        self._confirm: QMessageBox | None = None
        # the sending domain's SPF / DKIM / DMARC, looked up once per account and session (DNS is slow)
        self.domain_checks: dict[str, tuple[v.HealthCheck, ...]] = {}
        self._checking: set[str] = set()

    def save_state(self) -> None:
        self.ctx.save_header("deferred", self.deferred_table.horizontalHeader())

    def load(self) -> None:
        self.ctx.runner.run(self.ctx.runtime.deliverability(), on_success=self.set_view)
        self.in_doubt.load()

    def set_view(self, view: v.DeliverabilityView) -> None:
        self.view = view
        now = self.ctx.now()
        self.account_label.setText(f"Account: {view.account_email}" if view.account_email else "")
        self.pause_banner.set_pause(view.pause, now)
        self.gauge_24h.set_sample(
            view.bounce_24h, breaker=view.breaker_rate, min_sample=view.breaker_min_sample
        )
        self.gauge_7d.set_sample(
            view.bounce_7d, breaker=view.breaker_rate, min_sample=view.breaker_min_sample
        )
        if view.caps:
            self.day_bar.set_usage(view.caps[0])
        self.hour_bar.setVisible(len(view.caps) > 1)
        if len(view.caps) > 1:
            self.hour_bar.set_usage(view.caps[1])
        for bar in self.domain_bars:
            bar.deleteLater()
        self.domain_bars = []
        for usage in view.domain_caps:
            bar = CapBar(usage)
            self.domains_holder.addWidget(bar)
            self.domain_bars.append(bar)
        self.domains_title.setVisible(bool(view.domain_caps))
        warm = view.warmup
        if warm.enabled:
            self.warmup_label.setText(
                f"Day {warm.day} of {warm.days_total}: up to {warm.today_cap} today, "
                f"rising to {warm.target_cap}/day."
            )
            self.warmup_bar.setRange(0, max(1, warm.days_total))
            self.warmup_bar.setValue(min(warm.day, warm.days_total))
            self.warmup_bar.setFormat(f"day {warm.day} / {warm.days_total}")
            self.warmup_bar.show()
        else:
            self.warmup_label.setText("Warm-up is off: the daily cap applies from the first day.")
            self.warmup_bar.hide()
        self._set_health(self._health_for(view))
        self._set_chart(view.daily)
        self.deferred_model.set_items(view.deferred)
        self.deferred_table.setVisible(bool(view.deferred))
        self.deferred_empty.setVisible(not view.deferred)
        self.deferred_box.setTitle(f"Deferred ({len(view.deferred)})" if view.deferred else "Deferred")

    def _health_for(self, view: v.DeliverabilityView) -> tuple[v.HealthCheck, ...]:
        """The view's checks, or when it has none yet the sending domain's DNS checked once (in the
        background: the checklist fills in when the answers arrive)."""
        email = view.account_email
        if not email or any(check.state is not v.CheckState.UNKNOWN for check in view.health):
            return view.health
        checked = self.domain_checks.get(email)
        if checked is not None:
            return checked
        if email not in self._checking:
            self._checking.add(email)
            self.ctx.runner.run(
                self.ctx.runtime.domain_health(email),
                on_success=lambda checks: self._domain_checked(email, tuple(checks)),
                on_error=lambda exc: self._domain_checked(
                    email, (v.HealthCheck("DNS checks", v.CheckState.UNKNOWN, f"Could not check: {exc}"),)
                ),
            )
        return (v.HealthCheck("DNS checks", v.CheckState.UNKNOWN, "Checking the sending domain…"),)

    def _domain_checked(self, email: str, checks: tuple[v.HealthCheck, ...]) -> None:
        self._checking.discard(email)
        self.domain_checks[email] = checks
        if self.view is not None and self.view.account_email == email:
            self._set_health(checks)

    def _set_health(self, checks: tuple[v.HealthCheck, ...]) -> None:
        while self.health_layout.count():
            item = self.health_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        if not checks:
            self.health_layout.addWidget(muted("Not checked yet."), 0, 0, 1, 3)
        for row, check in enumerate(checks):
            mark, level = CHECK_MARK[check.state]
            icon = QLabel(mark)
            icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
            palette = icon.palette()
            palette.setColor(icon.foregroundRole(), level_color(level))
            icon.setPalette(palette)
            name = QLabel(check.name)
            detail = muted(check.detail)
            detail.setWordWrap(False)
            for widget in (icon, name, detail):
                widget.setToolTip(f"{check.name}: {check.state.value} — {check.detail}")
            self.health_layout.addWidget(icon, row, 0)
            self.health_layout.addWidget(name, row, 1)
            self.health_layout.addWidget(detail, row, 2)

    def _set_chart(self, days: tuple[v.DailyCounts, ...]) -> None:
        chart = self.chart
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        palette = self.palette()
        text_color = palette.color(QPalette.ColorRole.WindowText)
        chart.legend().setLabelColor(text_color)
        sent = QBarSet("Sent")
        sent.setColor(palette.color(QPalette.ColorRole.Highlight))
        sent.setBorderColor(palette.color(QPalette.ColorRole.Highlight))
        bars = QBarSeries()
        bars.append(sent)
        categories = []
        lines = {
            "Replied": (QLineSeries(), level_color(Level.OK, palette)),
            "Bounced": (QLineSeries(), level_color(Level.BAD, palette)),
            "Unsubscribed": (QLineSeries(), level_color(Level.WARN, palette)),
        }
        top = 1
        for i, day in enumerate(days):
            sent.append(day.sent)
            # one distinct label per day: the axis drops repeated categories (and their bars with them), and
            # "27 Nov" under each of 14 bars would be elided
            categories.append(str(day.day.day))
            for name, value in (
                ("Replied", day.replied),
                ("Bounced", day.bounced),
                ("Unsubscribed", day.unsubscribed),
            ):
                lines[name][0].append(QPointF(i, value))
            top = max(top, day.sent)
        chart.addSeries(bars)
        x_axis = QBarCategoryAxis()
        x_axis.append(categories or [""])
        if days:
            x_axis.setTitleText(f"{days[0].day:%d %b} – {days[-1].day:%d %b}")
            x_axis.setTitleBrush(text_color)
        y_axis = QValueAxis()
        step = max(1, -(-top // 4))
        y_axis.setRange(0, step * 4 + (step if top >= step * 4 else 0))
        y_axis.setTickCount(int(y_axis.max() // step) + 1)
        y_axis.setLabelFormat("%d")
        for axis in (x_axis, y_axis):
            axis.setLabelsColor(text_color)
            grid = palette.color(QPalette.ColorRole.Mid)
            grid.setAlpha(70)
            axis.setGridLineColor(grid)
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        bars.attachAxis(x_axis)
        bars.attachAxis(y_axis)
        line_x = QValueAxis()
        line_x.setRange(-0.5, max(0, len(days) - 0.5))
        line_x.setVisible(False)
        chart.addAxis(line_x, Qt.AlignmentFlag.AlignBottom)
        for name, (series, color) in lines.items():
            series.setName(name)
            pen = series.pen()
            pen.setColor(color)
            pen.setWidthF(max(2.0, self.fontMetrics().height() / 7))
            series.setPen(pen)
            series.setPointsVisible(True)
            chart.addSeries(series)
            series.attachAxis(line_x)
            series.attachAxis(y_axis)

    # --- pause / resume -----------------------------------------------------------------------------

    def request_resume(self) -> None:
        pause = self.view.pause if self.view else None
        if pause is not None and pause.cause_persists:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Resume while the cause persists?",
                "The reason for this pause has not gone away.",
                QMessageBox.StandardButton.Cancel,
                self,
            )
            box.setInformativeText(
                (pause.cause_detail or pause.reason)
                + "\n\nIf you resume now, the breaker counts afresh from this moment and pauses again if too"
                " many of the next sends bounce. Every bounce hurts your domain: check your list first."
            )
            resume = box.addButton("Resume anyway", QMessageBox.ButtonRole.AcceptRole)
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.buttonClicked.connect(lambda button: self._resume() if button is resume else None)
            self._confirm = box
            box.open()
            return
        self._resume()

    def _resume(self) -> None:
        account = self.view.pause.account_id if self.view and self.view.pause else None

        def resumed(_: None) -> None:
            self.ctx.messages.info("Sending resumed.")
            self.load()

        self.ctx.runner.run(self.ctx.runtime.resume(account), on_success=resumed)
