"""The fault matrix through the whole app (issue 7, point 3): each fault is made by a real piece of the stack
(or the SMTP fault proxy in front of Postfix, see faults.py) while `cadence run` runs as a subprocess, and
each test checks that the process survived or stopped with a clear message, that no message was lost (it
was retried and delivered, or it is reported in doubt and settled from Sent or by the user), that nothing
reached a recipient twice (the fake internet's records), and that the log or `cadence status --json` says
why. A run is started with a long `--until`, watched through the data dir's log until the expected thing
happened, then stopped with SIGTERM (exit 0 expected: SIGTERM is a clean stop).

Deferred messages wait 5 minutes before their retry (core.retry); instead of waiting, a test moves their
due time and the account's backoff to now ("the clock moved on"). A paused account is resumed the same way
(what the Resume button does), and a few tests change a guardrail or the SMTP port of a copied data dir:
these are the only writes to the database from outside the app.

Every fault records a figure: `tests.stack.report.record("fault", fault=..., survived=..., lost=...,
duplicates=..., message=...)`.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from tests.integration.cli_harness import PERMISSIVE, REPO, cadence_command, keyring_session, run_cadence
from tests.stack.faults import (
    PeakMemory,
    SmtpFault,
    SmtpFaultProxy,
    deliver_to_inbox,
    expunge_matching,
    fill_disk,
    huge_bounce,
    malformed_bounce,
    reset_uidvalidity,
    small_tmpfs,
)
from tests.stack.report import record
from tests.stack.stack import MailStack

pytestmark = [pytest.mark.keyring, pytest.mark.slow]


# --- the app under test ----------------------------------------------------------------------------------


@dataclass
class App:
    """One Cadence data dir with one account on the stack; commands run as `python -m cadence`."""

    data: Path
    env: dict[str, str]
    stack: MailStack
    tag: str
    runs: int = 0

    def cadence(
        self, *args: str, timeout: float = 60, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cadence(self.data, *args, env=self.env, timeout=timeout, input_text=input_text)

    def add_account(self, *, smtp_port: int, password: str, approve_first_touch: bool = False) -> None:
        stack = self.stack
        flags = [] if approve_first_touch else ["--no-first-touch-approval"]
        added = self.cadence(
            "account", "add", "--email", stack.user, "--name", "Sam Seller",
            "--smtp", f"{stack.host}:{smtp_port}", "--imap", f"{stack.host}:{stack.imaps_port}",
            "--security", "starttls", "--ca-file", str(stack.ca_file), "--guardrails", json.dumps(PERMISSIVE),
            "--all-hours", "--no-warmup", *flags, "--password-stdin", input_text=password + "\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    def campaign(self, *kinds: str) -> list[str]:
        """A one-step campaign to one lead per kind (`ok`, `dead`, ...); returns their addresses."""
        # the importer refuses .test domains; the fake internet acts on the local part whatever the domain
        recipients = [f"{kind}+{self.tag}{i}@{kind}-prospect.example.com" for i, kind in enumerate(kinds)]
        leads = self.data.parent / f"leads-{self.tag}.csv"
        leads.write_text(
            "email,first_name\n" + "".join(f"{address},Lee\n" for address in recipients), encoding="utf-8"
        )
        body = self.data.parent / f"body-{self.tag}.txt"
        body.write_text("Hello {first_name},\n\nwould a short call next week make sense?\n", encoding="utf-8")
        created = self.cadence(
            "campaign", "add", "--name", f"chaos-{self.tag}", "--leads", str(leads),
            "--step", f"Hi {{first_name}}|{body}|0",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        return recipients

    def start_run(self, *, inbox: bool = False, seconds: float = 120) -> Run:
        """`cadence run --until <seconds from now> --poll 1` in the background; stderr goes to a file."""
        until = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
        args = ["run", "--until", until, "--poll", "1", *([] if inbox else ["--no-inbox"])]
        self.runs += 1
        err_path = self.data.parent / f"run-{self.tag}-{self.runs}.err"
        with err_path.open("w") as err:
            process = subprocess.Popen(
                cadence_command(self.data, *args),
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
            )
        return Run(process=process, err_path=err_path, app=self, log_offset=len(self.log()))

    def run_until(
        self, done: Callable[[str], object], *, inbox: bool = False, what: str, timeout_s: float = 40
    ) -> Run:
        """Start `cadence run`, wait until `done(what it logged so far)` holds, then stop it with SIGTERM (the
        way a user stops it) and return the finished run."""
        run = self.start_run(inbox=inbox)
        try:
            wait_for(
                lambda: done(run.logged()) or run.process.poll() is not None, timeout_s=timeout_s, what=what
            )
            run.survived = run.process.poll() is None
        finally:
            run.stop()
        assert done(run.logged()), f"{what}: the run ended first (exit {run.code}):\n{run.stderr}"
        return run

    def status(self) -> dict[str, Any]:
        shown = self.cadence("status", "--json")
        assert shown.returncode == 0, shown.stderr
        result: dict[str, Any] = json.loads(shown.stdout)
        return result

    def log(self) -> str:
        path = self.data / "cadence.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def database(self) -> Path:
        return self.data / "cadence.sqlite3"

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=10) as conn:
            rows = conn.execute(statement, params).fetchall()
        conn.close()
        return rows

    def clock_moves_on(self) -> None:
        """Deferred messages and the account's backoff are due now (instead of waiting 5 minutes)."""
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds")
        self.sql("UPDATE messages SET next_attempt_at = ? WHERE state = 'deferred'", past)
        self.sql("UPDATE accounts SET backoff_until = NULL")

    def set_guardrails(self, **changes: object) -> None:
        guardrails = json.loads(self.sql("SELECT guardrails FROM accounts")[0][0])
        self.sql("UPDATE accounts SET guardrails = ?", json.dumps({**guardrails, **changes}))

    def resume(self) -> None:
        """What the Resume button does after the user fixed the cause of an automatic pause."""
        self.sql("UPDATE accounts SET paused_reason = NULL, paused_until = NULL")

    def with_store(self, use: Callable[[SqliteStore], Any]) -> Any:
        database = open_database(self.database)
        try:
            return use(SqliteStore(database))
        finally:
            database.close()


@dataclass
class Run:
    """A `cadence run` process started by App.start_run."""

    process: subprocess.Popen[str]
    err_path: Path
    app: App
    log_offset: int
    survived: bool = True
    code: int | None = None

    def logged(self) -> str:
        """What this run wrote to the data dir's log so far."""
        return self.app.log()[self.log_offset :]

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stop(self, *, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.code = self.process.wait(timeout=10)
        return self.code

    def lines(self, text: str) -> list[str]:
        return [line for line in self.stderr.splitlines() if text in line]


def deliveries(stack: MailStack, recipients: list[str]) -> Counter[str]:
    counts = Counter(record["rcpt"] for record in stack.delivered() if record["rcpt"] in recipients)
    return Counter({address: counts.get(address, 0) for address in recipients})


def lost_and_duplicates(stack: MailStack, recipients: list[str]) -> tuple[int, int]:
    counts = deliveries(stack, recipients)
    return sum(1 for n in counts.values() if n == 0), sum(n - 1 for n in counts.values() if n > 1)


def wait_for(condition: Callable[[], Any], *, timeout_s: float, what: str, poll_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(poll_s)


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with keyring_session(tmp_path_factory.mktemp("keyring")) as env:
        yield env


@pytest.fixture(scope="module")
def proxy(private_mail_stack: MailStack) -> Iterator[SmtpFaultProxy]:
    with SmtpFaultProxy(private_mail_stack) as started:
        yield started


@pytest.fixture(scope="module")
def account_template(
    tmp_path_factory: pytest.TempPathFactory, keyring_env: dict[str, str], private_mail_stack: MailStack
) -> Path:
    """A data dir with the seller's account added by `cadence account add` (password in the keyring), copied
    by each test instead of adding the account again (one Python start-up less per test)."""
    app = App(
        data=tmp_path_factory.mktemp("template") / "data",
        env=keyring_env,
        stack=private_mail_stack,
        tag="template",
    )
    app.add_account(smtp_port=private_mail_stack.submission_port, password=private_mail_stack.password)
    return app.data


@pytest.fixture
def make_app(
    tmp_path: Path, keyring_env: dict[str, str], private_mail_stack: MailStack, account_template: Path
) -> Callable[..., App]:
    def make(
        *,
        smtp_port: int,
        env: dict[str, str] | None = None,
        password: str | None = None,
        approve_first_touch: bool = False,
    ) -> App:
        app = App(
            data=tmp_path / "data", env=env or keyring_env, stack=private_mail_stack, tag=uuid.uuid4().hex[:8]
        )
        if password is not None:  # another keyring, another password: a real `account add`
            app.add_account(smtp_port=smtp_port, password=password, approve_first_touch=approve_first_touch)
            return app
        shutil.copytree(account_template, app.data)
        app.sql("UPDATE accounts SET smtp_port = ?", smtp_port)
        if approve_first_touch:
            app.set_guardrails(approve_first_touch=True)
        return app

    return make


@pytest.fixture(autouse=True)
def _proxy_disarmed(proxy: SmtpFaultProxy) -> Iterator[None]:
    proxy.disarm()
    yield
    proxy.disarm()


# --- submission faults ------------------------------------------------------------------------------------


def idle_after(marker: str) -> Callable[[str], bool]:
    """The run logged `marker`, and after it went idle (so it had its chance to do something more)."""

    def done(logged: str) -> bool:
        at = logged.find(marker)
        return at >= 0 and "idle account=" in logged[at:]

    return done


def delivered_to(stack: MailStack, recipients: list[str]) -> Callable[[str], bool]:
    return lambda _logged: all(deliveries(stack, recipients).values())


def test_421_at_greeting_defers_then_delivers_once(
    make_app: Callable[..., App], proxy: SmtpFaultProxy
) -> None:
    app = make_app(smtp_port=proxy.port)
    stack = app.stack
    recipients = app.campaign("ok")
    proxy.arm(SmtpFault.GREETING_421)

    first = app.run_until(idle_after("deferred account="), what="the deferral")
    assert first.survived and first.code == 0, first.stderr
    assert [done.fault for done in proxy.done[-1:]] == [SmtpFault.GREETING_421]
    assert sum(deliveries(stack, recipients).values()) == 0
    deferred = first.lines("deferred account=")
    assert "421" in deferred[0], first.stderr
    assert app.sql("SELECT state FROM messages") == [("deferred",)]

    app.clock_moves_on()
    second = app.run_until(delivered_to(stack, recipients), what="delivery after 421")
    assert second.code == 0, second.stderr
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="421 at greeting", survived=True, lost=lost, duplicates=duplicates,
           message=deferred[0].split(" cadence.run: ", 1)[-1][:200])  # fmt: skip
    assert app.sql("SELECT state FROM messages") == [("sent",)]
    assert (lost, duplicates) == (0, 0)


def test_submission_server_down_then_back(
    make_app: Callable[..., App], private_mail_stack: MailStack
) -> None:
    app = make_app(smtp_port=private_mail_stack.submission_port)  # straight to Postfix
    stack = app.stack
    recipients = app.campaign("ok", "ok")
    stack.stop_postfix()
    try:
        down = app.run_until(idle_after("deferred account="), what="the deferral")
    finally:
        stack.start_postfix()
    assert down.survived and down.code == 0, down.stderr
    assert sum(deliveries(stack, recipients).values()) == 0
    deferred = down.lines("deferred account=")
    assert "unreachable" in deferred[0] and "Connect call failed" in deferred[0], down.stderr
    assert {state for (state,) in app.sql("SELECT state FROM messages")} <= {"deferred", "approved"}

    app.clock_moves_on()
    back = app.run_until(delivered_to(stack, recipients), what="deliveries once Postfix is back")
    assert back.code == 0, back.stderr
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="submission server down", survived=True, lost=lost, duplicates=duplicates,
           message=deferred[0].split(" cadence.run: ", 1)[-1][:200])  # fmt: skip
    assert app.sql("SELECT state FROM messages") == [("sent",), ("sent",)]
    assert (lost, duplicates) == (0, 0)


def test_auth_failure_pauses_the_account_and_sends_nothing(
    make_app: Callable[..., App], tmp_path: Path, proxy: SmtpFaultProxy
) -> None:
    wrong = "wrong-password-" + uuid.uuid4().hex[:6]
    with keyring_session(tmp_path / "other-keyring") as env:
        app = make_app(smtp_port=proxy.port, env=env, password=wrong)
        stack = app.stack
        recipients = app.campaign("ok")
        refused = app.run_until(idle_after("paused account="), what="the pause")
        assert refused.survived and refused.code == 0, refused.stderr
        status = app.status()
        account = status["accounts"][0]
        assert account["paused"] is True, status
        assert "login" in account["pause_reason"] and "535" in account["pause_reason"]
        assert sum(deliveries(stack, recipients).values()) == 0
        assert status["queue"].get("sent", 0) == 0 and status["queue"].get("failed", 0) == 0  # kept
        assert wrong not in refused.stderr + app.log()

        # the user types the right password and presses Resume: the same message goes, once
        stored = subprocess.run(
            [sys.executable, "-c",
             "import asyncio, sys; from cadence.app import make_secret_store; "
             "asyncio.run(make_secret_store().set(sys.argv[1], sys.stdin.readline().strip()))", stack.user],
            input=stack.password + "\n", env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert stored.returncode == 0, stored.stderr
        app.resume()
        app.clock_moves_on()
        fixed = app.run_until(delivered_to(stack, recipients), what="delivery after the fix")
        assert fixed.code == 0, fixed.stderr
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="AUTH failure", survived=True, lost=lost, duplicates=duplicates,
           message=account["pause_reason"][:200])  # fmt: skip
    assert (lost, duplicates) == (0, 0)
    assert stack.password not in fixed.stderr + app.log()


def test_changed_tls_certificate_pauses_before_any_login(
    make_app: Callable[..., App], private_mail_stack: MailStack
) -> None:
    app = make_app(smtp_port=private_mail_stack.submission_port)  # straight to Postfix
    stack = app.stack
    recipients = app.campaign("ok")
    stack.present_untrusted_certificate()
    try:
        refused = app.run_until(idle_after("paused account="), what="the pause")
    finally:
        stack.present_trusted_certificate()
    assert refused.survived and refused.code == 0, refused.stderr
    account = app.status()["accounts"][0]
    assert account["paused"] is True
    assert "certificate was not accepted" in account["pause_reason"], account
    assert "CERTIFICATE_VERIFY_FAILED" in account["pause_reason"]
    assert sum(deliveries(stack, recipients).values()) == 0

    app.resume()
    app.clock_moves_on()
    trusted = app.run_until(delivered_to(stack, recipients), what="delivery with the right certificate")
    assert trusted.code == 0, trusted.stderr
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="TLS certificate changed", survived=True, lost=lost, duplicates=duplicates,
           message=account["pause_reason"][:200])  # fmt: skip
    assert (lost, duplicates) == (0, 0)


def test_drop_mid_data_is_in_doubt_not_resent_and_a_resend_delivers_once(
    make_app: Callable[..., App], proxy: SmtpFaultProxy
) -> None:
    app = make_app(smtp_port=proxy.port)
    stack = app.stack
    recipients = app.campaign("ok")
    proxy.arm(SmtpFault.DROP_MID_DATA)
    dropped = app.run_until(idle_after("in_doubt account="), what="the in-doubt report")
    assert dropped.survived and dropped.code == 0, dropped.stderr
    done = proxy.done[-1]
    assert done.fault is SmtpFault.DROP_MID_DATA and 0 < done.forwarded_bytes < done.content_bytes
    in_doubt_line = dropped.lines("in_doubt account=")[0]
    assert "not sent again: disconnected" in in_doubt_line  # says why
    status = app.status()
    assert [m["recipient"] for m in status["in_doubt"]] == recipients  # reported, never re-sent blindly
    time.sleep(1.0)
    assert stack.queue_ids() == [] and sum(deliveries(stack, recipients).values()) == 0  # Postfix dropped it

    settled = app.cadence("approve", "--resend", str(status["in_doubt"][0]["id"]))
    assert settled.returncode == 0, settled.stderr
    resent = app.run_until(delivered_to(stack, recipients), what="delivery after --resend")
    assert resent.code == 0, resent.stderr
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="connection dropped mid-DATA", survived=True, lost=lost, duplicates=duplicates,
           message=in_doubt_line.split(" cadence.run: ", 1)[-1][:200])  # fmt: skip
    assert app.sql("SELECT state FROM messages") == [("sent",)]
    assert (lost, duplicates) == (0, 0)


def test_drop_after_the_final_dot_is_in_doubt_and_settling_it_gives_one_copy(
    make_app: Callable[..., App], proxy: SmtpFaultProxy
) -> None:
    """Two messages lose the server's 250 after their final dot. One is settled by the user
    (`approve --mark-sent`), the other by the watcher finding its copy in Sent (as a provider that files
    submitted mail there would have put it)."""
    app = make_app(smtp_port=proxy.port)
    stack = app.stack
    recipients = app.campaign("ok", "ok")
    proxy.arm(SmtpFault.DROP_AFTER_DOT, times=2)

    def both_in_doubt(logged: str) -> bool:
        return logged.count("in_doubt account=") == 2 and idle_after("in_doubt account=")(logged)

    dropped = app.run_until(both_in_doubt, what="the in-doubt reports")
    assert dropped.survived and dropped.code == 0, dropped.stderr
    done = proxy.done[-2:]
    assert all(d.fault is SmtpFault.DROP_AFTER_DOT and d.upstream_reply.startswith("250") for d in done)
    in_doubt_line = dropped.lines("in_doubt account=")[0]
    assert "not sent again: disconnected" in in_doubt_line
    wait_for(lambda: delivered_to(stack, recipients)(""), timeout_s=10, what="Postfix relaying both")
    status = app.status()
    assert sorted(m["recipient"] for m in status["in_doubt"]) == recipients
    by_user, by_sent = sorted(status["in_doubt"], key=lambda m: m["recipient"])

    settled = app.cadence("approve", "--mark-sent", str(by_user["id"]))
    assert settled.returncode == 0, settled.stderr
    mime = app.sql("SELECT mime FROM messages WHERE id = ?", by_sent["id"])[0][0]
    deliver_to_inbox(stack, mime, folder="Sent")
    # a restart reports the other one again, does not send it again, and the watcher settles it from Sent
    again = app.run_until(
        lambda _logged: app.sql("SELECT state FROM messages WHERE id = ?", by_sent["id"]) == [("sent",)],
        inbox=True,
        what="settling from Sent",
    )
    assert again.code == 0, again.stderr
    assert "1 message(s) in doubt, not sent again" in again.stderr
    assert "settled 1 in-doubt" in again.logged()
    time.sleep(1.0)  # anything sent twice would have reached the internet by now
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="connection dropped after the final dot", survived=True, lost=lost,
           duplicates=duplicates, message=in_doubt_line.split(" cadence.run: ", 1)[-1][:200])  # fmt: skip
    assert app.sql("SELECT state FROM messages") == [("sent",), ("sent",)]
    assert (lost, duplicates) == (0, 0)


# --- mailbox faults -----------------------------------------------------------------------------------------


def suppressed(app: App, address: str) -> bool:
    return bool(app.with_store(lambda store: store.find_suppression(address)))


def effects_snapshot(app: App) -> dict[str, Any]:
    """What reading the mailbox changed: suppressions, ledger rows by kind, lead and message states."""
    return {
        "suppressions": sorted(app.sql("SELECT value, reason FROM suppressions")),
        "ledger": sorted(app.sql("SELECT kind, recipient, manual, COUNT(*) FROM ledger GROUP BY 1, 2, 3")),
        "leads": sorted(app.sql("SELECT email, status FROM leads")),
        "messages": sorted(app.sql("SELECT id, state FROM messages")),
    }


def test_dovecot_restarted_mid_idle_the_watcher_reconnects_and_sees_a_later_dsn(
    make_app: Callable[..., App], private_mail_stack: MailStack
) -> None:
    stack = private_mail_stack
    app = make_app(smtp_port=stack.submission_port, approve_first_touch=True)
    recipients = app.campaign("dead")  # waits for approval: it goes only after the restart
    run = app.start_run(inbox=True)
    memory = PeakMemory(run.process.pid)  # the figure to compare the 20 MB bounce's with
    try:
        wait_for(lambda: "inbox synced" in run.logged(), timeout_s=30, what="the watcher's first pass")
        time.sleep(0.5)  # now in IDLE
        stack.restart_dovecot()
        wait_for(lambda: run.logged().count("inbox connected") >= 2, timeout_s=30, what="reconnecting")
        approved = app.cadence("approve", "--all")
        assert approved.returncode == 0, approved.stderr
        wait_for(lambda: suppressed(app, recipients[0]), timeout_s=40, what="the DSN after the restart")
        survived = run.process.poll() is None
    finally:
        run.stop()
        peak_kib = memory.stop()
    error_line = run.lines("inbox error")[0]
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="IMAP server restarted mid-IDLE", survived=survived and run.code == 0, lost=0,
           duplicates=duplicates, peak_rss_mib=round(peak_kib / 1024),
           message=error_line.split(" cadence.run: ", 1)[-1][:200])  # fmt: skip
    assert survived and run.code == 0, run.stderr
    assert (lost, duplicates) == (1, 0)  # dead@ is never delivered: it bounced, and the bounce was read
    assert app.sql("SELECT status FROM leads") == [("bounced",)]


def test_uidvalidity_reset_rescans_without_acting_twice(
    make_app: Callable[..., App], private_mail_stack: MailStack
) -> None:
    stack = private_mail_stack
    app = make_app(smtp_port=stack.submission_port)
    recipients = app.campaign("ok", "dead")

    def bounce_read_and_a_pass_after(logged: str) -> bool:
        return suppressed(app, recipients[1]) and logged.count("inbox synced") >= 2

    first = app.run_until(bounce_read_and_a_pass_after, inbox=True, what="the DSN")
    assert first.code == 0, first.stderr
    before = effects_snapshot(app)
    assert ("hard_bounce", recipients[1], 0, 1) in before["ledger"]

    changed = {folder: reset_uidvalidity(stack, folder) for folder in ("INBOX", "Sent")}

    def rescanned(logged: str) -> bool:
        last = max(logged.rfind(f"UIDVALIDITY of {folder} changed") for folder in changed)
        return (
            all(f"UIDVALIDITY of {f} changed" in logged for f in changed) and "inbox synced" in logged[last:]
        )

    rescan = app.run_until(rescanned, inbox=True, what="the rescan")
    after = effects_snapshot(app)
    lost, duplicates = lost_and_duplicates(stack, recipients[:1])
    reset_line = rescan.lines("UIDVALIDITY of INBOX changed")[0]
    record("fault", fault="UIDVALIDITY reset", survived=rescan.survived and rescan.code == 0, lost=lost,
           duplicates=duplicates, message=reset_line.split(": ", 1)[-1][:200])  # fmt: skip
    assert rescan.survived and rescan.code == 0, rescan.stderr
    assert after == before  # read again, acted on once
    assert (lost, duplicates) == (0, 0)


def test_huge_and_malformed_bounces_neither_stop_the_watcher_nor_blow_its_memory(
    make_app: Callable[..., App], private_mail_stack: MailStack
) -> None:
    stack = private_mail_stack
    app = make_app(smtp_port=stack.submission_port)
    marker = f"chaos-{app.tag}"
    huge_recipient = f"huge+{app.tag}@huge-prospect.example.com"
    broken_recipient = f"broken+{app.tag}@broken-prospect.example.com"
    size = 20 * 1024 * 1024
    deliver_to_inbox(stack, huge_bounce(marker=marker, recipient=huge_recipient, size_bytes=size))
    deliver_to_inbox(stack, malformed_bounce(marker=marker, recipient=broken_recipient))
    recipients = app.campaign("dead")  # its real DSN arrives after the two
    try:
        run = app.start_run(inbox=True)
        memory = PeakMemory(run.process.pid)
        try:
            wait_for(lambda: suppressed(app, recipients[0]), timeout_s=60, what="the DSN after the two")
            survived = run.process.poll() is None
        finally:
            run.stop()
            peak_kib = memory.stop()
    finally:
        expunge_matching(stack, "X-Chaos-Marker", marker)
    malformed = run.lines("is malformed")
    record("fault", fault="20 MB bounce and malformed MIME bounce", survived=survived and run.code == 0,
           lost=0, duplicates=0, bad_inputs=2, peak_rss_mib=round(peak_kib / 1024),
           message=(malformed or [""])[0].split(": ", 1)[-1][:200])  # fmt: skip
    assert survived and run.code == 0, run.stderr
    assert suppressed(app, huge_recipient)  # the big one was read, not skipped
    assert not suppressed(app, broken_recipient)
    assert malformed and f"<malformed-{marker}@mail.seller.test>" in malformed[0], run.stderr
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB for a {size >> 20} MiB message"
    assert sum(deliveries(stack, recipients).values()) == 0


# --- the database's disk ------------------------------------------------------------------------------------


def test_full_disk_stops_sending_with_a_clear_message_and_nothing_is_lost_or_doubled(
    tmp_path: Path, keyring_env: dict[str, str], private_mail_stack: MailStack
) -> None:
    """The data dir lives on a 24 MiB tmpfs mounted for the test (we are root: `mount -t tmpfs`), filled up
    with a file: first before `cadence run` starts, then while it sends one message every 2 seconds."""
    stack = private_mail_stack
    with small_tmpfs(tmp_path / "disk", size_kib=24 * 1024) as disk:
        app = App(data=disk / "data", env=keyring_env, stack=stack, tag=uuid.uuid4().hex[:8])
        app.add_account(smtp_port=stack.submission_port, password=stack.password)
        recipients = app.campaign(*["ok"] * 4)
        app.set_guardrails(min_delay_s=2, jitter_s=0)

        filler = fill_disk(disk)
        refused = app.cadence("run", "--once", "--no-inbox")
        refused_lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 1 and len(refused_lines) == 1, refused.stderr
        assert "is full" in refused_lines[0]
        assert sum(deliveries(stack, recipients).values()) == 0
        filler.unlink()

        run = app.start_run()
        try:
            wait_for(lambda: sum(deliveries(stack, recipients).values()), timeout_s=30, what="a first send")
            filler = fill_disk(disk)
            wait_for(lambda: "is full" in run.logged() or run.process.poll() is not None, timeout_s=10,
                     what="the disk-full message")  # fmt: skip
            time.sleep(4)  # two more send slots with a full disk
            sent_while_full = sum(deliveries(stack, recipients).values())
            survived = run.process.poll() is None
        finally:
            run.stop()
            filler.unlink()
        full_lines = run.lines("is full")
        back = app.run_until(delivered_to(stack, recipients), what="the restart after freeing space")
        assert back.code == 0, back.stderr
        status = app.status()
        for message in status["in_doubt"]:  # ended while the disk was full: it reached the server
            assert deliveries(stack, recipients)[message["recipient"]] == 1
            settled = app.cadence("approve", "--mark-sent", str(message["id"]))
            assert settled.returncode == 0, settled.stderr
        final = app.sql("SELECT state FROM messages")
    time.sleep(1.0)
    lost, duplicates = lost_and_duplicates(stack, recipients)
    record("fault", fault="database disk full", survived=survived and run.code == 0, lost=lost,
           duplicates=duplicates, sent_while_full=sent_while_full, in_doubt=len(status["in_doubt"]),
           message=refused_lines[0][:200])  # fmt: skip
    assert survived and run.code == 0, run.stderr
    assert full_lines and "not sending until the database can be written" in full_lines[0], run.stderr
    assert sent_while_full <= 1 + len(status["in_doubt"])  # nothing new went out once a write failed
    assert final == [("sent",)] * len(recipients)
    assert (lost, duplicates) == (0, 0)
