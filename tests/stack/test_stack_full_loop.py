"""The whole loop as a user runs it, against the real mail stack: `cadence account add` with the stack's
settings (password through --password-stdin into a private gnome-keyring), a campaign to ok/dead/grey
recipients, `approve --all`, `cadence run --until <soon>`, then `cadence status --json` and the store.
Postfix relays to the fake internet, the 550 for dead@ comes back as a real DSN in INBOX, and the watcher
inside `cadence run` must turn it into a suppression with the DSN kept as evidence."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.classify import classify
from cadence.core.model import InboundKind, SuppressionReason
from tests.integration.cli_harness import PERMISSIVE, keyring_session, run_cadence
from tests.stack.mail import imap_connector
from tests.stack.stack import MailStack

pytestmark = [pytest.mark.keyring]


async def _sent_folder_has(stack: MailStack, message_ids: list[str]) -> bool:
    mailbox = await imap_connector(stack)()
    try:
        return all([await mailbox.find_message_id("Sent", message_id) for message_id in message_ids])
    finally:
        await mailbox.close()


@pytest.fixture(scope="module")
def keyring_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with keyring_session(tmp_path_factory.mktemp("keyring")) as env:
        yield env


def test_dead_recipient_is_suppressed_with_its_dsn_as_evidence_after_a_real_run(
    tmp_path: Path, keyring_env: dict[str, str], mail_stack: MailStack
) -> None:
    stack, env, data = mail_stack, keyring_env, tmp_path / "data"
    tag = uuid.uuid4().hex[:8]
    # the lead importer refuses special-use domains such as .test, so the prospects live under example.com;
    # Postfix relays every domain but seller.test to the fake internet, which acts on the local part
    ok, dead, grey = (f"{kind}+{tag}@{kind}-prospect.example.com" for kind in ("ok", "dead", "grey"))

    added = run_cadence(
        data, "account", "add", "--email", stack.user, "--name", "Sam Seller",
        "--smtp", f"{stack.host}:{stack.submission_port}", "--imap", f"{stack.host}:{stack.imaps_port}",
        "--security", "starttls", "--ca-file", str(stack.ca_file), "--guardrails", json.dumps(PERMISSIVE),
        "--all-hours", "--no-warmup", "--password-stdin", env=env, input_text=stack.password + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["password_stored"] is True

    leads = tmp_path / "leads.csv"
    leads.write_text(f"email,first_name\n{ok},Olive\n{dead},Dan\n{grey},Greta\n", encoding="utf-8")
    body = tmp_path / "step1.txt"
    body.write_text("Hello {first_name},\n\nwould a short call next week make sense?\n", encoding="utf-8")
    created = run_cadence(
        data, "campaign", "add", "--name", "stack", "--leads", str(leads),
        "--step", f"Hi {{first_name}}|{body}|0", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["pending_approval"] == 3
    approved = run_cadence(data, "approve", "--all", env=env)
    assert approved.returncode == 0 and json.loads(approved.stdout)["approved"] == 3, approved.stderr

    until = (datetime.now(UTC) + timedelta(seconds=8)).isoformat(timespec="seconds")
    ran = run_cadence(data, "run", "--until", until, "--poll", "1", env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert stack.password not in ran.stderr + (data / "cadence.log").read_text()

    delivered = {record["rcpt"]: record["message_id"] for record in stack.delivered()}
    assert ok in delivered and grey in delivered and dead not in delivered
    # Postfix never files submitted mail into Sent: the copies there are the ones Cadence appended
    assert asyncio.run(_sent_folder_has(stack, [delivered[ok], delivered[grey]]))
    grey_replies = [r["reply"][:3] for r in stack.attempts() if r["rcpt"] == grey]
    assert grey_replies == ["451", "250"]  # accepted at Postfix's retry, Cadence submitted once

    status = run_cadence(data, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["queue"].get("sent") == 3 and sum(report["queue"].values()) == 3  # nothing left to send
    assert report["in_doubt"] == []
    assert report["accounts"][0]["paused"] is False
    # the session's stack INBOX also holds other tests' DSNs, which the watcher acts on too
    suppressions = report["suppressions"]
    assert suppressions["by_reason"].get("hard_bounce", 0) >= 1

    database = open_database(data / "cadence.sqlite3")
    try:
        store = SqliteStore(database)
        assert suppressions["total"] == len(store.list_suppressions())
        suppression = store.find_suppression(dead)
        assert suppression is not None, "the dead address was not suppressed"
        assert suppression.reason is SuppressionReason.HARD_BOUNCE
        assert suppression.evidence_id is not None
        evidence = classify(store.get_evidence(suppression.evidence_id))
        bounced = store.get_message_by_message_id(evidence.original_message_id or "")
        assert store.find_suppression(ok) is None and store.find_suppression(grey) is None
    finally:
        database.close()
    assert evidence.kind is InboundKind.HARD_BOUNCE
    assert evidence.recipients == (dead,) and evidence.status == "5.1.1"
    assert bounced.recipient == dead  # the DSN names the very message Cadence sent to that lead
