"""Faults for the chaos suite, made with real pieces: an SMTP-aware proxy in front of Postfix's submission
port, mail dropped straight into the seller's INBOX, a UIDVALIDITY reset, a tiny tmpfs for the database, and
a sampler of a process's peak memory.

`SmtpFaultProxy` listens on a loopback port and relays to Postfix. It speaks SMTP on both legs: it relays
the greeting and every command line by line, and on STARTTLS it upgrades both legs (towards the client with
the stack's own certificate, which the client trusts; towards Postfix trusting the stack's CA), so it still
sees the commands, the content and the final dot inside TLS. An armed fault hits the next connection only:

| fault            | what the client sees                                                             |
|------------------|----------------------------------------------------------------------------------|
| GREETING_421     | `421 4.3.2 ...` instead of the banner, then the connection closes (Postfix unseen) |
| DROP_MID_DATA    | half of the content reaches Postfix, then both legs close (Postfix discards it)  |
| DROP_AFTER_DOT   | the whole content and the dot reach Postfix, which queues it and answers 250; the  |
|                  | proxy swallows that 250 and closes both legs (the message goes out: in doubt)    |
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import cast

from tests.stack.stack import HOST, SBIN_PATH, MailStack

GREETING_421 = b"421 4.3.2 mail.seller.test Service not available, closing transmission channel\r\n"


class SmtpFault(StrEnum):
    GREETING_421 = "greeting_421"
    DROP_MID_DATA = "drop_mid_data"
    DROP_AFTER_DOT = "drop_after_dot"


@dataclass(frozen=True)
class FaultDone:
    """One fault the proxy carried out; `upstream_reply` is what Postfix said and the client never heard."""

    fault: SmtpFault
    content_bytes: int = 0
    forwarded_bytes: int = 0
    upstream_reply: str = ""


@dataclass
class SmtpFaultProxy:
    """A loopback SMTP proxy (own thread and event loop) in front of `stack`'s submission port."""

    stack: MailStack
    port: int = field(init=False, default=0)
    connections: int = field(init=False, default=0)
    done: list[FaultDone] = field(init=False, default_factory=list)
    _armed: list[SmtpFault] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)
    _thread: threading.Thread | None = field(init=False, default=None)
    _server: asyncio.Server | None = field(init=False, default=None)
    _sessions: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    def __enter__(self) -> SmtpFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm(self, fault: SmtpFault, *, times: int = 1) -> None:
        """The next `times` connections get `fault`; later ones are relayed untouched."""
        with self._lock:
            self._armed.extend([fault] * times)

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def _take(self) -> SmtpFault | None:
        with self._lock:
            self.connections += 1
            return self._armed.pop(0) if self._armed else None

    # --- life cycle ------------------------------------------------------------------------------------

    def start(self) -> SmtpFaultProxy:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="smtp-fault-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, HOST, 0), loop
        ).result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        loop.close()

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    # --- one connection --------------------------------------------------------------------------------

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        fault = self._take()
        up_writer: asyncio.StreamWriter | None = None
        try:
            if fault is SmtpFault.GREETING_421:
                client_writer.write(GREETING_421)
                await client_writer.drain()
                self.done.append(FaultDone(fault))
                return
            up_reader, up_writer = await asyncio.open_connection(HOST, self.stack.submission_port)
            await self._relay(fault, client_reader, client_writer, up_reader, up_writer)
        except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError, EOFError):
            pass
        finally:
            self._sessions.discard(task)
            for writer in (up_writer, client_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()

    async def _relay(
        self,
        fault: SmtpFault | None,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        await _send(client_writer, await _read_reply(up_reader))
        while True:
            line = await client_reader.readline()
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper()
            await _send(up_writer, line)
            reply = await _read_reply(up_reader)
            if verb == b"DATA" and reply.startswith(b"354"):
                await _send(client_writer, reply)
                content = await _read_content(client_reader)
                if fault is SmtpFault.DROP_MID_DATA:
                    half = content[: len(content) // 2]
                    await _send(up_writer, half)
                    self.done.append(FaultDone(fault, content_bytes=len(content), forwarded_bytes=len(half)))
                    return
                await _send(up_writer, content)
                reply = await _read_reply(up_reader)
                if fault is SmtpFault.DROP_AFTER_DOT:
                    self.done.append(
                        FaultDone(
                            fault,
                            content_bytes=len(content),
                            forwarded_bytes=len(content),
                            upstream_reply=reply.decode(errors="replace").strip(),
                        )
                    )
                    return
                await _send(client_writer, reply)
                continue
            if verb == b"STARTTLS" and reply.startswith(b"220"):
                await up_writer.start_tls(self._client_context(), server_hostname=HOST)
                # the client's ClientHello must reach the TLS layer, not the plain reader's buffer
                cast(asyncio.Transport, client_writer.transport).pause_reading()
                await _send(client_writer, reply)
                await client_writer.start_tls(self._server_context())
                continue
            await _send(client_writer, reply)
            if verb == b"QUIT":
                return

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls = self.stack.tls_dir
        context.load_cert_chain(tls / "server.pem", tls / "server.key")
        return context

    def _client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.stack.ca_file))


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    lines: list[bytes] = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the peer closed the connection")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


async def _read_content(reader: asyncio.StreamReader) -> bytes:
    """The message content up to and including the final `.` line."""
    lines: list[bytes] = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the client closed the connection mid-content")
        lines.append(line)
        if line == b".\r\n":
            return b"".join(lines)


# --- the seller's mailbox -----------------------------------------------------------------------------------


def doveadm(stack: MailStack, *args: str, input_bytes: bytes | None = None) -> str:
    env = {**os.environ, "PATH": SBIN_PATH + ":" + os.environ.get("PATH", "")}
    result = subprocess.run(
        ["doveadm", "-c", str(stack.dovecot_conf), *args],
        input=input_bytes,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode(errors="replace")


def deliver_to_inbox(stack: MailStack, raw: bytes, *, folder: str = "INBOX") -> None:
    """Put a message into the seller's folder as the mail server would (`doveadm save`)."""
    doveadm(stack, "save", "-u", stack.user, "-m", folder, input_bytes=raw)


def folder_status(stack: MailStack, folder: str = "INBOX") -> dict[str, int]:
    out = doveadm(
        stack, "-f", "flow", "mailbox", "status", "-u", stack.user, "messages uidvalidity uidnext", folder
    )
    pairs = (item.split("=", 1) for item in out.split() if "=" in item)
    return {key: int(value) for key, value in pairs if value.isdigit()}


def reset_uidvalidity(stack: MailStack, folder: str = "INBOX") -> tuple[int, int]:
    """Give the folder a new UIDVALIDITY (what a server restored from a backup, or a migrated mailbox, does):
    the same messages, whose UIDs no longer mean what a client remembers. Returns (old, new)."""
    old = folder_status(stack, folder)["uidvalidity"]
    new = old + 1000
    doveadm(stack, "mailbox", "update", "-u", stack.user, "--uid-validity", str(new), folder)
    current = folder_status(stack, folder)["uidvalidity"]
    if current != new:
        raise RuntimeError(f"UIDVALIDITY of {folder} is {current}, not {new}, after the update")
    return old, new


def expunge_matching(stack: MailStack, header: str, value: str, *, folder: str = "INBOX") -> None:
    doveadm(stack, "expunge", "-u", stack.user, "mailbox", folder, "header", header, value)


# --- a small disk -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, *, size_kib: int) -> Iterator[Path]:
    """Mount a tmpfs of `size_kib` on `path` (root only); unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


def fill_disk(directory: Path, *, leave_bytes: int = 0) -> Path:
    """Write a filler file until the filesystem has at most `leave_bytes` free; returns the filler."""
    filler = directory / "filler.bin"
    free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
    chunk = b"\0" * 65536
    with filler.open("wb") as out:
        remaining = max(0, free - leave_bytes)
        try:
            while remaining > 0:
                written = out.write(chunk[: min(len(chunk), remaining)])
                remaining -= written
            out.flush()
            os.fsync(out.fileno())
        except OSError:
            pass  # ENOSPC: as full as it gets
    return filler


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


# --- memory -------------------------------------------------------------------------------------------------


class PeakMemory:
    """Samples a process's peak resident set (VmHWM) in a thread until `stop()`; `peak_kib`: the max seen."""

    def __init__(self, pid: int, *, every_s: float = 0.1) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(self._every_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak_kib


# --- bounces no one should have to read ---------------------------------------------------------------------


def huge_bounce(*, marker: str, recipient: str, size_bytes: int) -> bytes:
    """A well-formed RFC 3464 bounce (5.1.1 for `recipient`) that returns the original message with an
    attachment, `size_bytes` in all: what a server bouncing a big proposal sends back."""
    boundary = f"huge-{marker}"
    inner = f"inner-{marker}"
    head = (
        "From: Mail Delivery System <MAILER-DAEMON@mail.seller.test>\r\n"
        "To: seller@seller.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <huge-{marker}@mail.seller.test>\r\n"
        f"X-Chaos-Marker: {marker}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.seller.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        "From: seller@seller.test\r\n"
        f"To: {recipient}\r\n"
        "Subject: The proposal\r\n"
        f"Message-ID: <original-{marker}@seller.test>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{inner}"\r\n\r\n'
        f"--{inner}\r\nContent-Type: text/plain\r\n\r\nThe proposal is attached.\r\n\r\n"
        f"--{inner}\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="proposal.pdf"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{inner}--\r\n\r\n--{boundary}--\r\n".encode()
    line = b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+CnN0cmVh\r\n"
    lines = max(0, (size_bytes - len(head) - len(tail)) // len(line))
    return head + line * lines + tail


def malformed_bounce(*, marker: str, recipient: str) -> bytes:
    """A "bounce" whose MIME is broken every way at once: a multipart/report without its closing boundary
    and with a part whose boundary never appears, a delivery-status part that is not field lines, bad
    base64, 8-bit bytes and a NUL in headers, a header line 20 000 characters long."""
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mail.seller.test>\r\n"
        b"To: seller@seller.test\r\n"
        b"Subject: Undelivered Mail \xff\xfe returned\x00 to sender\r\n"
        b"Message-ID: <malformed-" + marker.encode() + b"@mail.seller.test>\r\n"
        b"X-Chaos-Marker: " + marker.encode() + b"\r\n"
        b"X-Long: " + b"a" * 20000 + b"\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"!!!! this is not base64 ====\r\n\r\n"
        b"--never-closed\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Final-Recipient rfc822 " + recipient.encode() + b"\r\nStatus: 5.1.1.1.1\r\n"
        b"Action:\r\n\x00\x01\x02\r\n\r\n"
        b'--never-closed\r\nContent-Type: multipart/mixed; boundary="missing"\r\n\r\n'
        b"no boundary here\r\n--never-closed-but-not-quite\r\n"
    )
