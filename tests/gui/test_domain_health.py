"""The deliverability tab's domain-health checklist over the REAL runtime: the sending domain's SPF, DKIM and
DMARC are looked up once (a local DNS server answers), and a runtime that cannot look says so in place."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel

from cadence.adapters.connection_probe import NetworkProbe
from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.dns import DnsResolver
from cadence.app import smtp_mailer_for
from cadence.core import views as v
from cadence.core.model import AccountSettings
from cadence.qt.main_window import MainWindow
from cadence.services.accounts import AccountSetupService
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.runtime import Runtime
from tests.integration.dns_server import ZoneServer

ZONE = """
signed.test.                   300 IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
google._domainkey.signed.test. 300 IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
_dmarc.signed.test.            300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@signed.test"
signed.test.                   300 IN MX 1 aspmx.l.google.com.
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


def open_window(qtbot: Any, runtime: Runtime, tmp_path: Path) -> MainWindow:
    state = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    window = MainWindow(runtime, window_state=state, use_tray=False)
    window.resize(1280, 800)
    window.show()
    window.tabs.setCurrentWidget(window.deliverability)
    return window


def close(qtbot: Any, window: MainWindow) -> None:
    if not window.is_shut_down():
        window.close()
        qtbot.waitUntil(window.is_shut_down, timeout=30_000)
    window.deleteLater()


def checklist(window: MainWindow) -> str:
    labels = window.deliverability.health_box.findChildren(QLabel)
    return " | ".join(label.text() for label in labels if label.isVisibleTo(window))


def test_the_sending_domain_is_checked_once_and_fills_the_checklist(
    qtbot: Any, qloop: qasync.QEventLoop, store: SqliteStore, tmp_path: Path
) -> None:
    store.create_account(
        AccountSettings(email="sam@signed.test", display_name="Sam", smtp_host="smtp.signed.test"),
        now=datetime.now(UTC),
    )
    with ZoneServer(ZONE) as dns:
        resolver = DnsResolver(
            nameservers=["127.0.0.1"], port=dns.port, timeout_s=0.5, lifetime_s=1.0, canary_domain=None
        )

        def setup(**_kwargs: object) -> AccountSetupService:
            return AccountSetupService(
                secrets=DemoSecrets(),  # type: ignore[arg-type]
                mx_hosts=resolver.mx_hosts,
                probe=NetworkProbe(),
                domain_health_lookup=resolver.sending_domain_health,
            )

        runtime = Runtime(
            store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for, account_setup=setup
        )
        window = open_window(qtbot, runtime, tmp_path)
        try:
            qtbot.waitUntil(lambda: "sam@signed.test" in window.deliverability.domain_checks, timeout=10_000)
            checks = {c.name: c for c in window.deliverability.domain_checks["sam@signed.test"]}
            assert checks["SPF"].state is v.CheckState.PASS
            assert checks["DMARC"].state is v.CheckState.PASS
            qtbot.waitUntil(lambda: "SPF" in checklist(window) and "DMARC" in checklist(window))
            asked = len(dns.queries)
            window.deliverability.load()  # a redraw does not look the domain up again
            qtbot.waitUntil(lambda: not window.runner.busy)
            assert len(dns.queries) == asked
        finally:
            close(qtbot, window)


def test_a_runtime_that_cannot_check_dns_says_so_in_the_checklist(
    qtbot: Any, qloop: qasync.QEventLoop, store: SqliteStore, tmp_path: Path
) -> None:
    store.create_account(
        AccountSettings(email="sam@signed.test", display_name="Sam", smtp_host="smtp.signed.test"),
        now=datetime.now(UTC),
    )
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for)
    window = open_window(qtbot, runtime, tmp_path)
    try:
        qtbot.waitUntil(lambda: "Could not check" in checklist(window), timeout=10_000)
        assert "not available" in checklist(window)
        assert not any(level == "error" for level, _text in window.banners.messages())
    finally:
        close(qtbot, window)
