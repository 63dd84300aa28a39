"""The settings dialog's Mailbox page over the demo runtime (the real AccountSetupService over a demo network
probe): proposals while typing, the live connection-test checklist, advice on failure, cancel, OAuth."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from cadence.core import views as v
from cadence.core.oauth import AuthMethod
from cadence.core.ports import SecretKind
from cadence.qt.dialogs.mailbox_page import STORED_PLACEHOLDER, MailboxPage
from cadence.qt.dialogs.settings import AccountSettingsDialog
from cadence.services.demo_runtime import DEMO_PASSWORD, DemoRuntime


def open_dialog(qtbot: Any, make_window: Any, runtime: DemoRuntime | None = None) -> AccountSettingsDialog:
    runtime = runtime or DemoRuntime()
    window = make_window(runtime)
    dialog: AccountSettingsDialog = window._show_settings(runtime.account)
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def type_address(qtbot: Any, page: MailboxPage, address: str) -> None:
    page.email.clear()
    qtbot.keyClicks(page.email, address)  # real key presses: textEdited fires, the debounce runs
    qtbot.waitUntil(
        lambda: page.proposal is not None and page.proposal.email == address.lower(), timeout=5000
    )


def step_lines(page: MailboxPage) -> list[str]:
    return [page.steps.item(i).text() for i in range(page.steps.count())]


def test_typing_a_gmail_address_fills_the_servers_and_the_note(qtbot: Any, make_window: Any) -> None:
    dialog = open_dialog(qtbot, make_window)
    page = dialog.mailbox
    type_address(qtbot, page, "sam.rivera@gmail.com")
    assert (page.smtp_host.text(), page.smtp_port.value()) == ("smtp.gmail.com", 587)
    assert page.smtp_tls.currentData() == v.TlsMode.STARTTLS
    assert (page.imap_host.text(), page.imap_port.value()) == ("imap.gmail.com", 993)
    assert "smtp.gmail.com:465" in page.details.text()  # the implicit-TLS alternative is offered
    assert page.note.text() == "Gmail: use an app password or sign in with Google."
    assert page.sign_in_button.isVisibleTo(dialog) and page.sign_in_button.text() == "Sign in with Google"
    # every proposed field stays editable, and the edit is what gets saved
    assert not page.smtp_host.isReadOnly()
    page.smtp_port.setValue(465)
    page.smtp_tls.setCurrentIndex(1)
    collected = dialog.collected()
    assert (collected.smtp_port, collected.smtp_tls, collected.provider_key) == (
        465,
        v.TlsMode.IMPLICIT,
        "gmail",
    )


def test_microsoft_and_guessed_domains_get_their_own_advice(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    type_address(qtbot, page, "lee@northwind.example")  # MX at *.mail.protection.outlook.com
    assert (
        page.note.text() == "Microsoft 365: sign in with Microsoft; passwords stop working for SMTP in 2026."
    )
    assert page.smtp_host.text() == "smtp.office365.com"
    assert page.sign_in_button.text() == "Sign in with Microsoft"
    type_address(qtbot, page, "ana@smallshop.example")  # no MX known: a guess, said so
    assert page.note.text().startswith("Guessed from your domain: please check")
    assert page.smtp_host.text() == "smtp.smallshop.example"
    assert page.sign_in_button.isHidden()


def test_a_bad_address_is_explained_and_changes_nothing(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    host_before = page.smtp_host.text()
    page.email.clear()
    qtbot.keyClicks(page.email, "sam@@example")
    qtbot.waitUntil(lambda: "not a valid email address" in page.note.text(), timeout=5000)
    assert page.smtp_host.text() == host_before


def test_the_stored_password_is_never_echoed(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    dialog = open_dialog(qtbot, make_window, runtime)
    assert runtime.account.has_password
    assert dialog.password.text() == ""
    assert dialog.password.placeholderText() == STORED_PLACEHOLDER
    assert dialog.password.echoMode() is dialog.password.EchoMode.Password
    assert DEMO_PASSWORD not in dialog.password.text()


def test_connection_steps_appear_one_by_one_with_ticks(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(latency_s=0.04)  # each demo step takes 10 ms: the list must grow while it runs
    page = open_dialog(qtbot, make_window, runtime).mailbox
    seen_while_running: list[int] = []
    page.step_shown.connect(
        lambda _step: seen_while_running.append(page.steps.count()) if page.testing else None
    )
    with qtbot.waitSignal(page.test_finished, timeout=10_000) as finished:
        page.test_button.click()
        assert page.testing and not page.test_button.isEnabled() and page.cancel_test_button.isVisibleTo(page)
    report = finished.args[0]
    assert isinstance(report, v.ConnectionTestView) and report.ok
    lines = step_lines(page)
    assert len(lines) == 11  # SMTP: DNS, TCP, TLS, certificate, login; IMAP: the same + Sent folder
    assert all(line.startswith("✔") for line in lines)
    assert lines[0].startswith("✔  SMTP: Find the server (DNS)")
    assert lines[-1].startswith("✔  IMAP: Find the Sent folder")
    assert seen_while_running[:3] == [1, 2, 3]  # streamed, not painted at the end
    assert page.test_summary.text().startswith("✔ Everything works")
    assert page.test_button.isEnabled() and page.cancel_test_button.isHidden()
    assert "test_connection" in runtime.calls


def test_a_refused_password_shows_the_advice(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    page.password.setText("wrong")  # the demo server refuses this one
    with qtbot.waitSignal(page.test_finished, timeout=10_000):
        page.test_button.click()
    failed = [line for line in step_lines(page) if line.startswith("✖")]
    assert [line.split(" — ")[0] for line in failed] == ["✖  SMTP: Sign in", "✖  IMAP: Sign in"]
    assert page.advice.isVisibleTo(page)
    assert "did not accept the user name or password" in page.advice.text()
    assert "app password" in page.advice.text()
    assert page.test_summary.text() == "✖ 2 steps failed."
    failed_item = page.steps.item(4)
    assert failed_item.data(Qt.ItemDataRole.UserRole) == "failed"


def test_an_unknown_host_fails_at_dns_and_skips_the_rest_of_that_server(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    page.smtp_host.setText("smtp.nowhere.invalid")
    with qtbot.waitSignal(page.test_finished, timeout=10_000) as finished:
        page.test_button.click()
    report = finished.args[0]
    smtp = [s for s in report.steps if s.server == "SMTP"]
    assert [s.state for s in smtp] == [v.StepState.FAILED] + [v.StepState.SKIPPED] * 4
    assert all(s.ok for s in report.steps if s.server == "IMAP")  # the other server is still tested
    assert "smtp.nowhere.invalid" in page.advice.text()


def test_cancel_stops_the_test_and_frees_the_button(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(latency_s=0.4)  # 100 ms per step
    page = open_dialog(qtbot, make_window, runtime).mailbox
    page.test_button.click()
    qtbot.waitUntil(lambda: page.steps.count() >= 1, timeout=5000)
    with qtbot.waitSignal(page.test_finished) as finished:
        page.cancel_test_button.click()
    assert finished.args == [None]
    shown = page.steps.count()
    assert page.test_button.isEnabled() and not page.testing
    assert page.test_summary.text() == "Test cancelled."
    qtbot.wait(400)  # steps of a cancelled test never arrive later
    assert page.steps.count() == shown < 11


def test_sign_in_with_google_keeps_the_token_in_the_keyring_only(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    dialog = open_dialog(qtbot, make_window, runtime)
    page = dialog.mailbox
    type_address(qtbot, page, "sam.rivera@gmail.com")
    page.sign_in_button.click()
    qtbot.waitUntil(lambda: page.auth_method is AuthMethod.OAUTH_GOOGLE, timeout=5000)
    token = runtime.secrets.entries[("sam.rivera@gmail.com", SecretKind.OAUTH_REFRESH_TOKEN)]
    assert token.endswith("-refresh")
    assert not page.password.isEnabled() and "Signed in with Google" in page.sign_in_state.text()
    settings = dialog.collected()
    assert settings.auth_method is AuthMethod.OAUTH_GOOGLE
    assert token not in repr(settings)
    with qtbot.waitSignal(dialog.saved):
        dialog.save_button.click()
    assert runtime.account.auth_method is AuthMethod.OAUTH_GOOGLE
    assert runtime.account.email == "sam.rivera@gmail.com"
    page.use_password()
    assert page.auth_method is AuthMethod.PASSWORD and page.password.isEnabled()


def test_closing_the_dialog_mid_test_cancels_it(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime(latency_s=0.4)
    dialog = open_dialog(qtbot, make_window, runtime)
    page = dialog.mailbox
    page.test_button.click()
    qtbot.waitUntil(lambda: page.steps.count() >= 1, timeout=5000)
    dialog.reject()
    qtbot.waitUntil(lambda: not page.testing)
    shown = page.steps.count()
    qtbot.wait(300)
    assert page.steps.count() == shown


def test_after_signing_in_the_test_uses_the_sign_in(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    type_address(qtbot, page, "kim@outlook.com")  # Outlook.com: passwords are refused
    assert "passwords are refused" in page.note.text()
    assert page.password.placeholderText() == "passwords are refused here: sign in instead"
    page.sign_in_button.click()
    qtbot.waitUntil(lambda: page.auth_method is AuthMethod.OAUTH_MICROSOFT, timeout=5000)
    with qtbot.waitSignal(page.test_finished, timeout=10_000) as finished:
        page.test_button.click()
    assert finished.args[0].ok
    assert any("Signed in with XOAUTH2" in line for line in step_lines(page))


def test_testing_an_oauth_account_before_signing_in_says_to_sign_in(qtbot: Any, make_window: Any) -> None:
    runtime = DemoRuntime()
    dialog = open_dialog(qtbot, make_window, runtime)
    page = dialog.mailbox
    type_address(qtbot, page, "lee@northwind.example")
    page.auth_method = AuthMethod.OAUTH_MICROSOFT  # as stored for an account signed in on another day
    with qtbot.waitSignal(page.test_finished, timeout=10_000) as finished:
        page.test_button.click()
    assert finished.args == [None]
    assert "Sign in with Microsoft (the button above)" in page.advice.text()
    assert page.test_button.isEnabled()


def test_a_new_proposal_clears_results_of_the_old_servers(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    with qtbot.waitSignal(page.test_finished, timeout=10_000):
        page.test_button.click()
    assert page.steps.count() == 11 and page.test_summary.text()
    type_address(qtbot, page, "sam.rivera@gmail.com")
    assert page.steps.count() == 0 and page.steps.isHidden() and page.test_summary.text() == ""


def test_domain_records_are_checked_on_request(qtbot: Any, make_window: Any) -> None:
    page = open_dialog(qtbot, make_window).mailbox
    page.domain_button.click()
    qtbot.waitUntil(
        lambda: page.domain_button.isEnabled() and "SPF" in page.domain_checks.text(), timeout=5000
    )
    lines = page.domain_checks.text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["✔ SPF", "⚠ DKIM", "✔ DMARC"]
    assert "Turn on DKIM signing" in lines[1]
