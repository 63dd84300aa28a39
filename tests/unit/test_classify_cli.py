"""`cadence classify` run as a real subprocess: JSON lines, directories, stdin, missing paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BOUNCE = (
    b"From: MAILER-DAEMON@mx.sender.test (Mail Delivery System)\r\n"
    b"To: anna@sender.test\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"\r\n"
    b"I'm sorry to have to inform you that your message could not\r\n"
    b"be delivered to one or more recipients.\r\n"
    b"\r\n"
    b"<gone@recipient.test>: host mx.recipient.test[192.0.2.5] said: 550 5.1.1\r\n"
    b"    <gone@recipient.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)\r\n"
)
REPLY = (
    b"From: Lead <lead@recipient.test>\r\nTo: anna@sender.test\r\nSubject: Re: Invoice approvals\r\n"
    b"In-Reply-To: <cad-1@sender.test>\r\n\r\nPlease remove me from your list.\r\n\r\n"
    b"On Mon, 2 Nov 2026 at 09:00, Anna Berg <anna@sender.test> wrote:\r\n> reply 'unsubscribe'\r\n"
)


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "desktop"), QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "cadence", "classify", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def lines(output: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.decode("utf-8").splitlines()]


def test_directory_is_searched_recursively_and_each_mail_gives_one_line(tmp_path: Path) -> None:
    (tmp_path / "inbox" / "deep").mkdir(parents=True)
    (tmp_path / "inbox" / "a.eml").write_bytes(BOUNCE)
    (tmp_path / "inbox" / "deep" / "b.eml").write_bytes(REPLY)
    (tmp_path / "inbox" / "notes.txt").write_text("not a mail")
    result = run_cli(str(tmp_path / "inbox"))
    assert result.returncode == 0, result.stderr
    records = {Path(str(r["file"])).name: r for r in lines(result.stdout)}
    assert set(records) == {"a.eml", "b.eml"}
    assert records["a.eml"] == {
        "file": str(tmp_path / "inbox" / "a.eml"),
        "kind": "hard_bounce",
        "recipients": ["gone@recipient.test"],
        "status": "5.1.1",
        "reason": "user_unknown",
        "address_dead": True,
    }
    assert records["b.eml"]["kind"] == "unsubscribe"
    assert records["b.eml"]["recipients"] == []
    assert records["b.eml"]["address_dead"] is None


def test_stdin_and_a_missing_path(tmp_path: Path) -> None:
    result = run_cli("-", str(tmp_path / "missing.eml"), stdin=REPLY)
    assert result.returncode == 1
    first, second = lines(result.stdout)
    assert first["file"] == "-" and first["kind"] == "unsubscribe"
    assert second["file"] == str(tmp_path / "missing.eml")
    assert second["kind"] == "other" and "error" in second
    assert b"Traceback" not in result.stderr


def test_an_unparseable_file_gives_an_error_line_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "empty.eml").write_bytes(b"")
    (tmp_path / "ok.eml").write_bytes(BOUNCE)
    result = run_cli(str(tmp_path / "empty.eml"), str(tmp_path / "ok.eml"))
    assert result.returncode == 0
    empty, ok = lines(result.stdout)
    assert empty["kind"] == "other" and empty["error"]
    assert ok["kind"] == "hard_bounce"


def test_no_path_is_an_argument_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert b"cadence: error:" in result.stderr
