"""The network side of "Test connection" (`cadence.services.connection_test.ConnectionProbe`).

DNS through the system resolver (what the real connections use), a bare TCP connect, a TLS handshake of
its own (after SMTP STARTTLS where configured) so that the certificate can be judged apart from the login,
then the real adapters for the logins: `SmtpMailer.verify_login` and `ImapMailbox.connect`. With OAuth the
logins go through `cadence.adapters.oauth` (one token renewal when the server refuses the token).
Every failure leaves as `ProbeFailure(problem, detail)`; nothing here logs a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from cadence.adapters.imap import ImapAccount, ImapMailbox
from cadence.adapters.oauth import OAuthTokenSource, RefreshingImapConnector, RefreshingMailer
from cadence.adapters.smtp import SmtpMailer
from cadence.core.connection_advice import (
    LoginInfo,
    ProbeFailure,
    Problem,
    TestCredentials,
    TlsInfo,
    problem_from_cert_error,
    problem_from_imap_login_text,
    problem_from_smtp_auth_reply,
)
from cadence.core.model import AccountSettings, ConnectionSecurity
from cadence.core.oauth import OAuthError, OAuthErrorKind
from cadence.core.ports import MailboxError, MailboxErrorKind

__all__ = ["NetworkProbe"]

_SMTP_LINE_LIMIT = 4096


def _tls_context(ca_file: str | None, *, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ProbeFailure(Problem.CA_FILE_UNREADABLE, f"{ca_file}: {error}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _oauth_problem(error: OAuthError) -> Problem:
    return {
        OAuthErrorKind.NOT_CONFIGURED: Problem.OAUTH_NOT_CONFIGURED,
        OAuthErrorKind.SIGN_IN_REQUIRED: Problem.OAUTH_SIGN_IN_REQUIRED,
        OAuthErrorKind.CANCELLED: Problem.OAUTH_SIGN_IN_REQUIRED,
        OAuthErrorKind.WRONG_ACCOUNT: Problem.OAUTH_SIGN_IN_REQUIRED,
        OAuthErrorKind.CONSENT_REQUIRED: Problem.OAUTH_SIGN_IN_REQUIRED,
        OAuthErrorKind.CLIENT_REJECTED: Problem.OAUTH_NOT_CONFIGURED,
        OAuthErrorKind.NETWORK: Problem.NETWORK_UNREACHABLE,
        OAuthErrorKind.KEYRING: Problem.KEYRING_UNAVAILABLE,
    }.get(error.kind, Problem.SERVER_ERROR)


_MAILBOX_PROBLEMS = {
    MailboxErrorKind.IMAP_DISABLED: Problem.IMAP_DISABLED,
    MailboxErrorKind.TLS_FAILED: Problem.TLS_FAILED,
    MailboxErrorKind.TIMEOUT: Problem.TIMEOUT,
    MailboxErrorKind.CONNECTION_REFUSED: Problem.CONNECTION_REFUSED,
    MailboxErrorKind.HOST_NOT_FOUND: Problem.HOST_NOT_FOUND,
    MailboxErrorKind.CONNECTION_LOST: Problem.CONNECTION_LOST,
    MailboxErrorKind.FOLDER_MISSING: Problem.SENT_FOLDER_MISSING,
    MailboxErrorKind.SERVER_ERROR: Problem.SERVER_ERROR,
    MailboxErrorKind.BAD_INPUT: Problem.BAD_SETTINGS,
}


def _server_words(text: str) -> str:
    """The server's own reply inside the IMAP adapter's sentence ("... (the server said: X)."), if any."""
    marker = "the server said: "
    start = text.rfind(marker)
    if start < 0:
        return text
    return text[start + len(marker) :].rstrip(".").removesuffix(")")


def _mailbox_failure(error: MailboxError, *, oauth: bool) -> ProbeFailure:
    text = str(error)
    if error.kind is MailboxErrorKind.AUTH_FAILED:
        said = _server_words(text)
        return ProbeFailure(problem_from_imap_login_text(said, oauth=oauth), said)
    if error.kind is MailboxErrorKind.TLS_UNTRUSTED:
        return ProbeFailure(problem_from_cert_error(None, text), text)
    return ProbeFailure(_MAILBOX_PROBLEMS.get(error.kind, Problem.SERVER_ERROR), text)


@dataclass(slots=True)
class _ImapSession:
    mailbox: ImapMailbox
    oauth: bool

    async def sent_folder(self) -> str | None:
        try:
            folders = await self.mailbox.folders()
        except MailboxError as error:
            raise _mailbox_failure(error, oauth=self.oauth) from None
        return folders.sent

    async def close(self) -> None:
        await self.mailbox.close()


class NetworkProbe:
    """`ConnectionProbe` over the real network (and the real SMTP and IMAP adapters)."""

    def __init__(self, *, local_hostname: str = "[127.0.0.1]") -> None:
        self.local_hostname = local_hostname

    # --- DNS and TCP ---

    async def resolve(self, host: str, port: int) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            if error.errno in {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)}:
                raise ProbeFailure(Problem.HOST_NOT_FOUND, error.strerror or str(error)) from None
            raise ProbeFailure(Problem.NETWORK_UNREACHABLE, f"name lookup failed: {error.strerror}") from None
        except (UnicodeError, ValueError) as error:
            raise ProbeFailure(
                Problem.HOST_NOT_FOUND, f"{host!r} is not a valid server name ({error})"
            ) from None
        addresses: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ProbeFailure(Problem.HOST_NOT_FOUND, "no addresses")
        return tuple(addresses)

    async def connect(self, address: str, port: int) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            _reader, writer = await asyncio.open_connection(address, port)
        except OSError as error:
            raise _socket_failure(error) from None
        finally:
            if writer is not None:
                writer.transport.abort()

    # --- TLS and the certificate ---

    async def tls(
        self, *, host: str, address: str, port: int, starttls: bool, ca_file: str | None
    ) -> TlsInfo:
        try:
            return await self._handshake(host, address, port, starttls=starttls, ca_file=ca_file, verify=True)
        except ssl.SSLCertVerificationError as error:
            problem = problem_from_cert_error(error.verify_code, error.verify_message or str(error))
            detail = error.verify_message or str(error.reason or error)
        # the certificate failed: learn the protocol version on an unverified connection (nothing is sent)
        version = "TLS"
        with contextlib.suppress(ProbeFailure, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            unverified = await self._handshake(
                host, address, port, starttls=starttls, ca_file=None, verify=False
            )
            version = unverified.version
        return TlsInfo(version=version, certificate_problem=problem, certificate_detail=detail)

    async def _handshake(
        self, host: str, address: str, port: int, *, starttls: bool, ca_file: str | None, verify: bool
    ) -> TlsInfo:
        context = _tls_context(ca_file, verify=verify)
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                if starttls:
                    reader, writer = await asyncio.open_connection(address, port, limit=_SMTP_LINE_LIMIT)
                    await self._smtp_starttls(reader, writer)
                    await writer.start_tls(context, server_hostname=host)
                else:
                    reader, writer = await asyncio.open_connection(
                        address, port, ssl=context, server_hostname=host, ssl_handshake_timeout=None
                    )
            except ssl.SSLCertVerificationError:
                raise
            except ssl.SSLError as error:
                raise ProbeFailure(Problem.TLS_FAILED, str(error.reason or error)) from None
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
                raise ProbeFailure(
                    Problem.TLS_FAILED, f"the server closed the connection during the handshake ({error})"
                ) from None
            except OSError as error:
                raise _socket_failure(error) from None
            ssl_object = writer.get_extra_info("ssl_object")
            version = ssl_object.version() if ssl_object is not None else None
            subject, expires = _certificate_facts(ssl_object.getpeercert() if verify and ssl_object else None)
            return TlsInfo(version=version or "TLS", subject=subject, expires=expires)
        finally:
            if writer is not None:
                writer.transport.abort()

    async def _smtp_starttls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        code, text = await _read_smtp_reply(reader)
        if code != 220:
            problem = Problem.SERVER_BUSY if 400 <= code < 500 else Problem.SERVER_ERROR
            raise ProbeFailure(problem, f"greeting: {code} {text}")
        writer.write(f"EHLO {self.local_hostname}\r\n".encode("ascii"))
        code, text = await _read_smtp_reply(reader)
        if code != 250:
            raise ProbeFailure(Problem.SERVER_ERROR, f"EHLO: {code} {text}")
        if not any(line.strip().upper().startswith("STARTTLS") for line in text.split("\n")):
            raise ProbeFailure(Problem.STARTTLS_MISSING, "not in the EHLO reply")
        writer.write(b"STARTTLS\r\n")
        code, text = await _read_smtp_reply(reader)
        if code != 220:
            raise ProbeFailure(Problem.STARTTLS_MISSING, f"STARTTLS: {code} {text}")

    # --- logins ---

    async def smtp_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> LoginInfo:
        username = credentials.username or settings.email
        token_provider = credentials.token_provider
        if token_provider is None and not credentials.password:
            raise ProbeFailure(Problem.MISSING_SECRET)
        security = {
            ConnectionSecurity.STARTTLS: "starttls",
            ConnectionSecurity.TLS: "tls",
            ConnectionSecurity.NONE: "none",
        }[settings.smtp_security]
        try:
            mailer = SmtpMailer(
                host=settings.smtp_host,
                port=settings.smtp_port,
                security=security,  # type: ignore[arg-type]
                username=username,
                password=None if token_provider is not None else credentials.password,
                token_provider=token_provider,
                ca_file=settings.ca_file,
                local_hostname=self.local_hostname,
                command_timeout_s=timeout_s * 0.8,  # the mailer's own verdict comes before the step's limit
            )
        except ValueError as error:
            raise ProbeFailure(Problem.BAD_SETTINGS, str(error)) from None
        source = token_provider if isinstance(token_provider, OAuthTokenSource) else None
        verifier = RefreshingMailer(mailer, source=source) if source is not None else mailer
        try:
            check = await verifier.verify_login()
        finally:
            # after a cancelled step the server may be hung: do not wait long for its QUIT reply
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await mailer.close()
        if check.ok:
            note = f"The connection used {check.tls_version}." if check.tls_version else ""
            return LoginInfo(mechanism=check.auth_mechanism or "", note=note)
        text = check.text
        if source is not None and source.last_error is not None:
            raise ProbeFailure(_oauth_problem(source.last_error), str(source.last_error))
        if text.startswith("could not get an OAuth access token"):
            raise ProbeFailure(Problem.OAUTH_SIGN_IN_REQUIRED, text)
        if check.failed_step == "auth" and check.code is not None:  # the server refused the login
            raise ProbeFailure(
                problem_from_smtp_auth_reply(check.code, text, oauth=token_provider is not None),
                f"{check.code} {text}" if check.code else text,
            )
        raise ProbeFailure(
            _smtp_session_problem(check.code, text), f"{check.code} {text}" if check.code else text
        )

    async def imap_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> _ImapSession:
        oauth = credentials.token_provider is not None
        # the adapter's own limit must end before the step's, so its verdict (e.g. a refused token, which
        # aioimaplib only notices as silence) is what the user sees; OAuth may need two attempts
        account = ImapAccount(
            host=settings.imap_host,
            username=credentials.username or settings.email,
            port=settings.imap_port,
            ca_file=settings.ca_file,
            oauth2=oauth,
            timeout_s=timeout_s * (0.4 if oauth else 0.9),
        )
        try:
            if isinstance(credentials.token_provider, OAuthTokenSource):
                mailbox = await RefreshingImapConnector(account, source=credentials.token_provider)()
            elif credentials.token_provider is not None:
                mailbox = await ImapMailbox.connect(account, secret=await credentials.token_provider())
            else:
                secret = credentials.imap_password or credentials.password
                if not secret:
                    raise ProbeFailure(Problem.MISSING_SECRET)
                mailbox = await ImapMailbox.connect(account, secret=secret)
        except MailboxError as error:
            raise _mailbox_failure(error, oauth=oauth) from None
        except OAuthError as error:
            raise ProbeFailure(_oauth_problem(error), str(error)) from None
        return _ImapSession(mailbox, oauth)


def _smtp_session_problem(code: int | None, text: str) -> Problem:
    prefixes = {
        "timeout": Problem.TIMEOUT,
        "starttls_missing": Problem.STARTTLS_MISSING,
        "tls": Problem.TLS_FAILED,
        "unreachable": Problem.CONNECTION_REFUSED,
        "disconnected": Problem.CONNECTION_LOST,
        "no_auth_mechanism": Problem.NO_AUTH_MECHANISM,
    }
    for prefix, problem in prefixes.items():
        if text.startswith(prefix):
            if problem is Problem.TLS_FAILED and "certificate" in text.lower():
                return problem_from_cert_error(None, text)
            return problem
    if code is not None and 400 <= code < 500:
        return Problem.SERVER_BUSY
    return Problem.SERVER_ERROR


async def _read_smtp_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines: list[str] = []
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise ProbeFailure(Problem.SERVER_ERROR, "an over-long reply line") from None
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise ProbeFailure(Problem.SERVER_ERROR, f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] != "-":
            return int(line[:3]), "\n".join(lines)
        if len(lines) > 100:
            raise ProbeFailure(Problem.SERVER_ERROR, "an endless multi-line reply")


def _socket_failure(error: OSError) -> ProbeFailure:
    if isinstance(error, ConnectionRefusedError):
        return ProbeFailure(Problem.CONNECTION_REFUSED, error.strerror or str(error))
    if isinstance(error, TimeoutError):
        return ProbeFailure(Problem.TIMEOUT, str(error))
    if error.errno in {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}:
        return ProbeFailure(Problem.NETWORK_UNREACHABLE, error.strerror or str(error))
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return ProbeFailure(Problem.CONNECTION_LOST, error.strerror or str(error))
    return ProbeFailure(Problem.NETWORK_UNREACHABLE, error.strerror or str(error))


def _certificate_facts(cert: Any) -> tuple[str, str]:
    if not cert:
        return "", ""
    names = [
        str(value) for kind, value in cert.get("subjectAltName", ()) or () if kind in {"DNS", "IP Address"}
    ]
    subject = names[0] if names else ""
    if not subject:
        for rdn in cert.get("subject", ()) or ():
            for key, value in rdn:
                if key == "commonName":
                    subject = str(value)
    return subject, str(cert.get("notAfter", ""))
