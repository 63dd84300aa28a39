"""SMTP submission through aiosmtplib: one account, one connection at a time, every path a SendResult.

Security: certificate verification is always on (system CAs plus an optional extra CA file), with a fresh
SSLContext per connection. "starttls" (587) requires the upgrade: a server that does not offer STARTTLS is
refused, never spoken to in clear. "tls" (465) is TLS from the first byte. AUTH happens only over TLS.
"none" exists for local test relays and refuses credentials.

The session is driven step by step (greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA) so that every
reply is classified by its code, enhanced status and step (core.smtp_replies), and so the reply to the
final dot can have its own long timeout. A drop or timeout once the content has been sent is IN_DOUBT.

Each send returns the SMTP dialogue of that message in `SendResult.transcript` (also `last_transcript`),
with AUTH lines and any secret value redacted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from cadence.core.model import (
    AccountSettings,
    ConnectionCheck,
    ConnectionSecurity,
    RecipientRefusal,
    SendOutcome,
    SendResult,
)
from cadence.core.smtp_replies import FailureKind, SmtpStage, classify_failure, classify_reply

log = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
Security = Literal["starttls", "tls", "none"] | ConnectionSecurity

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_REDACTED = "<redacted>"


class _Transcript:
    """The SMTP dialogue of one message. Client AUTH lines are never recorded; secrets are scrubbed."""

    def __init__(self, secrets: Callable[[], Sequence[str | None]]) -> None:
        self._lines: list[str] = []
        self._start = time.monotonic()
        self._secrets = secrets

    def _add(self, prefix: str, text: str) -> None:
        elapsed = time.monotonic() - self._start
        for line in text.splitlines() or [""]:
            self._lines.append(f"{elapsed:7.3f} {prefix} {line}")

    def client(self, text: str) -> None:
        self._add("C:", text)

    def server(self, code: int, message: str) -> None:
        lines = message.splitlines() or [""]
        for index, line in enumerate(lines):
            self._add("S:", f"{code}{'-' if index < len(lines) - 1 else ' '}{line}")

    def note(self, text: str) -> None:
        self._add("--", text)

    def text(self) -> str:
        out = "\n".join(self._lines)
        for secret in self._secrets():
            if not secret:
                continue
            for form in {secret, base64.b64encode(secret.encode()).decode()}:
                out = out.replace(form, _REDACTED)
        return out


class _Failed(Exception):
    """Internal: a step ended the attempt with this result."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.text)
        self.result = result


class SmtpMailer:
    """A cadence.core.ports.Mailer (and LoginVerifier) for one account's submission server."""

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        token_provider: TokenProvider | None = None,
        ca_file: str | Path | None = None,
        local_hostname: str = "[127.0.0.1]",
        messages_per_connection: int = 20,
        idle_close_s: float = 60.0,
        command_timeout_s: float = 30.0,
        final_reply_timeout_s: float = 600.0,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be 'starttls' or 'tls', not {security!r}")
        security = ConnectionSecurity(security)
        if password is not None and token_provider is not None:
            raise ValueError("give a password or an OAuth token provider, not both")
        if (password is not None or token_provider is not None) and not username:
            raise ValueError("a username is needed to log in")
        if security == "none" and username:
            raise ValueError("refusing to log in without TLS; use 'starttls' or 'tls'")
        if messages_per_connection < 1:
            raise ValueError("messages_per_connection must be at least 1")
        if command_timeout_s <= 0 or final_reply_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ValueError(f"the CA file {ca_file} does not exist")
        self.host = host
        self.port = port if port is not None else {"starttls": 587, "tls": 465, "none": 25}[security.value]
        self.security = security
        self.username = username
        self._password = password
        self._token_provider = token_provider
        self.ca_file = str(ca_file) if ca_file is not None else None
        self.local_hostname = local_hostname
        self.messages_per_connection = messages_per_connection
        self.idle_close_s = idle_close_s
        self.command_timeout_s = command_timeout_s
        self.final_reply_timeout_s = final_reply_timeout_s

        self._lock = asyncio.Lock()
        self._smtp: aiosmtplib.SMTP | None = None
        self._connection_number = 0
        self._sent_on_connection = 0
        self._last_used = 0.0
        self._idle_task: asyncio.Task[None] | None = None
        self._auth_failure: SendResult | None = None
        self._token_seen: str | None = None
        self._content_sent = False
        self.last_transcript = ""
        self.tls_version: str | None = None

    @classmethod
    def from_settings(
        cls,
        settings: AccountSettings,
        *,
        password: str | None = None,
        token_provider: TokenProvider | None = None,
        **options: Any,
    ) -> SmtpMailer:
        """A mailer for an account: host, port, security, CA file and login name from its settings."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.email if (password is not None or token_provider is not None) else None,
            password=password,
            token_provider=token_provider,
            ca_file=settings.ca_file,
            **options,
        )

    # --- public API -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    @property
    def connection_count(self) -> int:
        """Connections opened so far (for diagnosis and tests)."""
        return self._connection_number

    def clear_auth_failure(self) -> None:
        """Allow login attempts again after the credentials were changed."""
        self._auth_failure = None

    async def send(self, *, sender: str, recipients: tuple[str, ...], message: bytes) -> SendResult:
        """Submit one message. Never raises (except cancellation); the result says what happened."""
        async with self._lock:
            transcript = self._new_transcript()
            self._content_sent = False
            try:
                result = await self._send_locked(sender, recipients, message, transcript)
            except asyncio.CancelledError:
                transcript.note("cancelled; connection closed")
                self._discard()
                raise
            except Exception as exc:  # a bug or an unforeseen library error: never let it escape
                log.exception("unexpected error while sending")
                self._discard()
                stage = SmtpStage.DATA_END if self._content_sent else SmtpStage.CONNECT
                result = classify_failure(FailureKind.DISCONNECTED, stage=stage, detail=repr(exc))
            self._schedule_idle_close()
            text = transcript.text()
            self.last_transcript = text
            return replace(result, transcript=text)

    async def verify_login(self) -> ConnectionCheck:
        """Connect, secure, greet and log in on a fresh connection, then QUIT; report the failing step."""
        async with self._lock:
            await self._close_connection(transcript=None)
            transcript = self._new_transcript()
            self._auth_failure = None
            try:
                mechanism = await self._open(transcript)
            except _Failed as failed:
                text = transcript.text()
                self.last_transcript = text
                return ConnectionCheck(
                    ok=False,
                    failed_step=failed.result.stage,
                    outcome=failed.result.outcome,
                    code=failed.result.code,
                    text=failed.result.text,
                    transcript=text,
                )
            except Exception as exc:
                log.exception("unexpected error in the connection test")
                self._discard()
                return ConnectionCheck(
                    ok=False, failed_step=None, text=repr(exc), transcript=transcript.text()
                )
            await self._close_connection(transcript=transcript)
            text = transcript.text()
            self.last_transcript = text
            return ConnectionCheck(
                ok=True, tls_version=self.tls_version, auth_mechanism=mechanism, transcript=text
            )

    async def close(self) -> None:
        """QUIT and close the connection; cancel the idle timer."""
        idle, self._idle_task = self._idle_task, None
        if idle is not None:
            idle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await idle
        async with self._lock:
            await self._close_connection(transcript=None)

    # --- one message ----------------------------------------------------------------------------------

    async def _send_locked(
        self, sender: str, recipients: tuple[str, ...], message: bytes, transcript: _Transcript
    ) -> SendResult:
        problem = _envelope_problem(sender, recipients)
        if problem:
            transcript.note(f"refused before connecting: {problem}")
            return classify_failure(FailureKind.LOCAL, stage=SmtpStage.MAIL, detail=problem)
        if self._auth_failure is not None:
            transcript.note("not connecting: the last login failed and the credentials have not changed")
            return self._auth_failure

        reused = await self._ensure_connection(transcript)
        if isinstance(reused, SendResult):
            return reused
        try:
            return await self._transaction(sender, recipients, message, transcript)
        except _Failed as failed:
            if (
                reused
                and failed.result.stage == SmtpStage.MAIL.value
                and failed.result.text.startswith(FailureKind.DISCONNECTED.value)
            ):
                # The server closed an idle connection we thought was open: nothing was sent, go again once.
                transcript.note("the reused connection was gone; reconnecting")
                self._discard()
                opened = await self._ensure_connection(transcript)
                if isinstance(opened, SendResult):
                    return opened
                try:
                    return await self._transaction(sender, recipients, message, transcript)
                except _Failed as again:
                    return again.result
            return failed.result

    async def _ensure_connection(self, transcript: _Transcript) -> bool | SendResult:
        """True when an open connection is reused, False when a new one was opened, else the failure."""
        smtp = self._smtp
        idle_for = time.monotonic() - self._last_used
        if (
            smtp is not None
            and smtp.is_connected
            and idle_for < self.idle_close_s
            and self._sent_on_connection < self.messages_per_connection
        ):
            transcript.note(
                f"connection #{self._connection_number} reused "
                f"(message {self._sent_on_connection + 1} of {self.messages_per_connection})"
            )
            return True
        await self._close_connection(transcript=transcript)
        try:
            await self._open(transcript)
        except _Failed as failed:
            return failed.result
        return False

    async def _transaction(
        self, sender: str, recipients: tuple[str, ...], message: bytes, transcript: _Transcript
    ) -> SendResult:
        smtp = self._smtp
        assert smtp is not None
        self._last_used = time.monotonic()
        await self._command(smtp, transcript, SmtpStage.MAIL, b"MAIL", b"FROM:<" + sender.encode() + b">")

        accepted: list[str] = []
        refused: list[RecipientRefusal] = []
        first_refusal: SendResult | None = None
        for recipient in recipients:
            response = await self._command(
                smtp,
                transcript,
                SmtpStage.RCPT,
                b"RCPT",
                b"TO:<" + recipient.encode() + b">",
                accept_any=True,
            )
            if 200 <= response.code < 300:
                accepted.append(recipient)
                continue
            result = classify_reply(response.code, response.message, stage=SmtpStage.RCPT)
            if response.code == 421:  # the server is closing the channel: the whole transaction is off
                self._discard()
                raise _Failed(result)
            first_refusal = first_refusal or result
            refused.append(
                RecipientRefusal(
                    recipient, result.outcome, response.code, result.enhanced_status, response.message
                )
            )
        if not accepted:
            assert first_refusal is not None
            await self._reset(smtp, transcript)
            return first_refusal

        response = await self._command(smtp, transcript, SmtpStage.DATA, b"DATA", accept_any=True)
        if response.code != 354:
            await self._reset(smtp, transcript)
            return classify_reply(response.code, response.message, stage=SmtpStage.DATA)

        result = await self._send_content(smtp, message, transcript)
        self._last_used = time.monotonic()
        if result.outcome is SendOutcome.DELIVERED:
            self._sent_on_connection += 1
            if self._sent_on_connection >= self.messages_per_connection:
                await self._close_connection(transcript=transcript)
        return replace(result, refused=tuple(refused))

    async def _send_content(
        self, smtp: aiosmtplib.SMTP, message: bytes, transcript: _Transcript
    ) -> SendResult:
        stage = SmtpStage.DATA_END
        protocol = smtp.protocol
        if protocol is None:
            self._discard()
            return classify_failure(FailureKind.DISCONNECTED, stage=SmtpStage.DATA, detail="connection lost")
        data = _LINE_ENDINGS.sub(b"\r\n", message)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        data = _LEADING_DOT.sub(b"..", data) + b".\r\n"
        transcript.client(f"<message: {len(message)} bytes{_message_id_note(message)}>")
        transcript.client(".")
        try:
            # Written straight to the protocol so the final reply gets its own (long) timeout.
            self._content_sent = True
            protocol.write(data)
            response = await protocol.read_response(timeout=self.final_reply_timeout_s)
        except SMTPTimeoutError:
            transcript.note(f"no reply to the final dot within {self.final_reply_timeout_s:g} s")
            self._discard()
            return classify_failure(FailureKind.TIMEOUT, stage=stage, detail="no reply to the final dot")
        except (SMTPServerDisconnected, ConnectionError, OSError) as exc:
            transcript.note(f"connection lost after the content was sent: {exc}")
            self._discard()
            return classify_failure(FailureKind.DISCONNECTED, stage=stage, detail=str(exc))
        transcript.server(response.code, response.message)
        if response.code == 421:
            self._discard()
        return classify_reply(response.code, response.message, stage=stage)

    # --- the session ----------------------------------------------------------------------------------

    async def _open(self, transcript: _Transcript) -> str | None:
        """Connect, greet, secure and log in; raise _Failed with the classified result of a failing step."""
        self._connection_number += 1
        self._sent_on_connection = 0
        self.tls_version = None
        implicit_tls = self.security == "tls"
        transcript.note(
            f"connection #{self._connection_number} to {self.host}:{self.port} "
            f"({'TLS' if implicit_tls else self.security.upper()})"
        )
        context = await self._tls_context() if implicit_tls else None
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=implicit_tls,
            start_tls=False,  # upgraded below, by hand, and required
            validate_certs=True,
            tls_context=context,
            timeout=self.command_timeout_s,
            local_hostname=self.local_hostname,
        )
        self._smtp = smtp
        stage = SmtpStage.CONNECT
        try:
            greeting = await smtp.connect()
        except SMTPConnectResponseError as exc:
            transcript.server(exc.code, exc.message)
            self._discard()
            raise _Failed(classify_reply(exc.code, exc.message, stage=SmtpStage.GREETING)) from None
        except SMTPTimeoutError as exc:
            transcript.note(f"timed out: {exc}")
            self._discard()
            raise _Failed(classify_failure(FailureKind.TIMEOUT, stage=stage, detail=str(exc))) from None
        except (SMTPConnectError, SMTPServerDisconnected, OSError) as exc:
            kind = FailureKind.TLS if _is_tls_error(exc) else FailureKind.UNREACHABLE
            transcript.note(f"could not connect: {_describe(exc)}")
            self._discard()
            raise _Failed(classify_failure(kind, stage=stage, detail=_describe(exc))) from None
        transcript.server(greeting.code, greeting.message)
        if implicit_tls:
            self._note_tls(smtp, transcript)

        await self._command(
            smtp, transcript, SmtpStage.EHLO, b"EHLO", self.local_hostname.encode(), ehlo=True
        )
        if self.security == "starttls":
            await self._starttls(smtp, transcript)
            await self._command(
                smtp, transcript, SmtpStage.EHLO, b"EHLO", self.local_hostname.encode(), ehlo=True
            )
        mechanism = await self._login(smtp, transcript)
        self._last_used = time.monotonic()
        return mechanism

    async def _starttls(self, smtp: aiosmtplib.SMTP, transcript: _Transcript) -> None:
        stage = SmtpStage.STARTTLS
        if not smtp.supports_extension("starttls"):
            transcript.note("the server does not offer STARTTLS: refusing to continue in clear")
            await self._close_connection(transcript=transcript)
            raise _Failed(
                classify_failure(
                    FailureKind.STARTTLS_MISSING,
                    stage=stage,
                    detail="the server did not offer STARTTLS (it may have been stripped on the way)",
                )
            )
        context = await self._tls_context()
        transcript.client("STARTTLS")
        try:
            response = await smtp.starttls(tls_context=context, server_hostname=self.host)
        except SMTPResponseException as exc:
            transcript.server(exc.code, exc.message)
            await self._close_connection(transcript=transcript)
            raise _Failed(classify_reply(exc.code, exc.message, stage=stage)) from None
        except SMTPTimeoutError as exc:
            self._discard()
            raise _Failed(classify_failure(FailureKind.TIMEOUT, stage=stage, detail=str(exc))) from None
        except (SMTPException, OSError) as exc:
            kind = FailureKind.TLS if _is_tls_error(exc) else FailureKind.DISCONNECTED
            transcript.note(f"TLS upgrade failed: {_describe(exc)}")
            self._discard()
            raise _Failed(classify_failure(kind, stage=stage, detail=_describe(exc))) from None
        transcript.server(response.code, response.message)
        self._note_tls(smtp, transcript)

    async def _login(self, smtp: aiosmtplib.SMTP, transcript: _Transcript) -> str | None:
        if not self.username:
            return None
        stage = SmtpStage.AUTH
        if smtp.get_transport_info("sslcontext") is None:  # belt and braces: never AUTH in clear
            self._discard()
            raise _Failed(
                classify_failure(FailureKind.TLS, stage=stage, detail="not encrypted; AUTH refused")
            )
        offered = smtp.server_auth_methods
        if self._token_provider is not None:
            mechanism = "XOAUTH2"
            if "xoauth2" not in offered:
                await self._close_connection(transcript=transcript)
                raise _Failed(
                    classify_failure(
                        FailureKind.NO_AUTH_MECHANISM, stage=stage, detail="the server does not offer XOAUTH2"
                    )
                )
            try:
                token = await self._token_provider()
            except Exception as exc:
                await self._close_connection(transcript=transcript)
                raise _Failed(
                    SendResult(
                        outcome=SendOutcome.AUTH_FAILED,
                        text=f"could not get an OAuth access token: {exc}",
                        stage=stage.value,
                    )
                ) from None
            self._token_seen = token
            attempt = smtp.auth_xoauth2(self.username, token)
        else:
            password = self._password or ""
            if "plain" in offered:
                mechanism, attempt = "PLAIN", smtp.auth_plain(self.username, password)
            elif "login" in offered:
                mechanism, attempt = "LOGIN", smtp.auth_login(self.username, password)
            else:
                await self._close_connection(transcript=transcript)
                raise _Failed(
                    classify_failure(
                        FailureKind.NO_AUTH_MECHANISM,
                        stage=stage,
                        detail=f"no PLAIN or LOGIN among {offered or 'no mechanisms'}",
                    )
                )
        transcript.client(f"AUTH {mechanism} {_REDACTED}")
        try:
            response = await attempt
        except SMTPResponseException as exc:
            transcript.server(exc.code, exc.message)
            result = classify_reply(exc.code, exc.message, stage=stage)
            if isinstance(exc, SMTPAuthenticationError) and result.outcome is SendOutcome.AUTH_FAILED:
                self._auth_failure = result  # no retry storm: one failed login per credential change
            await self._close_connection(transcript=transcript)
            raise _Failed(result) from None
        except SMTPTimeoutError as exc:
            self._discard()
            raise _Failed(classify_failure(FailureKind.TIMEOUT, stage=stage, detail=str(exc))) from None
        except (SMTPException, OSError) as exc:
            transcript.note(f"connection lost during AUTH: {_describe(exc)}")
            self._discard()
            raise _Failed(
                classify_failure(FailureKind.DISCONNECTED, stage=stage, detail=_describe(exc))
            ) from None
        transcript.server(response.code, response.message)
        return mechanism

    async def _command(
        self,
        smtp: aiosmtplib.SMTP,
        transcript: _Transcript,
        stage: SmtpStage,
        *args: bytes,
        accept_any: bool = False,
        ehlo: bool = False,
    ) -> aiosmtplib.SMTPResponse:
        """One command with the per-command timeout; non-2xx (unless accept_any) raises _Failed."""
        transcript.client(b" ".join(args).decode("ascii", "replace"))
        try:
            if ehlo:
                response = await smtp.ehlo(hostname=self.local_hostname)
            else:
                response = await smtp.execute_command(*args, timeout=self.command_timeout_s)
        except SMTPResponseException as exc:  # EHLO refused
            transcript.server(exc.code, exc.message)
            await self._close_connection(transcript=transcript)
            raise _Failed(classify_reply(exc.code, exc.message, stage=stage)) from None
        except SMTPTimeoutError as exc:
            transcript.note(f"no reply within {self.command_timeout_s:g} s")
            self._discard()
            raise _Failed(classify_failure(FailureKind.TIMEOUT, stage=stage, detail=str(exc))) from None
        except (SMTPException, OSError) as exc:
            transcript.note(f"connection lost: {_describe(exc)}")
            self._discard()
            raise _Failed(
                classify_failure(FailureKind.DISCONNECTED, stage=stage, detail=_describe(exc))
            ) from None
        transcript.server(response.code, response.message)
        if response.code == 421:
            self._discard()
        if not accept_any and not 200 <= response.code < 300:
            result = classify_reply(response.code, response.message, stage=stage)
            if stage is SmtpStage.MAIL:
                await self._reset(smtp, transcript)
            else:
                await self._close_connection(transcript=transcript)
            raise _Failed(result)
        return response

    async def _reset(self, smtp: aiosmtplib.SMTP, transcript: _Transcript) -> None:
        if self._smtp is not smtp or not smtp.is_connected:
            return
        transcript.client("RSET")
        try:
            response = await smtp.rset(timeout=self.command_timeout_s)
            transcript.server(response.code, response.message)
        except (SMTPException, OSError) as exc:
            transcript.note(f"RSET failed ({_describe(exc)}); closing")
            self._discard()

    async def _close_connection(self, *, transcript: _Transcript | None) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        if smtp.is_connected:
            if transcript is not None:
                transcript.client("QUIT")
            try:
                response = await smtp.quit(timeout=min(self.command_timeout_s, 5.0))
                if transcript is not None:
                    transcript.server(response.code, response.message)
            except (SMTPException, OSError):
                pass
        smtp.close()

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _schedule_idle_close(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        if self._smtp is not None:
            self._idle_task = asyncio.get_running_loop().create_task(self._close_when_idle())

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(self.idle_close_s)
        async with self._lock:
            if self._smtp is not None and time.monotonic() - self._last_used >= self.idle_close_s * 0.99:
                await self._close_connection(transcript=None)
        if self._idle_task is asyncio.current_task():
            self._idle_task = None

    async def _tls_context(self) -> ssl.SSLContext:
        try:
            return await asyncio.to_thread(self._build_tls_context)
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._discard()
            raise _Failed(
                classify_failure(
                    FailureKind.TLS,
                    stage=SmtpStage.CONNECT,
                    detail=f"the CA file {self.ca_file} could not be loaded: {exc}",
                )
            ) from None

    def _build_tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if self.ca_file is not None:
            context.load_verify_locations(cafile=self.ca_file)
        return context

    def _note_tls(self, smtp: aiosmtplib.SMTP, transcript: _Transcript) -> None:
        ssl_object = smtp.get_transport_info("ssl_object") or smtp.get_transport_info("sslobject")
        version = ssl_object.version() if ssl_object is not None else None
        self.tls_version = version
        transcript.note(
            f"TLS established ({version or 'version unknown'}), certificate verified for {self.host}"
        )

    def _new_transcript(self) -> _Transcript:
        return _Transcript(lambda: (self._password, self._token_seen))


def _envelope_problem(sender: str, recipients: tuple[str, ...]) -> str | None:
    if not recipients:
        return "no recipients"
    for address in (sender, *recipients):
        if (
            not address
            or _CONTROL.search(address)
            or any(c in address for c in "<> ")
            or not address.isascii()
        ):
            return f"{address!r} cannot be used in the SMTP envelope"
    return None


def _message_id_note(message: bytes) -> str:
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = re.search(rb"(?im)^message-id:\s*(<[^>\r\n]*>)", head)
    return f", Message-ID {match.group(1).decode('ascii', 'replace')}" if match else ""


def _is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in str(exc):
        return f"{exc} ({cause})"
    return str(exc) or type(exc).__name__


if TYPE_CHECKING:
    from cadence.core.ports import LoginVerifier, Mailer

    def _implements(mailer: SmtpMailer) -> tuple[Mailer, LoginVerifier]:
        return mailer, mailer
