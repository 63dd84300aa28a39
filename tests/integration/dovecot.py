"""A real, throw-away Dovecot 2.3 IMAP server for integration tests (and benchmarks).

Use it through a fixture of your own (importing the `dovecot` fixture by name also works, but ruff then
flags the test argument as a redefinition)::

    from tests.integration.dovecot import DovecotServer, running_dovecot

    @pytest.fixture
    def mailbox_server() -> Iterator[DovecotServer]:
        with running_dovecot() as server:      # running_dovecot(lmtp=True) adds LMTP + a SASL socket
            yield server

Each server gets its own temp dir and free 127.0.0.1 high ports: IMAPS with a trustme certificate
(`server.ca_file`, `server.ssl_context()`), a plaintext IMAP listener used only to prove TLS enforcement,
optionally LMTP (`server.lmtp_port`) and Dovecot's auth socket for Postfix SASL (`server.auth_socket`).
One user (`server.user` / `server.password`) with INBOX, Sent (\\Sent) and Junk (\\Junk). The auth
failure penalty is off (mail-stack.md gotcha 6), so a wrong-password test does not slow the next login.
When the tests run as root, Dovecot runs as `nobody` through `setpriv` (mail-facts.md, "A Dovecot 2.3
test server without root powers"); otherwise as the current user. Missing dovecot binary: pytest.skip.

The helpers (`append`, `append_many`, `flags`, `uidvalidity`, `recreate_folder`, `deliver_files`,
`stop`/`start`/`restart`) use the standard library's imaplib and are synchronous: call them with
`asyncio.to_thread` from a coroutine while an async client runs on the same loop. `FlakyProxy` sits
between a client and the server to cut or stall a connection after N bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
SETPRIV = shutil.which("setpriv")
HOST = "127.0.0.1"
DEFAULT_USER = "seller@seller.test"
DEFAULT_PASSWORD = "pw"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _run_identity() -> tuple[int, int, str, str]:
    """uid, gid, user name and group name Dovecot runs as: nobody when we are root, else ourselves."""
    entry = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    return entry.pw_uid, entry.pw_gid, entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name


@dataclass
class DovecotServer:
    root: Path
    ca: trustme.CA
    imaps_port: int
    imap_port: int
    user: str = DEFAULT_USER
    password: str = DEFAULT_PASSWORD
    extra_conf: str = ""
    lmtp_port: int | None = None  # set: an LMTP listener (e.g. for Postfix) and an auth socket for SASL
    host: str = HOST
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # --- paths --------------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.pem"

    @property
    def conf_file(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    def home(self, user: str | None = None) -> Path:
        return self.root / "mail" / (user or self.user)

    def maildir(self, folder: str = "INBOX", *, user: str | None = None) -> Path:
        base = self.home(user) / "Maildir"
        return base if folder.upper() == "INBOX" else base / ("." + folder.replace("/", "."))

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    # --- life cycle ---------------------------------------------------------------------------------

    def write_config(self) -> None:
        uid, gid, user_name, group_name = _run_identity()
        (self.root / "tls").mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert = self.ca.issue_cert("localhost", HOST, "mail.seller.test")
        cert.private_key_pem.write_to_path(str(self.root / "tls" / "server.key"))
        chain = self.root / "tls" / "server.pem"
        chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        (self.root / "users").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::{self.home()}\n", encoding="utf-8"
        )
        d = self.root
        self.conf_file.write_text(
            f"""\
protocols = {"imap lmtp" if self.lmtp_port else "imap"}
listen = {HOST}
base_dir = {d}/run
state_dir = {d}/state
instance_name = cadence-test-{d.name}
log_path = {d}/dovecot.log
default_internal_user = {user_name}
default_internal_group = {group_name}
default_login_user = {user_name}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
auth_failure_delay = 0
mail_fsync = never
ssl = required
ssl_cert = <{d}/tls/server.pem
ssl_key = <{d}/tls/server.key
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
mail_location = maildir:~/Maildir
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
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {HOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
{self._lmtp_conf()}
{self.extra_conf}
""",
            encoding="utf-8",
        )
        self._chown_tree(self.root)

    @property
    def auth_socket(self) -> Path:
        """Dovecot's SASL socket for Postfix (`smtpd_sasl_type = dovecot`, `smtpd_sasl_path`); with lmtp."""
        return self.root / "run" / "auth-postfix"

    def _lmtp_conf(self) -> str:
        if not self.lmtp_port:
            return ""
        return f"""\
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {self.lmtp_port}
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
"""

    def _chown_tree(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        uid, gid, _, _ = _run_identity()
        os.chown(path, uid, gid)
        for dirpath, dirnames, filenames in os.walk(path):
            for name in (*dirnames, *filenames):
                with contextlib.suppress(FileNotFoundError):
                    os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)

    def start(self, *, timeout_s: float = 15.0) -> None:
        assert DOVECOT is not None
        command = [DOVECOT, "-F", "-c", str(self.conf_file)]
        if os.geteuid() == 0:
            if SETPRIV is None:
                pytest.skip("running as root and setpriv is missing: cannot drop privileges for Dovecot")
            uid, gid, _, _ = _run_identity()
            command = [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() ends the master and its children
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                self._process = None
                raise RuntimeError(f"dovecot exited at start-up: {stderr.strip()}\n{self.log_tail()}")
            ports = [self.imaps_port, self.imap_port, *([self.lmtp_port] if self.lmtp_port else [])]
            if all(self._accepts(port) for port in ports):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not accept connections within {timeout_s} s\n{self.log_tail()}")

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:  # the master sometimes waits seconds for its children: no need
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # stragglers of our own group (none normally)
            os.killpg(process.pid, signal.SIGKILL)
        if process.stderr is not None:
            process.stderr.close()
        # the master is gone; wait until its children released the listening ports
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._accepts(self.imaps_port):
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no dovecot log)"

    # --- helpers (standard-library imaplib, synchronous) ---------------------------------------------

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4_SSL]:
        conn = imaplib.IMAP4_SSL(HOST, self.imaps_port, ssl_context=self.ssl_context(), timeout=30)
        try:
            conn.login(self.user, self.password)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def append(self, folder: str, raw: bytes, *, seen: bool = False, when: datetime | None = None) -> int:
        """APPEND one message (INTERNALDATE `when`, default now); returns its UID (APPENDUID)."""
        with self.client() as conn:
            return self._append(conn, folder, raw, seen=seen, when=when)

    def append_many(self, folder: str, raws: Iterable[bytes]) -> list[int]:
        with self.client() as conn:
            return [self._append(conn, folder, raw, seen=False) for raw in raws]

    @staticmethod
    def _append(
        conn: imaplib.IMAP4_SSL, folder: str, raw: bytes, *, seen: bool, when: datetime | None = None
    ) -> int:
        internal_date = imaplib.Time2Internaldate(when) if when is not None else None
        typ, data = conn.append(folder, "(\\Seen)" if seen else None, internal_date, raw)
        if typ != "OK":
            raise RuntimeError(f"APPEND to {folder} failed: {data!r}")
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        if match is None:
            raise RuntimeError(f"no APPENDUID in {data!r}")
        return int(match.group(1))

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID → flags, read with EXAMINE so that looking does not change anything."""
        with self.client() as conn:
            typ, _ = conn.select(_quote(folder), readonly=True)
            if typ != "OK":
                raise RuntimeError(f"cannot examine {folder}")
            typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
            result: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                uid = re.search(rb"UID (\d+)", item)
                flags = re.search(rb"FLAGS \(([^)]*)\)", item)
                if uid and flags:
                    result[int(uid.group(1))] = set(flags.group(1).decode().split())
            return result

    def expunge(self, folder: str, uid: int) -> None:
        """Delete one message for good (as another mail client would)."""
        with self.client() as conn:
            conn.select(_quote(folder))
            typ, data = conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
            if typ != "OK":
                raise RuntimeError(f"STORE failed: {data!r}")
            conn.expunge()

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as conn:
            typ, data = conn.status(_quote(folder), "(UIDVALIDITY)")
            match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            if typ != "OK" or match is None:
                raise RuntimeError(f"no UIDVALIDITY for {folder}: {data!r}")
            return int(match.group(1))

    def recreate_folder(self, folder: str) -> None:
        """DELETE and CREATE a folder: Dovecot gives it a new UIDVALIDITY and restarts UIDs at 1."""
        before = self.uidvalidity(folder)
        with self.client() as conn:
            for command in (conn.delete, conn.create):
                typ, data = command(_quote(folder))
                if typ != "OK":
                    raise RuntimeError(f"{command.__name__} {folder} failed: {data!r}")
        if self.uidvalidity(folder) == before:
            raise RuntimeError("Dovecot kept the UIDVALIDITY of a re-created folder")

    def deliver_files(self, folder: str, raws: Iterable[bytes]) -> int:
        """Write messages straight into the maildir's new/ (fast bulk set-up); Dovecot assigns UIDs when
        a client next looks at the folder."""
        box = self.maildir(folder)
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        uid, gid, _, _ = _run_identity()
        count = 0
        stamp = int(time.time())
        for raw in raws:
            name = f"{stamp}.M{count}P{os.getpid()}Q{uuid.uuid4().hex[:8]}.cadence-test"
            tmp = box / "tmp" / name
            tmp.write_bytes(raw)
            if os.geteuid() == 0:
                os.chown(tmp, uid, gid)
            tmp.rename(box / "new" / name)
            count += 1
        if os.geteuid() == 0:
            for path in [self.home(), *self.home().rglob("*")]:
                if path.is_dir():
                    os.chown(path, uid, gid)
        return count


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def running_dovecot(*, extra_conf: str = "", lmtp: bool = False) -> Iterator[DovecotServer]:
    """Start a Dovecot for the duration of the block (usable outside pytest too, e.g. in benchmarks)."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="cadence-dovecot-"))
    root.chmod(0o755)
    server: DovecotServer | None = None
    try:
        for attempt in range(3):
            server = DovecotServer(
                root=root,
                ca=trustme.CA(),
                imaps_port=free_port(),
                imap_port=free_port(),
                extra_conf=extra_conf,
                lmtp_port=free_port() if lmtp else None,
            )
            server.write_config()
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2 or "Address already in use" not in server.log_tail():
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    with running_dovecot() as server:
        yield server


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 (run on the test's event loop) that can break connections on purpose:
    TLS passes through untouched, so the client still verifies Dovecot's certificate.

    `plans` holds one entry per future connection, used in order (later connections pass everything):
    ("cut", n) aborts both sides once n bytes went server → client; ("stall", n) stops forwarding
    server → client after n bytes but keeps the connection open (a hung FETCH)."""

    def __init__(
        self, upstream_port: int, plans: Iterable[tuple[str, int]] = (), *, listen_host: str = HOST
    ) -> None:
        self.upstream_port = upstream_port
        self.listen_host = listen_host  # e.g. 127.0.0.2: an address the server certificate does not name
        self.plans = list(plans)
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> FlakyProxy:
        self._server = await asyncio.start_server(self._handle, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, client_reader: Any, client_writer: Any) -> None:
        plan = self.plans.pop(0) if self.plans else ("pass", 0)
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update({client_writer, up_writer})

        async def pump(reader: Any, writer: Any, *, downstream: bool) -> None:
            sent = 0
            try:
                while data := await reader.read(65536):
                    if downstream and plan[0] in ("cut", "stall") and sent + len(data) > plan[1]:
                        writer.write(data[: max(plan[1] - sent, 0)])
                        if plan[0] == "cut":
                            client_writer.transport.abort()
                            up_writer.transport.abort()
                            return
                        await asyncio.Event().wait()  # stall: hold the connection open, forward nothing
                    writer.write(data)
                    sent += len(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        tasks = [
            asyncio.ensure_future(pump(client_reader, up_writer, downstream=False)),
            asyncio.ensure_future(pump(up_reader, client_writer, downstream=True)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
            self._writers.difference_update({client_writer, up_writer})
