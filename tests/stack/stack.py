"""A real, throw-away mail stack on loopback: Postfix submission + Dovecot IMAPS/LMTP + a fake internet.

Built from /work/shared/guides/mail-stack.md. Needs root and the Debian packages postfix, dovecot-imapd
and dovecot-lmtpd. Everything lives in one temp dir; every port is a free high port on 127.0.0.1.

    with MailStack() as stack:
        stack.submission_port, stack.imaps_port, stack.ca_file, stack.user, stack.password
        stack.delivered()          # what the fake internet accepted (Message-IDs included)

Postfix relays every domain but seller.test to the internet (which answers by local part: see
internet.py) and hands seller.test mail, including the DSNs it writes, to Dovecot over LMTP, so a bounce
ends up in the seller's INBOX as real mail. Retry timings are shortened (see `PostfixTimings`).
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from tests.secrets_scan import register_secret

HOST = "127.0.0.1"
SELLER = "seller@seller.test"
SELLER_DOMAIN = "seller.test"
PROSPECT_DOMAIN = "prospect.test"
INTERNET_SCRIPT = Path(__file__).with_name("internet.py")
MASTER_CF_DIST = Path("/usr/share/postfix/master.cf.dist")
POSTFIX_FILES = Path("/etc/postfix/postfix-files")
REQUIRED_BINARIES = ("postfix", "postqueue", "postsuper", "dovecot", "doveadm")
SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The stack could not be built, started or stopped; the message carries the relevant log tail."""


def missing_requirements() -> str | None:
    """Why the stack cannot run here (not root, a binary or file missing), or None when it can."""
    if os.geteuid() != 0:
        return "the mail stack needs root (Postfix and Dovecot drop privileges themselves)"
    missing = [name for name in REQUIRED_BINARIES if _which(name) is None]
    if missing:
        return f"missing binaries: {', '.join(missing)} (apt-get install postfix dovecot-imapd dovecot-lmtpd)"
    if not Path("/usr/lib/dovecot/lmtp").exists():
        return "Dovecot LMTP is not installed (apt-get install dovecot-lmtpd)"
    if not MASTER_CF_DIST.exists():
        return f"{MASTER_CF_DIST} is missing (Debian's postfix package provides it)"
    for user in ("postfix", "dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"the system user {user!r} is missing"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH + ":" + os.environ.get("PATH", ""))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass(frozen=True)
class PostfixTimings:
    """Queue timings in seconds. Postfix retries on the backoff grid, so a delay warning comes at the first
    deferral after `delay_warning_s` and the final bounce at the first one after `queue_lifetime_s`."""

    queue_run_delay_s: int = 1
    minimal_backoff_s: int = 1
    maximal_backoff_s: int = 2
    delay_warning_s: int = 3
    queue_lifetime_s: int = 10


@dataclass
class MailStack:
    """One throw-away stack. `start()` builds and starts everything; `stop()` ends it and removes the dir."""

    timings: PostfixTimings = field(default_factory=PostfixTimings)
    slow_seconds: float = 1.0
    keep_dir: bool = False  # leave the temp dir (logs, mail) after stop, for diagnosis

    user: str = SELLER
    password: str = field(default_factory=lambda: "pw-" + uuid.uuid4().hex[:12])
    host: str = HOST

    root: Path = field(init=False)
    submission_port: int = field(init=False, default=0)
    imaps_port: int = field(init=False, default=0)
    lmtp_port: int = field(init=False, default=0)
    internet_port: int = field(init=False, default=0)
    start_seconds: float = field(init=False, default=0.0)
    stop_seconds: float = field(init=False, default=0.0)
    stop_notes: list[str] = field(init=False, default_factory=list)  # processes that needed SIGKILL

    _internet: subprocess.Popen[bytes] | None = field(init=False, default=None, repr=False)
    _cert_name: str = field(init=False, default="server", repr=False)  # file stem under tls/
    _tag: str = field(init=False, default_factory=lambda: uuid.uuid4().hex[:8], repr=False)

    def __post_init__(self) -> None:
        register_secret(self.password, label="mail stack password")  # the end-of-session secrets scan

    # --- paths -------------------------------------------------------------------------------------------

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the certificate Dovecot and (normally) Postfix present: clients trust this."""
        return self.tls_dir / "ca.pem"

    @property
    def dovecot_dir(self) -> Path:
        return self.root / "dovecot"

    @property
    def dovecot_conf(self) -> Path:
        return self.dovecot_dir / "dovecot.conf"

    @property
    def postfix_dir(self) -> Path:
        return self.root / "postfix"

    @property
    def postfix_conf_dir(self) -> Path:
        return self.postfix_dir / "conf"

    @property
    def postfix_log(self) -> Path:
        return self.postfix_dir / "postfix.log"

    @property
    def dovecot_log(self) -> Path:
        return self.dovecot_dir / "dovecot.log"

    @property
    def internet_dir(self) -> Path:
        return self.root / "internet"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    # --- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> MailStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> MailStack:
        problem = missing_requirements()
        if problem:
            raise StackError(problem)
        began = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="cadence-stack-"))
        try:
            self._build()
            self._spawn_internet()  # its Python start-up overlaps with Dovecot's and Postfix's
            self._start_dovecot()
            self._start_postfix(first=True)
            self._wait_port(self.internet_port, "the fake internet", log=self.internet_dir / "internet.log")
        except BaseException:
            with contextlib.suppress(StackError):  # the start-up error is the one to report
                self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop Postfix, Dovecot and the internet, check that no process of theirs is left (a straggler is
        killed: noted in `stop_notes` when it yields to SIGKILL, a StackError when not even then), then
        remove the temp dir."""
        began = time.monotonic()
        if not hasattr(self, "root"):
            return
        watched = self._stack_pids()
        problems: list[str] = []
        if self._postfix_master_pid() is not None:
            result = self.postfix_command("postfix", "stop", check=False)
            if result.returncode != 0:
                problems.append(f"postfix stop failed: {result.stderr.strip()}")
        internet, self._internet = self._internet, None
        if internet is not None and internet.poll() is None:
            internet.terminate()
        dovecot = self._dovecot_master_pid()
        if dovecot is not None:
            self._note_killed("Dovecot", _end_process_tree(dovecot, grace_s=5.0))
        self._note_killed("stack", _kill_after(watched, grace_s=5.0))
        if internet is not None:
            internet.wait(timeout=5)
        survivors = {pid: _cmdline(pid) for pid in watched if _alive(pid)}
        if survivors:
            problems.append(f"processes still alive after SIGKILL: {survivors}")
        self.stop_seconds = time.monotonic() - began
        if not self.keep_dir:
            shutil.rmtree(self.root, ignore_errors=True)
        if problems:
            raise StackError("; ".join(problems))

    def _note_killed(self, what: str, killed: dict[int, str]) -> None:
        if killed:
            note = f"{what}: killed after the grace period: {killed}"
            log.warning("mail stack %s: %s", self.root, note)
            self.stop_notes.append(note)

    @property
    def running(self) -> bool:
        """Postfix, Dovecot and the internet all have a live main process."""
        return (
            self._postfix_master_pid() is not None
            and self._dovecot_master_pid() is not None
            and self._internet is not None
            and self._internet.poll() is None
        )

    def processes(self) -> dict[int, str]:
        """pid → command line of every process that belongs to this stack (masters and their children)."""
        return {pid: _cmdline(pid) for pid in self._stack_pids()}

    def _stack_pids(self) -> set[int]:
        roots = {pid for pid in (self._postfix_master_pid(), self._dovecot_master_pid()) if pid}
        if self._internet is not None and self._internet.poll() is None:
            roots.add(self._internet.pid)
        return _with_descendants(roots)

    # --- build -------------------------------------------------------------------------------------------

    def _build(self) -> None:
        self.root.chmod(0o755)  # postfix, dovenull and the mail user must traverse it
        self.submission_port, self.imaps_port, self.lmtp_port, self.internet_port = _free_ports(4)
        for directory in (
            self.tls_dir,
            self.dovecot_dir,
            self.mail_dir,
            self.internet_dir,
            self.postfix_conf_dir,
            self.postfix_dir / "spool",
            self.postfix_dir / "data",
        ):
            directory.mkdir(parents=True)
        mail_uid, mail_gid, self._mail_user, self._mail_group = _mail_identity()
        os.chown(self.mail_dir, mail_uid, mail_gid)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.postfix_dir / "data", postfix.pw_uid, postfix.pw_gid)

        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._issue(ca, "server")

        users = self.dovecot_dir / "users"
        users.write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        dovecot_gid = pwd.getpwnam("dovecot").pw_gid
        os.chown(users, 0, dovecot_gid)
        users.chmod(0o640)

        self.dovecot_conf.write_text(self._dovecot_config())
        self._write_postfix_config("main.cf", self._postfix_main_cf("server"))
        self._write_postfix_config("master.cf", self._postfix_master_cf())

    def _write_postfix_config(self, name: str, text: str) -> None:
        path = self.postfix_conf_dir / name
        path.write_text(text)
        # Postfix re-reads a file changed within the last second, 300 ms at a time, until it is older
        # (1.2 s per command here): backdate it.
        past = time.time() - 10
        os.utime(path, (past, past))

    def _issue(self, ca: trustme.CA, name: str) -> None:
        cert = ca.issue_cert("localhost", HOST, "mail.seller.test")
        key = self.tls_dir / f"{name}.key"
        chain = self.tls_dir / f"{name}.pem"
        cert.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        for index, pem in enumerate(cert.cert_chain_pems):
            pem.write_to_path(str(chain), append=index > 0)

    def _dovecot_config(self) -> str:
        d = self.dovecot_dir
        return f"""\
base_dir = {d}/run
state_dir = {d}/state
instance_name = cadence-stack-{self._tag}
protocols = imap lmtp
listen = {HOST}
log_path = {self.dovecot_log}
auth_verbose = yes
auth_failure_delay = 0
ssl = required
ssl_cert = <{self.tls_dir}/server.pem
ssl_key = <{self.tls_dir}/server.key
auth_mechanisms = plain login
mail_location = maildir:{self.mail_dir}/%d/%n/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={self._mail_user} gid={self._mail_group} home={self.mail_dir}/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {self.lmtp_port}
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    def _postfix_main_cf(self, cert_name: str) -> str:
        p, t = self.postfix_dir, self.timings
        return f"""\
compatibility_level = 3.6
queue_directory = {p}/spool
data_directory = {p}/data
maillog_file_prefixes = {self.root}
maillog_file = {self.postfix_log}
myhostname = mail.seller.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
relayhost = [{HOST}]:{self.internet_port}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
virtual_mailbox_domains = {self.user.rpartition("@")[2]}
virtual_mailbox_maps = inline:{{ {self.user}=ok }}
virtual_transport = lmtp:inet:[{HOST}]:{self.lmtp_port}
smtpd_tls_cert_file = {self.tls_dir}/{cert_name}.pem
smtpd_tls_key_file = {self.tls_dir}/{cert_name}.key
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.dovecot_dir}/run/auth-postfix
queue_run_delay = {t.queue_run_delay_s}s
minimal_backoff_time = {t.minimal_backoff_s}s
maximal_backoff_time = {t.maximal_backoff_s}s
maximal_queue_lifetime = {t.queue_lifetime_s}s
bounce_queue_lifetime = {t.queue_lifetime_s}s
delay_warning_time = {t.delay_warning_s}s
"""

    def _postfix_master_cf(self) -> str:
        lines = [
            f"{HOST}:{self.submission_port} inet n  -       n       -       -       smtpd",
            "  -o syslog_name=postfix/submission",
            "  -o smtpd_tls_security_level=encrypt",
            "  -o smtpd_sasl_auth_enable=yes",
            "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
            "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
        ]
        keep = False
        for line in MASTER_CF_DIST.read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t":
                if keep:
                    lines.append(line)
                continue
            fields = line.split()
            keep = len(fields) >= 8 and fields[1] != "inet"
            if keep:
                fields[4] = "n"  # no chroot: absolute paths such as smtpd_sasl_path must resolve
                lines.append(" ".join(fields))
        return "\n".join(lines) + "\n"

    # --- Dovecot -----------------------------------------------------------------------------------------

    def _start_dovecot(self) -> None:
        _run(["dovecot", "-c", str(self.dovecot_conf)], what="dovecot start", log=self.dovecot_log)
        self._wait_for(
            lambda: self._dovecot_master_pid() is not None, "Dovecot's pid file", log=self.dovecot_log
        )
        self._wait_port(self.imaps_port, "Dovecot IMAPS", log=self.dovecot_log)
        self._wait_port(self.lmtp_port, "Dovecot LMTP", log=self.dovecot_log)
        self._wait_for(
            lambda: (self.dovecot_dir / "run" / "auth-postfix").exists(),
            "Dovecot's auth socket",
            log=self.dovecot_log,
        )

    def _stop_dovecot(self) -> None:
        pid = self._dovecot_master_pid()
        if pid is None:
            return
        self._note_killed("Dovecot", _end_process_tree(pid, grace_s=5.0))

    def _dovecot_master_pid(self) -> int | None:
        return _pid_from(self.dovecot_dir / "run" / "master.pid") if hasattr(self, "root") else None

    def stop_dovecot(self) -> None:
        """Stop Dovecot and wait until all its processes are gone (IMAP clients are cut off)."""
        self._stop_dovecot()

    def start_dovecot(self) -> None:
        if self._dovecot_master_pid() is None:
            self._start_dovecot()

    @contextlib.contextmanager
    def frozen_imap_sessions(self) -> Iterator[set[int]]:
        """SIGSTOP every open IMAP session (a server that stops answering mid-command) and SIGCONT them
        on exit. Connections opened meanwhile get fresh, working processes."""
        frozen = {pid for pid, command in self.processes().items() if command.rsplit("/", 1)[-1] == "imap"}
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield frozen
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def restart_dovecot(self) -> None:
        """Stop Dovecot (its IMAP clients are cut off) and start it again on the same ports."""
        self._stop_dovecot()
        self._start_dovecot()

    # --- internet ----------------------------------------------------------------------------------------

    def _spawn_internet(self) -> None:
        log = self.internet_dir / "internet.log"
        with log.open("wb") as out:
            self._internet = subprocess.Popen(
                [
                    sys.executable,
                    str(INTERNET_SCRIPT),
                    "--port",
                    str(self.internet_port),
                    "--outdir",
                    str(self.internet_dir),
                    "--slow-seconds",
                    str(self.slow_seconds),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl+C in a terminal reaches it only through stop()
            )

    # --- Postfix -----------------------------------------------------------------------------------------

    def postfix_command(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a Postfix tool (postfix, postqueue, postsuper, postconf) on this stack's configuration."""
        return _run(
            [program, "-c", str(self.postfix_conf_dir), *args],
            what=program,
            log=self.postfix_log,
            check=check,
        )

    def _start_postfix(self, *, first: bool = False) -> None:
        if first:
            self._make_queue_directories()
        (self.postfix_dir / "spool" / "quick-start").touch()
        self.postfix_command("postfix", "start")
        self._wait_port(self.submission_port, "Postfix submission", log=self.postfix_log, banner=b"220")

    def _make_queue_directories(self) -> None:
        """What `postfix start` has its integrity check do (2.5 s here, most of the start-up time), done
        directly from Postfix's own list of queue directories, owners and modes."""
        spool = self.postfix_dir / "spool"
        if not POSTFIX_FILES.exists():
            self.postfix_command("postfix", "check-fatal")
            return
        owners = {"$mail_owner": pwd.getpwnam("postfix").pw_uid, "root": 0, "-": -1}
        groups = {"$setgid_group": grp.getgrnam("postdrop").gr_gid, "-": -1}
        for line in POSTFIX_FILES.read_text().splitlines():
            fields = line.split(":")
            if len(fields) < 5 or fields[1] != "d" or not fields[0].startswith("$queue_directory/"):
                continue
            directory = spool / fields[0].removeprefix("$queue_directory/")
            directory.mkdir(exist_ok=True)
            os.chown(directory, owners.get(fields[2], -1), groups.get(fields[3], -1))
            directory.chmod(int(fields[4], 8))

    def start_postfix(self) -> None:
        if self._postfix_master_pid() is None:
            self._start_postfix()

    def stop_postfix(self) -> None:
        pid = self._postfix_master_pid()
        if pid is None:
            return
        watched = _with_descendants({pid})
        self.postfix_command("postfix", "stop", check=False)
        left = _wait_gone(watched, timeout_s=5.0)
        if left:
            raise StackError(f"Postfix processes still running after stop: {sorted(left)}")

    def _postfix_master_pid(self) -> int | None:
        if not hasattr(self, "root"):
            return None
        return _pid_from(self.postfix_dir / "spool" / "pid" / "master.pid")

    def present_untrusted_certificate(self) -> None:
        """Restart Postfix with a certificate from another CA (clients trusting `ca_file` must refuse it)."""
        self._issue(trustme.CA(), "other-ca")
        self._switch_certificate("other-ca")

    def present_trusted_certificate(self) -> None:
        """Back to the certificate signed by `ca_file`."""
        self._switch_certificate("server")

    def _switch_certificate(self, cert_name: str) -> None:
        self.stop_postfix()
        self._write_postfix_config("main.cf", self._postfix_main_cf(cert_name))
        self._start_postfix()

    def queue_ids(self) -> list[str]:
        """Queue IDs of messages Postfix still holds (active, deferred, ...)."""
        result = self.postfix_command("postqueue", "-j", check=False)
        return [json.loads(line)["queue_id"] for line in result.stdout.splitlines() if line.strip()]

    def flush_queue(self) -> None:
        """Retry deferred mail now."""
        self.postfix_command("postqueue", "-f", check=False)

    def clear_queue(self) -> None:
        self.postfix_command("postsuper", "-d", "ALL", check=False)

    # --- the fake internet's records ---------------------------------------------------------------------

    def attempts(self) -> list[dict[str, Any]]:
        """Every RCPT the internet answered: {"ts", "mail_from", "rcpt", "reply"}."""
        return _read_jsonl(self.internet_dir / "attempts.jsonl")

    def delivered(self) -> list[dict[str, Any]]:
        """Every recipient the internet accepted a message for: {"ts", "rcpt", "mail_from", "message_id"}."""
        return _read_jsonl(self.internet_dir / "delivered.jsonl")

    # --- connection settings -----------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {
            "email": self.user,
            "password": self.password,
            "smtp_host": self.host,
            "smtp_port": self.submission_port,
            "smtp_security": "starttls",
            "imap_host": self.host,
            "imap_port": self.imaps_port,
            "imap_security": "tls",
            "ca_file": str(self.ca_file),
        }

    # --- waiting -----------------------------------------------------------------------------------------

    def _wait_port(self, port: int, what: str, *, log: Path, banner: bytes | None = None) -> None:
        def accepts() -> bool:
            try:
                with socket.create_connection((HOST, port), timeout=1.0) as sock:
                    if banner is None:
                        return True
                    sock.settimeout(2.0)
                    return sock.recv(512).startswith(banner)
            except OSError:
                return False

        self._wait_for(accepts, f"{what} on port {port}", log=log)

    def _wait_for(
        self, condition: Callable[[], bool], what: str, *, log: Path, timeout_s: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise StackError(f"{what} did not come up within {timeout_s:.0f} s; log:\n{_tail(log)}")
            time.sleep(0.02)


# --- helpers -------------------------------------------------------------------------------------------


def _end_process_tree(root: int, *, grace_s: float) -> dict[int, str]:
    """SIGTERM to a master and to every child at once (and to children that appear meanwhile), wait, and
    SIGKILL what is left after `grace_s`; returns pid → command line of what had to be killed.

    Used for Dovecot: `dovecot stop` signals only the master, which then waits 15 s before it ends the IMAP
    sessions (an IDLE client stays connected all that time) and polls in whole seconds. Each child ends
    cleanly on SIGTERM (an IMAP client gets its BYE)."""
    signalled: dict[int, str] = {}
    deadline = time.monotonic() + grace_s
    while True:
        for pid in _with_descendants({root}) - set(signalled):
            signalled[pid] = _cmdline(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        alive = {pid for pid in signalled if _alive(pid)}
        if not alive:
            return {}
        if time.monotonic() > deadline:
            return _kill_after(alive, grace_s=0)
        time.sleep(0.02)


def _kill_after(pids: set[int], *, grace_s: float) -> dict[int, str]:
    """Wait up to `grace_s` for the processes to end, SIGKILL the rest; returns what had to be killed."""
    left = _wait_gone(pids, timeout_s=grace_s)
    killed = {pid: _cmdline(pid) for pid in left}
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(left, timeout_s=2.0)
    return killed


def _mail_identity() -> tuple[int, int, str, str]:
    """Who owns the mailboxes: `vmail` when the machine has it (as in the guide), else nobody/nogroup."""
    for name in ("vmail", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid, entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    raise StackError("neither a 'vmail' nor a 'nobody' user exists to own the test mailboxes")


def _run(argv: list[str], *, what: str, log: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": SBIN_PATH + ":" + os.environ.get("PATH", "")}
    # Files, not pipes: the daemons inherit these descriptors and would hold a pipe open forever.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.run(argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL, timeout=60)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(
            argv, process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")
        )
    if check and result.returncode != 0:
        # Postfix writes fatal errors only to a terminal or its log, never to a pipe (guide, gotcha 1)
        raise StackError(
            f"{what} failed (exit {result.returncode}): {result.stderr.strip()}\nlog:\n{_tail(log)}"
        )
    return result


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written right now
            records.append(json.loads(line))
    return records


def _pid_from(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def _with_descendants(roots: set[int]) -> set[int]:
    found = set(roots)
    parents = _parents()
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return {pid for pid in found if _alive(pid)}


def _wait_gone(pids: set[int], *, timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    left = {pid for pid in pids if _alive(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = {pid for pid in left if _alive(pid)}
    return left
