"""Helpers for tests that drive `python -m cadence` as a subprocess: a private D-Bus session with an unlocked
gnome-keyring (the real Secret Service; its keyring files live in a temporary folder, never the user's), the
SMTP peer in a process of its own, and a runner for the commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.secrets_scan import register_secret

REPO = Path(__file__).resolve().parents[2]
KEYRING_PASSWORD = "cadence-test"
PEER_LOGIN = "alice@example.com"
PEER_PASSWORD = "alice-secret-pw"
PERMISSIVE = {
    "daily_cap": 1_000_000,
    "hourly_cap": 1_000_000,
    "domain_cap": 1_000_000,
    "min_delay_s": 0,
    "jitter_s": 0,
}


@contextmanager
def keyring_session(folder: Path) -> Iterator[dict[str, str]]:
    """Environment variables of a private session bus with an unlocked gnome-keyring."""
    if shutil.which("dbus-daemon") is None or shutil.which("gnome-keyring-daemon") is None:
        pytest.skip("dbus-daemon and gnome-keyring-daemon are needed (packages dbus, gnome-keyring)")
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(folder / "data")
    env["XDG_RUNTIME_DIR"] = str(folder)
    env.pop("PYTHON_KEYRING_BACKEND", None)
    bus = subprocess.run(
        [
            "dbus-daemon",
            "--session",
            "--fork",
            "--print-address=1",
            "--print-pid=1",
            f"--address=unix:path={folder / 'bus'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=20,
    )
    address, pid = bus.stdout.split()[:2]
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    try:
        subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
            input=KEYRING_PASSWORD,
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=20,
        )
        yield env
    finally:
        os.kill(int(pid), signal.SIGTERM)  # the keyring daemon leaves with its bus


@dataclass
class PeerProcess:
    process: subprocess.Popen[bytes]
    folder: Path
    port: int

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    def records(self) -> list[dict[str, Any]]:
        path = self.folder / "received.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> list[dict[str, Any]]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        return self.records()


@contextmanager
def peer_process(
    folder: Path,
    *,
    reply_delay_s: float = 0.0,
    users: tuple[str, ...] = (PEER_LOGIN,),
    password: str = PEER_PASSWORD,
) -> Iterator[PeerProcess]:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tests.integration.peer_process", "--dir", str(folder)]
    for user in users:
        command += ["--user", f"{user}:{password}"]
    if reply_delay_s:
        command += ["--reply-delay", str(reply_delay_s)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer = None
    try:
        deadline = time.monotonic() + 30
        while not (folder / "port").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SMTP peer process did not start")
            time.sleep(0.05)
        peer = PeerProcess(process=process, folder=folder, port=int((folder / "port").read_text()))
        yield peer
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cadence_command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cadence", "--data-dir", str(data_dir), *args]


def run_cadence(
    data_dir: Path,
    *args: str,
    env: Mapping[str, str],
    input_text: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    if "--password-stdin" in args and input_text:
        register_secret(input_text.strip("\r\n"), label="account password")  # the end-of-session scan
    return subprocess.run(
        cadence_command(data_dir, *args),
        cwd=REPO,
        env=dict(env),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def add_account(
    data_dir: Path, peer: PeerProcess, env: Mapping[str, str], *, guardrails: Mapping[str, Any] = PERMISSIVE
) -> subprocess.CompletedProcess[str]:
    return run_cadence(
        data_dir,
        "account",
        "add",
        "--email",
        PEER_LOGIN,
        "--smtp",
        f"127.0.0.1:{peer.port}",
        "--ca-file",
        str(peer.ca_file),
        "--guardrails",
        json.dumps(dict(guardrails)),
        "--all-hours",
        "--no-warmup",
        "--no-first-touch-approval",
        "--password-stdin",
        env=env,
        input_text=PEER_PASSWORD + "\n",
    )


def write_campaign_files(folder: Path, *, leads: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "leads.csv"
    rows = ["email,first_name,company"] + [
        f"lead{i:03d}@example.com,Person{i},Acme {i}" for i in range(leads)
    ]
    csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    body = folder / "step1.txt"
    body.write_text("Hello {first_name},\n\na short note about {company}.\n", encoding="utf-8")
    return csv_path, body
