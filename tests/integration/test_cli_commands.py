"""The headless commands as a user runs them: `python -m cadence …` subprocesses on a real data dir, the
password in a private gnome-keyring, the SMTP peer in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_harness import (
    PEER_PASSWORD,
    REPO,
    PeerProcess,
    add_account,
    keyring_session,
    peer_process,
    run_cadence,
    write_campaign_files,
)

pytestmark = [pytest.mark.keyring, pytest.mark.slow]  # subprocesses: ~1 min on a busy machine


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with keyring_session(tmp_path_factory.mktemp("keyring")) as session:
        yield session


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerProcess]:
    with peer_process(tmp_path_factory.mktemp("peer")) as process:
        yield process


def test_status_of_a_new_data_dir_is_empty_and_valid_json(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cadence(tmp_path / "data", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["queue"] == {} and status["accounts"] == [] and status["in_doubt"] == []
    assert status["suppressions"] == {"total": 0, "by_reason": {}}
    assert (tmp_path / "data" / "cadence.sqlite3").exists()
    assert (tmp_path / "data" / "cadence.log").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--smtp", "no-port"], "HOST:PORT"),
        (["--smtp", "h:1", "--guardrails", "{not json"], "not JSON"),
        (["--smtp", "h:1", "--guardrails", '{"daily_caps": 3}'], "unknown guardrail"),
        (["--smtp", "h:1", "--daily-cap", "-1"], "must not be negative"),
        (["--smtp", "h:1", "--ca-file", "/nonexistent.pem"], "does not exist"),
    ],
)
def test_bad_account_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    result = run_cadence(tmp_path / "data", "account", "add", "--email", "a@example.com", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_campaign_steps_are_refused_before_anything_is_stored(
    tmp_path: Path, env: dict[str, str]
) -> None:
    leads, body = write_campaign_files(tmp_path, leads=2)
    for step in ("only|two", f"Hi|{tmp_path / 'missing.txt'}|0", f"Hi|{body}|soon", f"Hi|{body}|2"):
        result = run_cadence(
            tmp_path / "data",
            "campaign",
            "add",
            "--name",
            "x",
            "--leads",
            str(leads),
            "--step",
            step,
            env=env,
        )
        assert result.returncode == 2, (step, result.stderr)
        assert "--step" in result.stderr
    assert json.loads(run_cadence(tmp_path / "data", "status", "--json", env=env).stdout)["queue"] == {}


def test_account_campaign_approve_run_status_end_to_end(
    tmp_path: Path, env: dict[str, str], peer: PeerProcess
) -> None:
    data = tmp_path / "data"
    added = add_account(data, peer, env)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["password_stored"] is True
    assert PEER_PASSWORD not in (data / "cadence.log").read_text() + added.stderr
    duplicate = add_account(data, peer, env)
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr

    leads, body = write_campaign_files(tmp_path, leads=4)
    created = run_cadence(
        data, "campaign", "add", "--name", "t", "--leads", str(leads),
        "--step", f"Hello {{first_name}}|{body}|0", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {
        "id": 1, "leads": 4, "skipped_rows": 0, "pending_approval": 0, "approved": 4, "unrenderable": 0
    }  # fmt: skip

    before = len(peer.records())
    ran = run_cadence(data, "run", "--once", "--no-inbox", env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count(" sent account=1 ") == 4
    records = peer.records()[before:]
    assert sorted(r["recipients"][0] for r in records) == [f"lead{i:03d}@example.com" for i in range(4)]
    assert PEER_PASSWORD not in (data / "cadence.log").read_text()

    status = json.loads(run_cadence(data, "status", "--json", env=env).stdout)
    assert status["queue"] == {"sent": 4}
    assert status["accounts"][0]["caps"]["daily"]["used"] == 4
    assert status["accounts"][0]["paused"] is False

    again = run_cadence(data, "run", "--once", "--no-inbox", env=env)
    assert again.returncode == 0 and len(peer.records()) == before + 4  # nothing sent twice


def test_approve_by_id_and_held_drafts_wait(tmp_path: Path, env: dict[str, str], peer: PeerProcess) -> None:
    data = tmp_path / "data"
    guardrails = {"daily_cap": 1_000_000, "hourly_cap": 1_000_000, "min_delay_s": 0, "jitter_s": 0}
    added = run_cadence(
        data, "account", "add", "--email", "alice@example.com", "--smtp", f"127.0.0.1:{peer.port}",
        "--ca-file", str(peer.ca_file), "--guardrails", json.dumps(guardrails), "--all-hours", "--no-warmup",
        "--password-stdin", env=env, input_text=PEER_PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    leads, body = write_campaign_files(tmp_path, leads=3)
    created = run_cadence(
        data, "campaign", "add", "--name", "t", "--leads", str(leads), "--step", f"Hi|{body}|0", env=env
    )
    assert json.loads(created.stdout)["pending_approval"] == 3  # first touches wait for approval
    before = len(peer.records())
    assert run_cadence(data, "run", "--once", "--no-inbox", env=env).returncode == 0
    assert len(peer.records()) == before

    approved = run_cadence(data, "approve", "1", "99", env=env)
    assert approved.returncode == 1 and json.loads(approved.stdout) == {"approved": 1, "skipped": [99]}
    assert run_cadence(data, "run", "--once", "--no-inbox", env=env).returncode == 0
    assert len(peer.records()) == before + 1
    status = json.loads(run_cadence(data, "status", "--json", env=env).stdout)
    assert status["queue"] == {"pending_approval": 2, "sent": 1} and status["pending_approval"] == 2
    not_in_doubt = run_cadence(data, "approve", "--resend", "1", env=env)  # sent, not in doubt: refused
    assert not_in_doubt.returncode == 1
    assert json.loads(not_in_doubt.stdout) == {"marked_sent": [], "resend": [], "skipped": [1]}
    mixed = run_cadence(data, "approve", "--all", "--mark-sent", "1", env=env)
    assert mixed.returncode == 2 and "not both" in mixed.stderr


def test_unusable_data_dir_gives_a_clear_message_and_a_non_zero_exit(
    tmp_path: Path, env: dict[str, str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cadence(blocker / "data", "status", "--json", env=env)
    assert result.returncode == 1
    assert "data folder" in result.stderr and "Traceback" not in result.stderr


_WINDOW_PROBE = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
import cadence.qt.main_window as main_window
from cadence.cli import main

shown = main_window.MainWindow.show
def show(self):
    shown(self)
    def grab():
        loading = self.findChild(main_window.QWidget, "loading")  # shown while the database opens
        if loading is not None and loading.isVisible():
            QTimer.singleShot(100, grab)
            return
        print("tabs", self.findChildren(main_window.QTabWidget)[0].count(), flush=True)
        self.grab().save(sys.argv[2])
        self.close()
    QTimer.singleShot(1500, grab)
main_window.MainWindow.show = show
sys.exit(main(["--data-dir", sys.argv[1]]))
"""


def test_cadence_without_a_subcommand_opens_the_window_over_the_real_runtime(
    tmp_path: Path, env: dict[str, str]
) -> None:
    screenshot = tmp_path / "window.png"
    result = subprocess.run(
        [sys.executable, "-c", _WINDOW_PROBE, str(tmp_path / "data"), str(screenshot)],
        cwd=REPO,
        env={**env, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "tabs " in result.stdout and screenshot.stat().st_size > 10_000
    assert (tmp_path / "data" / "cadence.sqlite3").exists()


def test_window_start_up_failure_is_a_clear_message_and_exit_1(tmp_path: Path, env: dict[str, str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "cadence", "--data-dir", str(blocker / "data")],
        cwd=REPO,
        env={**env, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "could not start" in result.stderr and "Traceback" not in result.stderr
