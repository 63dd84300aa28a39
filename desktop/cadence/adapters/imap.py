"""IMAP adapter (aioimaplib 2.0.3): reads INBOX, Junk and Sent without changing anything.

Read-only by construction: folders are opened with EXAMINE and messages fetched with BODY.PEEK[], so
nothing is marked read, moved or deleted; the only write is `append` (a copy of a sent message to Sent).
IMAPS only (aioimaplib has no STARTTLS), certificate verification always on, a fresh SSLContext per
connection. Every call runs under `asyncio.timeout` and is raced against the loss of the connection,
because aioimaplib can hang in IDLE and FETCH and does not notice a dropped IMAP4_SSL connection itself;
after a timeout or a drop the connection is abandoned (the caller connects again). Library and socket
exceptions never leave this module: they become `MailboxError` with a sentence for the user.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

import aioimaplib

from cadence.core.model import FetchedMessage, FolderStatus, MailboxFolders
from cadence.core.ports import MailboxError, MailboxErrorKind, WakeSignal

log = logging.getLogger(__name__)

T = TypeVar("T")

IMAPS_PORT = 993

# Localized names, tried in order when the server does not mark folders with SPECIAL-USE attributes.
SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "[Gmail]/Sent Mail",
    "[Google Mail]/Sent Mail",
    "Gesendet",
    "Gesendete Elemente",
    "Gesendete Objekte",
    "Envoyés",
    "Éléments envoyés",
    "Messages envoyés",
    "Enviados",
    "Elementos enviados",
    "Itens Enviados",
    "Inviati",
    "Posta inviata",
    "Elementi inviati",
    "Verzonden",
    "Verzonden items",
    "Wysłane",
    "Elementy wysłane",
    "Skickat",
    "Skickade objekt",
    "Sendt",
    "Sendte elementer",
    "Lähetetyt",
    "Odeslaná pošta",
    "Отправленные",
)
JUNK_NAMES = (
    "Junk",
    "Spam",
    "Junk E-mail",
    "Junk Email",
    "Junk Mail",
    "Bulk Mail",
    "[Gmail]/Spam",
    "[Google Mail]/Spam",
    "Junk-E-Mail",
    "Spamverdacht",
    "Courrier indésirable",
    "Indésirables",
    "Pourriels",
    "Correo no deseado",
    "Posta indesiderata",
    "Ongewenste e-mail",
    "Wiadomości-śmieci",
    "Skräppost",
    "Søppelpost",
    "Roskaposti",
    "Nevyžádaná pošta",
    "Спам",
)


@dataclass(frozen=True, slots=True)
class ImapAccount:
    """Where and as whom to log in. The secret is passed separately and never stored here."""

    host: str
    username: str
    port: int = IMAPS_PORT
    ca_file: str | None = None  # extra CA bundle (self-hosted servers), added to the system's
    oauth2: bool = False  # the secret is an OAuth2 access token (XOAUTH2), not a password
    timeout_s: float = 30.0  # any one command; FETCH and APPEND of big messages get more (see below)


SecretSource = str | Callable[[], Awaitable[str | None]]


@dataclass(slots=True)
class ImapConnector:
    """A `MailboxConnector`: each call opens a fresh, logged-in connection."""

    account: ImapAccount
    secret: SecretSource = field(repr=False)

    async def __call__(self) -> ImapMailbox:
        secret = self.secret if isinstance(self.secret, str) else await self.secret()
        if not secret:
            raise MailboxError(
                f"No password is stored for {self.account.username}: enter it in the account settings.",
                kind=MailboxErrorKind.AUTH_FAILED,
            )
        return await ImapMailbox.connect(self.account, secret=secret)


def quoted(text: str) -> str:
    return aioimaplib.quoted(text)  # type: ignore[no-any-return]


def uid_set(uids: Iterable[int]) -> str:
    """Compact UID set: [1, 2, 3, 7, 9, 10] → '1:3,7,9:10'."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def decode_modified_utf7(name: str) -> str:
    """IMAP mailbox names are modified UTF-7 (RFC 3501 5.1.3): 'Envoy&AOk-s' → 'Envoyés'."""
    out: list[str] = []
    i = 0
    while i < len(name):
        char = name[i]
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = name.find("-", i)
        if end == -1:
            out.append(name[i:])
            break
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            encoded = chunk.replace(",", "/")
            encoded += "=" * (-len(encoded) % 4)
            try:
                out.append(base64.b64decode(encoded).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                out.append(name[i : end + 1])
        i = end + 1
    return "".join(out)


# --- response parsing (aioimaplib gives raw byte lines; literals arrive as separate bytearray items) -------

_FETCH_START = re.compile(rb"^(\d+) FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_LITERAL_END = re.compile(rb"\{(\d+)\}$")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>NIL|"(?:[^"\\]|\\.)*") ?(?P<name>.*)$')
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class _FetchCommand(aioimaplib.FetchCommand):  # type: ignore[misc]
    """aioimaplib's FetchCommand, minus two costs paid on the event loop for every response line: its
    `wait_data` rescans all lines received so far (quadratic in the batch), and a per-line timer reset.
    Same answer: are the parentheses balanced from the last "n FETCH (" line on. Our caller bounds the
    whole command with asyncio.timeout instead of the inactivity timer."""

    def wait_data(self) -> bool:
        lines = self._resp_lines
        start = 0
        for index in range(len(lines) - 1, -1, -1):
            line = lines[index]
            if isinstance(line, bytes) and _FETCH_START.match(line):
                start = index
                break
        tail = b"".join(line for line in lines[start:] if isinstance(line, bytes))
        return tail.count(b"(") != tail.count(b")")

    # A literal (a message body) is kept as the list of chunks received and joined later, in a worker
    # thread for big ones: aioimaplib grows one bytearray chunk by chunk, which for 20 MB re-copies it
    # again and again (tens of ms on the event loop); even one 20 MB allocation there costs ~30 ms.
    def begin_literal_data(self, expected_size: int, literal_data: bytes = b"") -> bytes:
        self._expected_size = expected_size
        self._chunks = LiteralChunks()
        self._received = 0
        return self.append_literal_data(literal_data)

    def wait_literal_data(self) -> bool:
        return self._expected_size != 0 and self._received != self._expected_size

    def append_literal_data(self, data: bytes) -> bytes:
        take = min(len(data), self._expected_size - self._received)
        if take:
            self._chunks.append(data if take == len(data) else data[:take])
            self._received += take
        if not self.wait_literal_data():
            self.append_to_resp(self._chunks)
            self._end_literal_data()
        return data[take:] if take < len(data) else b""

    def _end_literal_data(self) -> None:
        self._expected_size = 0
        self._chunks = LiteralChunks()
        self._received = 0


class LiteralChunks(list[bytes]):
    """A literal from a FETCH response, as received (see _FetchCommand)."""

    def join(self) -> bytes:
        return b"".join(self)


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    def data_received(self, d: bytes) -> None:
        # aioimaplib's version starts with `log.debug("Received : %s" % d)`: it formats every received
        # chunk (mail contents) into a string even with debug logging off, milliseconds per 256 kB on the
        # event loop. Same logic without that.
        try:
            self._handle_responses(self.incomplete_line + d, self._handle_line, self.current_command)  # type: ignore[has-type]
            self.incomplete_line = b""
            self.current_command = None
        except aioimaplib.IncompleteRead as incomplete_read:
            self.current_command = incomplete_read.cmd
            self.incomplete_line = incomplete_read.data


class _Client(aioimaplib.IMAP4_SSL):  # type: ignore[misc]
    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[BaseException | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop or asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


class _XOAuth2Command(aioimaplib.Command):  # type: ignore[misc]
    """AUTHENTICATE XOAUTH2 with the initial response inline. A refused token makes the server send a
    JSON error as a `+` challenge and wait for an empty line before its tagged NO; aioimaplib's own
    `xoauth2` never sends that line and hangs. aioimaplib calls `flush` after each continuation."""

    def __init__(self, tag: str, sasl: str, *, write: Callable[[bytes], None], loop: Any) -> None:
        super().__init__("AUTHENTICATE", tag, "XOAUTH2", sasl, loop=loop)
        self._write = write
        self._answered = 0

    def flush(self) -> None:
        challenges = sum(1 for line in self._resp_lines if isinstance(line, bytes) and line.startswith(b"+"))
        while self._answered < challenges:
            self._write(b"\r\n")
            self._answered += 1


ResponseLines = Sequence["bytes | bytearray | LiteralChunks"]


def parse_fetch_bodies(lines: ResponseLines) -> list[FetchedMessage]:
    """Messages from a `UID FETCH … (UID BODY.PEEK[])` response. The UID may come before or after the
    literal; unsolicited FETCH lines (flag changes) and bodies without a literal are skipped."""
    found: list[FetchedMessage] = []
    uid: int | None = None
    body: bytes | None = None
    expecting_literal = False

    def flush() -> None:
        if uid is not None and body is not None:
            found.append(FetchedMessage(uid=uid, raw=body))

    for line in lines[:-1]:  # the last line is the tagged completion text
        if not isinstance(line, bytes):  # a literal
            if expecting_literal:
                body = line.join() if isinstance(line, LiteralChunks) else bytes(line)
                expecting_literal = False
            continue
        if _FETCH_START.match(line):
            flush()
            uid, body, expecting_literal = None, None, False
        uid_match = _UID.search(line)
        if uid_match:
            uid = int(uid_match.group(1))
        if b"BODY[]" in line and _LITERAL_END.search(line):
            expecting_literal = True
    flush()
    return found


def parse_sizes(lines: ResponseLines) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for line in lines[:-1]:
        if not isinstance(line, bytes) or not _FETCH_START.match(line):
            continue
        uid, size = _UID.search(line), _SIZE.search(line)
        if uid and size:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def parse_search(lines: ResponseLines) -> list[int]:
    uids: set[int] = set()
    for line in lines[:-1]:
        if not isinstance(line, bytes):
            continue
        tokens = line.split()
        if tokens and tokens[0].upper() == b"SEARCH":
            tokens = tokens[1:]
        if tokens and all(token.isdigit() for token in tokens):
            uids.update(int(token) for token in tokens)
    return sorted(uids)


@dataclass(frozen=True, slots=True)
class ListedFolder:
    name: str  # as on the wire (modified UTF-7)
    flags: frozenset[str]
    delimiter: str | None

    @property
    def display_name(self) -> str:
        return decode_modified_utf7(self.name)

    @property
    def selectable(self) -> bool:
        return not {"\\noselect", "\\nonexistent"} & self.flags


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_list(lines: ResponseLines) -> list[ListedFolder]:
    folders: list[ListedFolder] = []
    pending: tuple[frozenset[str], str | None] | None = None  # a LIST line whose name follows as a literal
    for line in lines[:-1]:
        if not isinstance(line, bytes):
            if pending is not None:
                raw = line.join() if isinstance(line, LiteralChunks) else bytes(line)
                folders.append(ListedFolder(raw.decode("utf-8", "replace"), pending[0], pending[1]))
                pending = None
            continue
        match = _LIST_LINE.match(line)
        if match is None:
            continue
        flags = frozenset(match.group("flags").decode("ascii", "replace").lower().split())
        raw_delim = match.group("delim").decode("ascii", "replace")
        delimiter = None if raw_delim == "NIL" else _unquote(raw_delim)
        name = match.group("name").decode("utf-8", "replace").strip()
        if _LITERAL_END.search(match.group("name")):
            pending = (flags, delimiter)
            continue
        folders.append(ListedFolder(_unquote(name), flags, delimiter))
    return folders


def _match_by_name(folders: Sequence[ListedFolder], candidates: Sequence[str]) -> str | None:
    def variants(folder: ListedFolder) -> list[str]:
        display = folder.display_name
        names = [display.casefold()]
        if folder.delimiter:
            names.append(display.replace(folder.delimiter, "/").casefold())
            parent, _, leaf = display.rpartition(folder.delimiter)
            if parent.upper() == "INBOX":  # Courier/Cyrus style: INBOX.Sent
                names.append(leaf.casefold())
        return names

    usable = [f for f in folders if f.selectable]
    for candidate in candidates:
        wanted = candidate.casefold()
        for folder in usable:
            if wanted in variants(folder):
                return folder.name
    return None


def choose_folders(folders: Sequence[ListedFolder]) -> MailboxFolders:
    """SPECIAL-USE attributes first, then localized names."""
    usable = [f for f in folders if f.selectable]
    sent = next((f.name for f in usable if "\\sent" in f.flags), None)
    junk = next((f.name for f in usable if "\\junk" in f.flags), None)
    return MailboxFolders(
        inbox="INBOX",
        sent=sent or _match_by_name(usable, SENT_NAMES),
        junk=junk or _match_by_name(usable, JUNK_NAMES),
    )


def _text_of(response: Any) -> str:
    parts = [line for line in response.lines if isinstance(line, bytes)]
    return b" ".join(parts).decode("utf-8", "replace").strip()[:300]


def _login_error(account: ImapAccount, response: Any) -> MailboxError:
    text = _text_of(response)
    upper = text.upper()
    who = f"{account.username} at {account.host}"
    if "IMAP" in upper and any(word in upper for word in ("DISABLED", "NOT ENABLED", "TURNED OFF")):
        return MailboxError(
            f"IMAP access is switched off for {who}. Turn it on in the provider's settings "
            f"(the server said: {text}).",
            kind=MailboxErrorKind.IMAP_DISABLED,
        )
    if "[UNAVAILABLE]" in upper or "[INUSE]" in upper:
        return MailboxError(
            f"The mail server for {who} is temporarily unavailable (it said: {text}).",
            kind=MailboxErrorKind.SERVER_ERROR,
        )
    return MailboxError(
        f"The mail server did not accept the login for {who}: check the password (many providers need an "
        f"app password) (the server said: {text}).",
        kind=MailboxErrorKind.AUTH_FAILED,
    )


def _connect_error(account: ImapAccount, exc: BaseException) -> MailboxError:
    where = f"{account.host}:{account.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailboxError(
            f"The certificate of {account.host} is not trusted ({exc.verify_message}), "
            "so Cadence did not log in. "
            "If the server is your company's own, add its CA certificate in the account settings.",
            kind=MailboxErrorKind.TLS_UNTRUSTED,
        )
    if isinstance(exc, ssl.SSLError):
        return MailboxError(
            f"Could not start a secure (TLS) connection to {where}. Is this the IMAPS port (usually 993)? "
            f"({exc.reason or exc})",
            kind=MailboxErrorKind.TLS_FAILED,
        )
    if isinstance(exc, ConnectionRefusedError):
        return MailboxError(
            f"The mail server {where} refused the connection: check the server name and port.",
            kind=MailboxErrorKind.CONNECTION_REFUSED,
        )
    if isinstance(exc, socket.gaierror):
        return MailboxError(
            f"The mail server name {account.host} could not be found: "
            "check it, and your internet connection.",
            kind=MailboxErrorKind.HOST_NOT_FOUND,
        )
    if isinstance(exc, TimeoutError | aioimaplib.CommandTimeout):
        return MailboxError(
            f"The mail server {where} did not answer within {account.timeout_s:.0f} s.",
            kind=MailboxErrorKind.TIMEOUT,
        )
    if isinstance(exc, OSError):
        return MailboxError(
            f"The connection to {where} failed: {exc.strerror or exc}.", kind=MailboxErrorKind.CONNECTION_LOST
        )
    return MailboxError(
        f"The mail server {where} answered in a way Cadence does not understand ({type(exc).__name__}).",
        kind=MailboxErrorKind.SERVER_ERROR,
    )


def new_ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A fresh verifying context for each connection (sharing one across connections is a known trap)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise MailboxError(
                f"The CA certificate file {ca_file} cannot be read: {exc}",
                kind=MailboxErrorKind.TLS_UNTRUSTED,
            ) from None
    return context


class ImapMailbox:
    """One logged-in connection; implements `cadence.core.ports.Mailbox`. Use `connect`."""

    def __init__(self, account: ImapAccount, client: Any, lost: asyncio.Future[BaseException | None]) -> None:
        self._account = account
        self._client = client
        self._lost = lost
        self._broken: MailboxError | None = None
        self._selected: str | None = None

    # --- connection -------------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, account: ImapAccount, *, secret: str) -> ImapMailbox:
        # loading the system CA store takes 50-150 ms: not on the event loop
        context = await asyncio.to_thread(new_ssl_context, account.ca_file)
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[BaseException | None] = loop.create_future()

        def on_connection_lost(exc: BaseException | None) -> None:
            if not lost.done():
                lost.set_result(exc)

        try:
            client = _Client(
                host=account.host, port=account.port, timeout=account.timeout_s, ssl_context=context
            )
        except (OSError, ValueError) as exc:
            raise _connect_error(account, exc) from None
        client.protocol.conn_lost_cb = on_connection_lost
        mailbox = cls(account, client, lost)
        try:
            try:
                async with asyncio.timeout(account.timeout_s):
                    await client.wait_hello_from_server()
            except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
                raise _connect_error(account, exc) from None
            if lost.done():
                raise mailbox._lost_error()
            await mailbox._login(secret)
            await mailbox._call("CAPABILITY", client.protocol.capability)
        except BaseException:
            await mailbox._abandon()
            raise
        return mailbox

    async def _login(self, secret: str) -> None:
        account, client = self._account, self._client
        if "LOGINDISABLED" in client.protocol.capabilities and not self._account.oauth2:
            raise MailboxError(
                f"{account.host} does not allow password logins on this connection.",
                kind=MailboxErrorKind.IMAP_DISABLED,
            )
        if account.oauth2:
            response = await self._call("XOAUTH2", lambda: self._xoauth2(account.username, secret))
        else:
            response = await self._call("LOGIN", lambda: client.login(quoted(account.username), secret))
        if response.result != "OK":
            raise _login_error(account, response)

    async def _xoauth2(self, user: str, token: str) -> Any:
        protocol = self._client.protocol
        sasl = base64.b64encode(f"user={user}\1auth=Bearer {token}\1\1".encode()).decode("ascii")
        command = _XOAuth2Command(
            protocol.new_tag(), sasl, write=protocol.transport.write, loop=protocol.loop
        )
        response = await protocol.execute(command, scrub=sasl)
        if response.result == "OK":
            protocol.state = aioimaplib.AUTH
        return response

    def _lost_error(self) -> MailboxError:
        return MailboxError(
            f"The connection to {self._account.host} was closed by the server or the network.",
            kind=MailboxErrorKind.CONNECTION_LOST,
        )

    async def _abandon(self, error: MailboxError | None = None) -> None:
        """Give the connection up without talking to the server (its state is unknown)."""
        if self._broken is None:
            self._broken = error or self._lost_error()
        transport = getattr(self._client.protocol, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.abort()
        for task in (*self._client.tasks, *self._client.protocol.tasks):
            task.cancel()
        waiter = getattr(self._client, "_idle_waiter", None)
        if waiter is not None:
            waiter.cancel()
        connect_task = getattr(self._client, "_client_task", None)
        if connect_task is not None and not connect_task.done():
            connect_task.cancel()
        if transport is not None:
            # let the transport's close callbacks run before the caller (or a test) closes the loop
            await asyncio.wait({self._lost}, timeout=1.0)

    async def close(self) -> None:
        """LOGOUT politely when the connection is healthy, then drop it."""
        if self._broken is None and not self._lost.done():
            logout = asyncio.ensure_future(self._client.logout())
            try:
                async with asyncio.timeout(5):
                    await asyncio.wait({logout, self._lost}, return_when=asyncio.FIRST_COMPLETED)
            except TimeoutError:
                pass
            finally:
                if logout.done():
                    if not logout.cancelled():
                        logout.exception()  # retrieved: a failed LOGOUT changes nothing
                else:
                    logout.cancel()
        await self._abandon(MailboxError("The connection was closed.", kind=MailboxErrorKind.CONNECTION_LOST))

    @property
    def broken(self) -> bool:
        return self._broken is not None or self._lost.done()

    async def _call(
        self, what: str, start: Callable[[], Awaitable[T]], *, timeout_s: float | None = None
    ) -> T:
        if self._broken is not None:
            raise self._broken
        if self._lost.done():
            await self._abandon()
            raise self._lost_error()
        limit = timeout_s or self._account.timeout_s
        try:
            task: asyncio.Future[T] = asyncio.ensure_future(start())
        except ValueError as exc:  # aioimaplib refuses CR, LF and NUL in arguments
            raise MailboxError(f"Cannot send {what}: {exc}", kind=MailboxErrorKind.BAD_INPUT) from None
        try:
            async with asyncio.timeout(limit):
                racing: set[asyncio.Future[Any]] = {task, self._lost}
                await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            error = MailboxError(
                f"The mail server {self._account.host} did not answer {what} within {limit:.0f} s.",
                kind=MailboxErrorKind.TIMEOUT,
            )
            await self._abandon(error)
            raise error from None
        finally:
            if not task.done():
                task.cancel()
                if self._broken is None:  # cancelled from outside mid-command: the state is unknown
                    self._broken = self._lost_error()
        if not task.done() or task.cancelled():
            await self._abandon()
            raise self._lost_error()
        try:
            return task.result()
        except (aioimaplib.CommandTimeout, TimeoutError):
            error = MailboxError(
                f"The mail server {self._account.host} stopped answering during {what}.",
                kind=MailboxErrorKind.TIMEOUT,
            )
            await self._abandon(error)
            raise error from None
        except ValueError as exc:
            raise MailboxError(f"Cannot send {what}: {exc}", kind=MailboxErrorKind.BAD_INPUT) from None
        except (aioimaplib.AioImapException, OSError) as exc:
            error = MailboxError(
                f"The mail server {self._account.host} gave an unexpected answer to {what}: {exc}",
                kind=MailboxErrorKind.SERVER_ERROR,
            )
            await self._abandon(error)
            raise error from None

    def _check_ok(
        self, what: str, response: Any, *, kind: MailboxErrorKind = MailboxErrorKind.SERVER_ERROR
    ) -> None:
        if response.result != "OK":
            raise MailboxError(
                f"The mail server {self._account.host} refused {what}: {_text_of(response)}", kind=kind
            )

    # --- Mailbox protocol -------------------------------------------------------------------------------

    @property
    def supports_idle(self) -> bool:
        return "IDLE" in self._client.protocol.capabilities

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self._client.protocol.capabilities)

    async def list_folders(self) -> list[ListedFolder]:
        caps = self._client.protocol.capabilities
        pattern = '"*" RETURN (SPECIAL-USE)' if {"SPECIAL-USE", "LIST-EXTENDED"} <= caps else '"*"'
        response = await self._call("LIST", lambda: self._client.list('""', pattern))
        self._check_ok("LIST", response)
        return parse_list(response.lines)

    async def folders(self) -> MailboxFolders:
        return choose_folders(await self.list_folders())

    async def examine(self, folder: str) -> FolderStatus:
        response = await self._call(f"EXAMINE {folder}", lambda: self._client.examine(quoted(folder)))
        if response.result != "OK":
            self._client.protocol.state = aioimaplib.AUTH
            self._selected = None
            raise MailboxError(
                f"The folder {decode_modified_utf7(folder)!r} cannot be opened on {self._account.host}: "
                f"{_text_of(response)}",
                kind=MailboxErrorKind.FOLDER_MISSING,
            )
        # aioimaplib moves to SELECTED only for SELECT; EXAMINE selects too (read-only)
        self._client.protocol.state = aioimaplib.SELECTED
        self._selected = folder
        uidvalidity = uidnext = exists = None
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            if match := _UIDVALIDITY.search(line):
                uidvalidity = int(match.group(1))
            elif match := _UIDNEXT.search(line):
                uidnext = int(match.group(1))
            elif match := _EXISTS.match(line):
                exists = int(match.group(1))
        if uidvalidity is None:
            raise MailboxError(
                f"The server {self._account.host} did not report UIDVALIDITY for {folder!r}.",
                kind=MailboxErrorKind.SERVER_ERROR,
            )
        return FolderStatus(name=folder, uidvalidity=uidvalidity, uidnext=uidnext, exists=exists)

    def _require_selected(self, what: str) -> None:
        if self._selected is None:
            raise MailboxError(f"{what} needs an examined folder", kind=MailboxErrorKind.BAD_INPUT)

    async def _uid_search(self, *criteria: str) -> list[int]:
        self._require_selected("UID SEARCH")
        response = await self._call("UID SEARCH", lambda: self._client.uid_search(*criteria, charset=None))
        self._check_ok("UID SEARCH", response)
        return parse_search(response.lines)

    async def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always includes the highest UID, even when it is below n: filter
        return [uid for uid in await self._uid_search("UID", f"{last_uid + 1}:*") if uid > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        return await self._uid_search("SINCE", f"{day.day}-{aioimaplib.Months[day.month]}-{day.year}")

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        if not uids:
            return {}
        self._require_selected("UID FETCH")
        response = await self._call(
            "UID FETCH (RFC822.SIZE)", lambda: self._uid_fetch(uids, "(UID RFC822.SIZE)")
        )
        self._check_ok("UID FETCH", response)
        return parse_sizes(response.lines)

    async def _uid_fetch(self, uids: Sequence[int], items: str) -> Any:
        protocol = self._client.protocol
        command = _FetchCommand(
            protocol.new_tag(), uid_set(uids), items, prefix="UID", loop=protocol.loop, timeout=None
        )
        return await protocol.execute(command)

    async def fetch(self, uids: Sequence[int], *, expected_bytes: int = 0) -> list[FetchedMessage]:
        if not uids:
            return []
        self._require_selected("UID FETCH")
        # the time limit covers the whole transfer, allowing for slow links (≥ 256 kB/s)
        limit = self._account.timeout_s + expected_bytes / 256_000
        response = await self._call(
            "UID FETCH (BODY.PEEK[])",
            lambda: self._uid_fetch(uids, "(UID BODY.PEEK[])"),
            timeout_s=limit,
        )
        self._check_ok("UID FETCH", response)
        if expected_bytes > 1_000_000:  # copying big literals into bytes takes milliseconds: off the loop
            return await asyncio.to_thread(parse_fetch_bodies, response.lines)
        return parse_fetch_bodies(response.lines)

    async def wait_for_change(self, *, max_wait_s: float, wake: WakeSignal) -> bool:
        self._require_selected("IDLE")
        if wake.is_set():
            return False
        if not self.supports_idle:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max_wait_s)
            return False
        client = self._client
        queue: asyncio.Queue[Any] = client.protocol.idle_queue
        while not queue.empty():
            queue.get_nowait()
        idle_task = await self._call("IDLE", lambda: client.idle_start(timeout=max_wait_s + 60))
        changed = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        try:
            while not wake.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                push = asyncio.ensure_future(queue.get())
                woken = asyncio.ensure_future(wake.wait())
                try:
                    done, _ = await asyncio.wait(
                        {push, woken, self._lost, idle_task},
                        timeout=remaining,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    for waiter in (push, woken):
                        if not waiter.done():
                            waiter.cancel()
                if self._lost.done() or idle_task in done:
                    raise self._lost_error()  # the server ended IDLE on its own (BYE) or the link dropped
                if push in done:
                    lines = push.result()
                    if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                        break
                    if any(isinstance(line, bytes) and line.startswith(b"BYE") for line in lines):
                        raise self._lost_error()
                    if any(isinstance(line, bytes) and _EXISTS.match(line) for line in lines):
                        changed = True
                        break
        except BaseException as exc:
            error = exc if isinstance(exc, MailboxError) else None
            await self._abandon(error)
            raise
        client.idle_done()
        response = await self._call("IDLE DONE", lambda: idle_task)
        self._check_ok("IDLE", response)
        return changed

    async def find_message_id(self, folder: str, message_id: str) -> list[int]:
        wanted = message_id.strip()
        if not wanted or any(c in wanted for c in "\r\n\0"):
            raise MailboxError(f"Not a usable Message-ID: {message_id!r}", kind=MailboxErrorKind.BAD_INPUT)
        await self.examine(folder)
        return await self._uid_search("HEADER", "Message-ID", quoted(wanted))

    async def append(
        self, folder: str, raw: bytes, *, seen: bool = True, when: datetime | None = None
    ) -> int | None:
        limit = self._account.timeout_s + len(raw) / 256_000
        response = await self._call(
            f"APPEND to {folder}",
            lambda: self._client.append(
                raw, mailbox=quoted(folder), flags="\\Seen" if seen else None, date=when
            ),
            timeout_s=limit,
        )
        self._check_ok(f"storing a copy in {folder!r}", response)
        for line in response.lines:
            if isinstance(line, bytes) and (match := _APPENDUID.search(line)):
                return int(match.group(1))
        return None
