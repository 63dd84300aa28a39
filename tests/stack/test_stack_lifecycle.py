"""The stack itself: it comes up on free ports, serves each protocol, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack.stack import HOST, MailStack, StackError, missing_requirements


@pytest.fixture
def fresh_stack() -> MailStack:
    problem = missing_requirements()
    if problem:
        pytest.skip(f"mail stack not available: {problem}")
    return MailStack()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def test_start_serves_every_protocol_and_stop_leaves_no_process_or_file(fresh_stack: MailStack) -> None:
    stack = fresh_stack.start()
    try:
        ports = {stack.submission_port, stack.imaps_port, stack.lmtp_port, stack.internet_port}
        assert len(ports) == 4 and all(port > 1024 for port in ports)
        assert all(_accepts(port) for port in ports)
        assert stack.running
        commands = " ".join(stack.processes().values())
        for expected in ("master", "smtpd", "qmgr", "dovecot", "internet.py"):
            assert expected in commands
        pids = set(stack.processes())
        with smtplib.SMTP(HOST, stack.submission_port, timeout=5) as smtp:
            code, banner = smtp.ehlo()
            assert code == 250 and b"STARTTLS" in banner
        root = stack.root
    except BaseException:
        stack.stop()
        raise
    stack.stop()
    assert not stack.running
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}") and _not_zombie(pid)]
    assert not root.exists()
    assert not any(_accepts(port) for port in ports)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_two_stacks_run_side_by_side_without_sharing_anything() -> None:
    problem = missing_requirements()
    if problem:
        pytest.skip(f"mail stack not available: {problem}")
    with MailStack() as first, MailStack() as second:
        assert first.root != second.root
        assert not {first.submission_port, first.imaps_port} & {second.submission_port, second.imaps_port}
        assert not set(first.processes()) & set(second.processes())
        assert first.password != second.password


def test_imaps_presents_a_certificate_from_the_stacks_ca(mail_stack: MailStack) -> None:
    trusting = ssl.create_default_context(cafile=str(mail_stack.ca_file))
    with (
        socket.create_connection((HOST, mail_stack.imaps_port), timeout=5) as raw,
        trusting.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.recv(200).startswith(b"* OK")
    untrusting = ssl.create_default_context()
    with (
        socket.create_connection((HOST, mail_stack.imaps_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(raw, server_hostname="localhost")


def test_a_failed_start_stops_what_had_started_and_says_why(
    fresh_stack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.stack.stack as stack_module

    with socket.socket() as blocker:
        blocker.bind((HOST, 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        real_free_ports = stack_module._free_ports
        # the submission port (the first one) is already in use: Postfix cannot bind it
        monkeypatch.setattr(stack_module, "_free_ports", lambda count: [taken, *real_free_ports(count - 1)])
        with pytest.raises(StackError, match=r"(?i)postfix"):
            fresh_stack.start()
    assert not fresh_stack.root.exists()
    assert fresh_stack.processes() == {}


def test_run_stack_script_prints_working_settings_and_stops_cleanly_on_ctrl_c() -> None:
    problem = missing_requirements()
    if problem:
        pytest.skip(f"mail stack not available: {problem}")
    script = subprocess.Popen(
        [sys.executable, "-m", "tests.stack.run_stack", "--json"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert script.stdout is not None
        settings = json.loads(script.stdout.readline())
        root = Path(settings["root"])
        assert Path(settings["ca_file"]).is_file()
        with smtplib.SMTP(settings["smtp_host"], settings["smtp_port"], timeout=5) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=settings["ca_file"]))
            smtp.ehlo("client.test")
            assert smtp.login(settings["email"], settings["password"])[0] == 235
        script.send_signal(signal.SIGINT)
        _, stderr = script.communicate(timeout=20)
    finally:
        if script.poll() is None:
            script.kill()
            script.communicate()
    assert script.returncode == 0, stderr
    assert "stopped in" in stderr
    assert not root.exists()
    assert not _accepts(settings["smtp_port"]) and not _accepts(settings["imap_port"])


def test_missing_requirements_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.stack.stack as stack_module

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in (missing_requirements() or "")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        stack_module, "_which", lambda name: None if name == "postqueue" else f"/usr/sbin/{name}"
    )
    assert "missing binaries: postqueue" in (missing_requirements() or "")
    with pytest.raises(StackError, match="postqueue"):
        MailStack().start()
