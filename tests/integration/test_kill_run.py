"""THE KILL TEST: `cadence run` is SIGKILLed at random (seeded) moments while it sends a 50-message
campaign to an SMTP peer that runs in its own process (so it keeps recording across kills). Restarts continue
the work until everything is settled. Then: nobody got a message twice, nothing approved was lost (each is
sent, or in doubt and reported by `cadence status --json`), and the ledger matches what the peer accepted."""

from __future__ import annotations

import json
import queue
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core.model import LedgerEntry, LedgerKind, MessageState, OutboxMessage
from cadence.paths import database_path
from tests.integration.cli_harness import (
    REPO,
    add_account,
    cadence_command,
    keyring_session,
    peer_process,
    run_cadence,
    write_campaign_files,
)

LEADS = 50
SEED = 20261127
MAX_RUNS = 40
OPEN_STATES = (MessageState.APPROVED, MessageState.QUEUED, MessageState.DEFERRED)


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stderr is not None
    with process.stderr:
        for line in process.stderr:
            lines.put(line)
    lines.put("")  # the process ended (also unblocks a wait for a first line that never came)


def _database_state(data_dir: Path) -> tuple[list[OutboxMessage], list[LedgerEntry]]:
    database = open_database(database_path(data_dir))
    try:
        store = SqliteStore(database)
        messages = list(store.list_messages())
        account_id = store.list_accounts()[0].id
        since = messages[0].created_at - timedelta(days=1)
        ledger = list(store.list_ledger(account_id=account_id, since=since, kinds=[LedgerKind.SENT]))
    finally:
        database.close()
    return messages, ledger


def _open_count(data_dir: Path) -> int:
    database = open_database(database_path(data_dir))
    try:
        counts = SqliteStore(database).count_messages()
    finally:
        database.close()
    return sum(counts.get(state, 0) for state in OPEN_STATES)


@pytest.mark.slow
@pytest.mark.keyring
def test_sigkill_at_random_moments_never_duplicates_nor_loses(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with (
        keyring_session(tmp_path / "keyring") as env,
        peer_process(tmp_path / "peer", reply_delay_s=0.05) as peer,
    ):
        added = add_account(data_dir, peer, env)
        assert added.returncode == 0, added.stderr
        leads_csv, body = write_campaign_files(tmp_path / "campaign", leads=LEADS)
        created = run_cadence(
            data_dir, "campaign", "add", "--name", "kill", "--leads", str(leads_csv),
            "--step", f"Hello {{first_name}}|{body}|0", env=env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["approved"] == LEADS
        approved = run_cadence(data_dir, "approve", "--all", env=env)
        assert approved.returncode == 0, approved.stderr

        rng = random.Random(SEED)
        kills = runs = 0
        started = time.monotonic()
        while runs < MAX_RUNS:
            runs += 1
            process = subprocess.Popen(
                cadence_command(data_dir, "run", "--once", "--no-inbox"),
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            lines: queue.Queue[str] = queue.Queue()
            reader = threading.Thread(target=_pump, args=(process, lines), daemon=True)
            reader.start()
            # start-up time varies a lot with the machine's load: the clock starts at the first log line
            # (the keyring is open, the first claim is next); half the kills fall in the first second
            lines.get(timeout=60)
            delay = rng.uniform(0.0, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, 4.0)
            deadline = time.monotonic() + delay
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                reader.join(10)
                kills += 1
                continue
            process.wait()
            reader.join(10)
            output = "".join(lines.queue)
            assert process.returncode == 0, output
            if _open_count(data_dir) == 0:
                break
        elapsed = time.monotonic() - started

        status_run = run_cadence(data_dir, "status", "--json", env=env)
        assert status_run.returncode == 0, status_run.stderr
        status = json.loads(status_run.stdout)
        records = peer.records()
        messages, ledger = _database_state(data_dir)

        # the user settles what is in doubt (this peer files no Sent copy): what the server took is marked
        # sent, the rest goes again; afterwards every lead has exactly one message
        taken = {r["message_id"] for r in records if r["reply"].startswith("2")}
        mark = [str(e["id"]) for e in status["in_doubt"] if e["message_id"] in taken]
        resend = [str(e["id"]) for e in status["in_doubt"] if e["message_id"] not in taken]
        for option, ids in (("--mark-sent", mark), ("--resend", resend)):
            if ids:
                settled = run_cadence(data_dir, "approve", option, *ids, env=env)
                assert settled.returncode == 0, settled.stderr
        final_run = run_cadence(data_dir, "run", "--once", "--no-inbox", env=env)
        assert final_run.returncode == 0, final_run.stderr
        final_status = json.loads(run_cadence(data_dir, "status", "--json", env=env).stdout)
        final_records = peer.stop()

    accepted = [r for r in records if r["reply"].startswith("2")]
    per_recipient = Counter(recipient for r in accepted for recipient in r["recipients"])
    duplicates = {address: n for address, n in per_recipient.items() if n > 1}
    accepted_ids = {r["message_id"] for r in accepted}

    sent = [m for m in messages if m.state is MessageState.SENT]
    in_doubt = [m for m in messages if m.state is MessageState.SENDING]
    lost = [m for m in messages if m.state not in (MessageState.SENT, MessageState.SENDING)]
    reported = {entry["id"] for entry in status["in_doubt"]}
    in_doubt_delivered = [m for m in in_doubt if m.message_id in accepted_ids]

    print(
        f"\nkill test: runs={runs} kills={kills} elapsed={elapsed:.1f}s sent={len(sent)} "
        f"peer_accepted={len(accepted)} duplicates={len(duplicates)} lost={len(lost)} "
        f"in_doubt={len(in_doubt)} (of which the peer had accepted {len(in_doubt_delivered)})"
    )
    assert runs < MAX_RUNS, "the work did not settle"
    assert kills > 0, "no run was killed: the test proved nothing"
    assert len(messages) == LEADS
    assert duplicates == {}
    assert lost == [], [(m.id, m.state, m.last_error) for m in lost]
    assert reported == {m.id for m in in_doubt}, "every in-doubt message is reported by status --json"
    assert status["queue"].get("sending", 0) == len(in_doubt)
    # every message recorded as sent was accepted by the peer, exactly once, and the ledger agrees
    assert {m.message_id for m in sent} <= accepted_ids
    assert len(ledger) == len(sent)
    assert sorted(entry.message_id or "" for entry in ledger) == sorted(m.message_id or "" for m in sent)
    settled_accepted = [r for r in accepted if r["message_id"] in {m.message_id for m in sent}]
    assert len(settled_accepted) == len(sent)
    # the peer accepted nothing that the database does not know as sent or in doubt
    assert accepted_ids <= {m.message_id for m in sent} | {m.message_id for m in in_doubt}

    # after the user settled the in-doubt messages: one message per lead, all recorded, nothing in doubt
    final_accepted = [r for r in final_records if r["reply"].startswith("2")]
    final_per_recipient = Counter(recipient for r in final_accepted for recipient in r["recipients"])
    print(
        f"after settling: marked sent {len(mark)}, sent again {len(resend)}, "
        f"recipients reached {len(final_per_recipient)}, most copies to one recipient "
        f"{max(final_per_recipient.values(), default=0)}"
    )
    assert final_status["queue"] == {"sent": LEADS} and final_status["in_doubt"] == []
    assert len(final_per_recipient) == LEADS and set(final_per_recipient.values()) == {1}
