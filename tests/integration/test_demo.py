"""`cadence demo --headless`: the real runtime against the loopback sandbox closes the loop — bounces,
unsubscribes and replies come back through the real inbox watcher and classifier and change what is sent —
and nothing connects anywhere but 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import logging
import sqlite3
import sys
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from cadence.app import open_store
from cadence.cli import main
from cadence.core.model import AuditResult, LeadStatus, LedgerKind, MessageState, SuppressionReason
from cadence.demo.recipients import BEHAVIOURS, Behaviour
from cadence.demo.sandbox import MARKER, SANDBOX_ADDRESS, SANDBOX_PASSWORD

# every connection and name lookup the process makes while the flag is on (audit hooks cannot be removed,
# so one hook records into whichever list is current)
_RECORDING: list[list[tuple[str, Any]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDING and event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        _RECORDING[-1].append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)


def _addresses(kind: Behaviour) -> list[str]:
    return [address for address, behaviour in BEHAVIOURS.items() if behaviour is kind]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[tuple[str, Any]]]]:
    folder = tmp_path_factory.mktemp("demo")
    seen: list[tuple[str, Any]] = []
    _RECORDING.append(seen)
    excepthook = sys.excepthook  # the command installs the headless one; leave the session as it was
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(
                [
                    "--data-dir",
                    str(folder),
                    "demo",
                    "--headless",
                    "--speed",
                    "5000",
                    "--until-sends",
                    "45",
                    "--timeout",
                    "90",
                    "--seed",
                    "3",
                ]
            )
    finally:
        _RECORDING.remove(seen)
        sys.excepthook = excepthook
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_cadence", False)]:
            root.removeHandler(handler)
            handler.close()
    assert code == 0
    yield folder, out.getvalue(), seen


@pytest.mark.timeout(150)
def test_only_loopback_is_contacted(demo_run: tuple[Path, str, list[tuple[str, Any]]]) -> None:
    _, output, seen = demo_run
    connects = [target for event, target in seen if event == "socket.connect"]
    assert connects, "the sandbox SMTP server was never connected to"
    for target in connects:
        if isinstance(target, tuple):  # AF_INET(6); AF_UNIX paths (the classifier's worker pipes) are local
            assert target[0] in ("127.0.0.1", "::1"), target
    lookups = [target for event, target in seen if event != "socket.connect"]
    assert all(host in ("127.0.0.1", "localhost", None) for host in lookups), lookups
    assert "SMTP clients seen: 127.0.0.1" in output


@pytest.mark.timeout(150)
def test_hard_bounces_are_suppressed_with_the_dsn_as_evidence(
    demo_run: tuple[Path, str, list[tuple[str, Any]]],
) -> None:
    folder, _, _ = demo_run
    opened = open_store(folder)
    try:
        store = opened.store
        (campaign,) = store.list_campaigns()
        leads = {lead.lead.email: lead for lead in store.list_leads(campaign.id)}
        for address in _addresses(Behaviour.HARD_BOUNCE):
            lead = leads[address]
            assert lead.status is LeadStatus.BOUNCED, address
            suppression = store.find_suppression(address)
            assert suppression is not None and suppression.reason is SuppressionReason.HARD_BOUNCE
            assert suppression.evidence_id is not None
            (sent,) = store.list_messages(lead_id=lead.lead.id, states=[MessageState.SENT])
            with sqlite3.connect(folder / "cadence.sqlite3") as db:
                (raw,) = db.execute(
                    "SELECT raw FROM evidence WHERE id = ?", (suppression.evidence_id,)
                ).fetchone()
            report = BytesParser(policy=compat32).parsebytes(raw)
            assert report.get_content_type() == "multipart/report"
            parts = [part.get_content_type() for part in report.walk()]
            assert "message/delivery-status" in parts and "message/rfc822" in parts
            assert sent.message_id.encode() in raw  # the returned original carries our Message-ID
            assert not store.list_messages(
                lead_id=lead.lead.id, states=[MessageState.APPROVED, MessageState.PENDING_APPROVAL]
            ), "a bounced lead still has mail waiting"
        bounces = store.list_ledger(
            account_id=campaign.account_id, since=campaign.created_at, kinds=[LedgerKind.HARD_BOUNCE]
        )
        sends = store.list_ledger(
            account_id=campaign.account_id, since=campaign.created_at, kinds=[LedgerKind.SENT]
        )
        assert len(bounces) == len(_addresses(Behaviour.HARD_BOUNCE)) and len(sends) >= 45
    finally:
        opened.close()


@pytest.mark.timeout(150)
def test_unsubscribe_and_not_interested_are_suppressed(
    demo_run: tuple[Path, str, list[tuple[str, Any]]],
) -> None:
    folder, _, _ = demo_run
    opened = open_store(folder)
    try:
        for address in _addresses(Behaviour.UNSUBSCRIBE):
            found = opened.store.find_suppression(address)
            assert found is not None and found.reason is SuppressionReason.UNSUBSCRIBE, address
        for address in _addresses(Behaviour.NOT_INTERESTED):
            found = opened.store.find_suppression(address)
            assert found is not None and found.reason is SuppressionReason.NOT_INTERESTED, address
        silent = [a for a, b in BEHAVIOURS.items() if b in (Behaviour.REPLY, Behaviour.OUT_OF_OFFICE)]
        assert all(opened.store.find_suppression(a) is None for a in silent), (
            "a reply or auto-reply suppressed"
        )
    finally:
        opened.close()


@pytest.mark.timeout(150)
def test_replies_stop_follow_ups_and_the_breaker_trips(
    demo_run: tuple[Path, str, list[tuple[str, Any]]],
) -> None:
    folder, output, _ = demo_run
    opened = open_store(folder)
    try:
        store = opened.store
        (campaign,) = store.list_campaigns()
        replied = [lead for lead in store.list_leads(campaign.id) if lead.status is LeadStatus.REPLIED]
        assert len(replied) >= 2
        assert {lead.lead.email for lead in replied} <= set(_addresses(Behaviour.REPLY))
        for lead in replied:
            messages = store.list_messages(lead_id=lead.lead.id)
            assert [m.step_index for m in messages if m.state is MessageState.SENT] == [1], lead.lead.email
            assert all(m.state is MessageState.CANCELLED for m in messages if m.step_index > 1), (
                f"{lead.lead.email} replied but a follow-up is still queued"
            )
        # silent leads keep their follow-up: the stop is specific to the leads that answered
        silent = {lead.lead.id for lead in store.list_leads(campaign.id, statuses=[LeadStatus.CONTACTED])}
        follow_ups = [m for m in store.list_messages(campaign_id=campaign.id) if m.step_index == 2]
        assert any(m.lead_id in silent and m.state is not MessageState.CANCELLED for m in follow_ups)
        paused = store.query_audit(account_id=campaign.account_id, results=[AuditResult.PAUSED])
        assert any("bounce breaker" in entry.reason for entry in paused), [e.reason for e in paused]
        assert (
            "automatic pauses during the run: 1" in output or "automatic pauses during the run: 2" in output
        )
    finally:
        opened.close()


@pytest.mark.timeout(150)
def test_the_sandbox_password_never_reaches_disk(demo_run: tuple[Path, str, list[tuple[str, Any]]]) -> None:
    folder, output, _ = demo_run
    assert (folder / MARKER).is_file()
    secret = SANDBOX_PASSWORD.encode()
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert SANDBOX_PASSWORD not in output
    opened = open_store(folder)
    try:
        (account,) = opened.store.list_accounts()
        assert account.email == SANDBOX_ADDRESS and account.settings.smtp_host == "127.0.0.1"
    finally:
        opened.close()


def test_refuses_to_wipe_a_folder_it_did_not_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    precious = tmp_path / "cadence.sqlite3"
    precious.write_bytes(b"real data")
    code = main(["--data-dir", str(tmp_path), "demo", "--headless", "--until-sends", "1"])
    assert code == 1
    assert precious.read_bytes() == b"real data"
    assert "did not make" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--speed", "0"],
        ["demo", "--headless", "--until-sends", "0"],
        ["demo", "--until-sends", "5"],  # only with --headless
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "cadence: error:" in capsys.readouterr().err
