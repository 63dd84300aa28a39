"""A scripted aiosmtpd submission server on 127.0.0.1 (port 0) with a trustme certificate, for tests.

Script any step with `peer.on(stage, action, times=None)`; stages are GREETING, EHLO, STARTTLS, AUTH, MAIL,
RCPT, DATA (the reply to the DATA command), DATA_BODY (only `Drop()`: cut the line after the first content
line) and END_OF_DATA (the reply to the final dot). Actions: `Reply("451 4.3.0 busy", delay_s=, close=)`,
`Hang()` (never answer) and `Drop()` (close without a reply). `times=None` applies to every occurrence,
`times=n` to the next n; unscripted steps behave like a normal server. `peer.reply_to_recipient(addr, action)`
scripts one recipient. `peer.offer_starttls = False` leaves STARTTLS out of the EHLO reply.

Everything is recorded: `peer.received` (every message that reached the final dot, with its reply),
`peer.accepted` (those answered 2xx), `peer.auth_attempts`, `peer.commands` and `peer.connections`.

Use it in the test's own loop (`await peer.start()` / `await peer.stop()`, or the `smtp_peer` fixtures) or
in a thread of its own for synchronous tests and subprocesses (`peer.start_in_thread()` /
`peer.stop_thread()`, or the `threaded_smtp_peer` fixture). Import the fixtures in your test module:
`from tests.integration.smtp_peer import smtp_ca, smtp_ca_file, smtp_peer  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
import trustme
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

GREETING = "greeting"
EHLO = "ehlo"
STARTTLS = "starttls"
AUTH = "auth"
MAIL = "mail"
RCPT = "rcpt"
DATA = "data"
DATA_BODY = "data_body"
END_OF_DATA = "end_of_data"
STAGES = (GREETING, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, DATA_BODY, END_OF_DATA)

DEFAULT_USER = "alice@example.test"
DEFAULT_PASSWORD = "alice-secret-pw"
DEFAULT_TOKEN = "ya29.test-access-token"

Mode = Literal["starttls", "tls", "plain"]


@dataclass(frozen=True)
class Reply:
    text: str  # one line, or several separated by "\n" (send "250-a\n250 b" for a multi-line reply)
    delay_s: float = 0.0
    close: bool = False  # close the connection after replying (like a real 421)


@dataclass(frozen=True)
class Hang:
    """Never answer; the connection stays open until the client gives up."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without a reply."""


Action = Reply | Hang | Drop


@dataclass
class ReceivedMessage:
    connection: int
    login: str | None
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    reply: str  # "" when the connection was dropped instead of answering
    tls: bool

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")

    @property
    def headers(self) -> EmailMessage:
        parsed = BytesHeaderParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str | None:
        value = self.headers["Message-ID"]
        return str(value).strip() if value is not None else None


@dataclass
class AuthAttempt:
    connection: int
    mechanism: str
    login: str
    secret: str
    ok: bool
    tls: bool


@dataclass
class _Scripted:
    action: Action
    remaining: int | None


@dataclass
class ScriptedSmtpPeer:
    ca: trustme.CA
    mode: Mode = "starttls"
    users: dict[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_PASSWORD})
    tokens: dict[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_TOKEN})
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN", "XOAUTH2")
    require_auth: bool = True
    offer_starttls: bool = True
    cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")

    host: str = field(init=False, default="127.0.0.1")
    port: int = field(init=False, default=0)
    connections: int = field(init=False, default=0)
    received: list[ReceivedMessage] = field(init=False, default_factory=list)
    auth_attempts: list[AuthAttempt] = field(init=False, default_factory=list)
    commands: list[tuple[int, str, bool]] = field(init=False, default_factory=list)  # (conn, verb, tls)
    xoauth2_error_answers: list[bytes] = field(init=False, default_factory=list)  # client's reply to the 334

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._script: dict[str, list[_Scripted]] = {stage: [] for stage in STAGES}
        self._per_recipient: dict[str, _Scripted] = {}
        self._server: asyncio.AbstractServer | None = None
        self._live: set[_PeerSMTP] = set()
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        cert = self.ca.issue_cert(*self.cert_hosts)
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server_context)

    # --- scripting ------------------------------------------------------------------------------------

    def on(self, stage: str, action: Action, *, times: int | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
        with self._lock:
            self._script[stage].append(_Scripted(action, times))

    def reply_to_recipient(self, address: str, action: Action, *, times: int | None = None) -> None:
        with self._lock:
            self._per_recipient[address.lower()] = _Scripted(action, times)

    def clear_script(self) -> None:
        with self._lock:
            for queue in self._script.values():
                queue.clear()
            self._per_recipient.clear()

    def take(self, stage: str, *, recipient: str | None = None) -> Action | None:
        with self._lock:
            if recipient is not None:
                scripted = self._per_recipient.get(recipient.lower())
                if scripted is not None:
                    return self._consume(scripted, lambda: self._per_recipient.pop(recipient.lower()))
            queue = self._script[stage]
            if not queue:
                return None
            return self._consume(queue[0], lambda: queue.pop(0))

    @staticmethod
    def _consume(scripted: _Scripted, remove: Any) -> Action:
        if scripted.remaining is not None:
            scripted.remaining -= 1
            if scripted.remaining <= 0:
                remove()
        return scripted.action

    # --- what happened --------------------------------------------------------------------------------

    @property
    def accepted(self) -> list[ReceivedMessage]:
        return [message for message in self.received if message.accepted]

    def verbs(self, *, connection: int | None = None) -> list[str]:
        return [verb for conn, verb, _ in self.commands if connection is None or conn == connection]

    def drop_connections(self) -> None:
        """Cut every open connection (as a server restart or an idle timeout would)."""
        if self._thread_loop is not None:
            self._thread_loop.call_soon_threadsafe(self._abort_all)
        else:
            self._abort_all()

    def _abort_all(self) -> None:
        for protocol in list(self._live):
            if protocol.transport is not None:
                protocol.transport.abort()  # type: ignore[attr-defined]

    def client_options(self, ca_file: Path) -> dict[str, object]:
        """Keyword arguments for cadence.adapters.smtp.SmtpMailer that reach this peer as the default user."""
        return {
            "host": self.host,
            "port": self.port,
            "security": "tls" if self.mode == "tls" else "starttls",
            "username": DEFAULT_USER,
            "password": DEFAULT_PASSWORD,
            "ca_file": ca_file,
        }

    def write_ca_file(self, path: Path) -> Path:
        self.ca.cert_pem.write_to_path(str(path))
        return path

    # --- running --------------------------------------------------------------------------------------

    async def start(self) -> None:
        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own per-command chatter
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: _PeerSMTP(self, handler, loop),
            host=self.host,
            port=0,
            ssl=self.server_context if self.mode == "tls" else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for protocol in list(self._live):
            if protocol.transport is not None:
                protocol.transport.abort()  # type: ignore[attr-defined]
            if protocol._original_transport is not None:
                protocol._original_transport.abort()  # type: ignore[attr-defined]
        tasks = [p._handler_coroutine for p in list(self._live) if p._handler_coroutine is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        for _ in range(5):
            await asyncio.sleep(0)
        self._server = None

    def start_in_thread(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="smtp-peer", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]

    def stop_thread(self) -> None:
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(10)
        self._thread = None
        self._thread_loop = None

    # --- called by the server -------------------------------------------------------------------------

    def _opened(self, protocol: _PeerSMTP) -> int:
        with self._lock:
            self.connections += 1
            self._live.add(protocol)
            return self.connections

    def _closed(self, protocol: _PeerSMTP) -> None:
        with self._lock:
            self._live.discard(protocol)

    def _authenticate(self, server: SMTP, mechanism: str, data: LoginPassword) -> AuthResult:
        assert isinstance(server, _PeerSMTP)
        login = data.login.decode("utf-8", "replace")
        secret = data.password.decode("utf-8", "replace")
        known = self.tokens if mechanism == "XOAUTH2" else self.users
        ok = login in known and known[login] == secret
        with self._lock:
            self.auth_attempts.append(
                AuthAttempt(server.connection_number, mechanism, login, secret, ok, server.tls_active)
            )
        return AuthResult(success=ok, handled=False, auth_data=data)


class _PeerSMTP(SMTP):
    def __init__(self, peer: ScriptedSmtpPeer, handler: _Handler, loop: asyncio.AbstractEventLoop) -> None:
        excluded = [m for m in ("PLAIN", "LOGIN", "XOAUTH2") if m not in peer.auth_mechanisms]
        super().__init__(
            handler,
            hostname="peer.example.test",
            ident="scripted peer",
            tls_context=peer.server_context if peer.mode == "starttls" else None,
            auth_require_tls=peer.mode != "tls",  # with implicit TLS the whole session is already encrypted
            auth_exclude_mechanism=excluded,
            authenticator=lambda server, _session, _envelope, mechanism, data: peer._authenticate(
                server, mechanism, data
            ),
            loop=loop,
        )
        self.peer = peer
        self.connection_number = 0
        self._greeted = False
        self._smtp_methods = {
            verb: self._recorded(verb, method) for verb, method in self._smtp_methods.items()
        }

    @property
    def tls_active(self) -> bool:
        return self.peer.mode == "tls" or self._tls_protocol is not None

    def _recorded(self, verb: str, method: Any) -> Any:
        async def run(arg: str | None) -> None:
            with self.peer._lock:
                self.peer.commands.append((self.connection_number, verb, self.tls_active))
            await method(arg)

        return run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:
            self.connection_number = self.peer._opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.peer._closed(self)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if not self._greeted:
            self._greeted = True
            action = self.peer.take(GREETING)
            if action is not None:
                await self.perform(action)
                return
        await super().push(status)

    async def perform(self, action: Action) -> str | None:
        """Carry out a scripted action; return the reply text sent (None when hanging up or dropping)."""
        if isinstance(action, Reply):
            if action.delay_s:
                await asyncio.sleep(action.delay_s)
            for line in action.text.split("\n"):
                await super().push(line)
            if action.close and self.transport is not None:
                self.transport.close()
                await asyncio.Event().wait()
            return action.text
        if isinstance(action, Drop) and self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]
        await asyncio.Event().wait()  # cancelled when the connection goes
        return None

    async def smtp_STARTTLS(self, arg: str) -> None:
        action = self.peer.take(STARTTLS)
        if action is not None:
            await self.perform(action)
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        if self.envelope.rcpt_tos:
            action = self.peer.take(DATA)
            if action is not None:
                await self.perform(action)
                return
            if isinstance(self.peer.take(DATA_BODY), Drop):
                await super().push("354 End data with <CR><LF>.<CR><LF>")
                await self._reader.readuntil(b"\r\n")
                await self.perform(Drop())
                return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, peer: ScriptedSmtpPeer) -> None:
        self.peer = peer

    async def handle_EHLO(
        self, server: _PeerSMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        action = self.peer.take(EHLO)
        if action is not None:
            if isinstance(action, Reply) and action.text.startswith("2"):
                return action.text.split("\n")
            await server.perform(action)
            session.host_name = None  # a refused EHLO leaves the session without a greeting
            return []
        if not self.peer.offer_starttls:
            responses = [line for line in responses if line[4:].upper() != "STARTTLS"]
        return responses

    async def handle_AUTH(
        self, server: _PeerSMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> Any:
        action = self.peer.take(AUTH)
        if action is None:
            return MISSING
        if isinstance(action, Reply):
            if action.delay_s:
                await asyncio.sleep(action.delay_s)
            return action.text
        await server.perform(action)
        return None

    async def handle_MAIL(
        self, server: _PeerSMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> Any:
        if self.peer.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        action = self.peer.take(MAIL)
        if action is None:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 2.1.0 OK"
        return await _scripted_status(server, action)

    async def handle_RCPT(
        self, server: _PeerSMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> Any:
        action = self.peer.take(RCPT, recipient=address)
        if action is None or (isinstance(action, Reply) and action.text.startswith("2")):
            if action is not None and action.delay_s:
                await asyncio.sleep(action.delay_s)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return action.text if isinstance(action, Reply) else "250 2.1.5 OK"
        return await _scripted_status(server, action)

    async def handle_DATA(self, server: _PeerSMTP, session: Session, envelope: Envelope) -> Any:
        action = self.peer.take(END_OF_DATA)
        message = ReceivedMessage(
            connection=server.connection_number,
            login=session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            reply="",
            tls=server.tls_active,
        )
        with self.peer._lock:
            self.peer.received.append(message)
        if action is None:
            message.reply = f"250 2.0.0 OK queued as {len(self.peer.received)}"
            return message.reply
        if isinstance(action, Reply):
            message.reply = action.text
            if action.delay_s:
                await asyncio.sleep(action.delay_s)
            if action.close:
                await server.perform(action)
            return action.text
        await server.perform(action)
        return None

    async def auth_XOAUTH2(self, server: _PeerSMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            blob = answer
        fields = dict(part.split(b"=", 1) for part in blob.split(b"\x01") if b"=" in part)
        login = fields.get(b"user", b"")
        bearer = fields.get(b"auth", b"")
        token = bearer[len(b"Bearer ") :] if bearer.startswith(b"Bearer ") else b""
        result = self.peer._authenticate(server, "XOAUTH2", LoginPassword(login, token))
        if not result.success:
            error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
            answer = await server.challenge_auth(
                error
            )  # the client answers with an empty line, then gets 535
            with self.peer._lock:
                self.peer.xoauth2_error_answers.append(answer if isinstance(answer, bytes) else b"<invalid>")
        return result


async def _scripted_status(server: _PeerSMTP, action: Action) -> Any:
    if isinstance(action, Reply):
        if action.delay_s:
            await asyncio.sleep(action.delay_s)
        if action.close:
            await server.perform(action)
        return action.text
    await server.perform(action)
    return None


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_ca_file(smtp_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "smtp-test-ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


@pytest_asyncio.fixture
async def smtp_peer(smtp_ca: trustme.CA) -> AsyncIterator[ScriptedSmtpPeer]:
    """STARTTLS submission peer (like port 587) running in the test's event loop."""
    peer = ScriptedSmtpPeer(ca=smtp_ca, mode="starttls")
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest_asyncio.fixture
async def smtp_peer_tls(smtp_ca: trustme.CA) -> AsyncIterator[ScriptedSmtpPeer]:
    """Implicit-TLS submission peer (like port 465) running in the test's event loop."""
    peer = ScriptedSmtpPeer(ca=smtp_ca, mode="tls")
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
def threaded_smtp_peer(smtp_ca: trustme.CA) -> Iterator[ScriptedSmtpPeer]:
    """STARTTLS peer in a thread of its own: for synchronous tests, qasync loops and subprocesses."""
    peer = ScriptedSmtpPeer(ca=smtp_ca, mode="starttls")
    peer.start_in_thread()
    try:
        yield peer
    finally:
        with contextlib.suppress(Exception):
            peer.stop_thread()
