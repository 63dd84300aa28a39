""" "Test connection" end to end: the real aiosmtpd submission peer (STARTTLS, trustme certificate) and a
real Dovecot (IMAPS), through NetworkProbe and the real SMTP and IMAP adapters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio
import trustme

from cadence.adapters.connection_probe import NetworkProbe
from cadence.adapters.oauth import OAuthTokenSource, TokenEndpoint
from cadence.core.connection_advice import Problem
from cadence.core.model import AccountSettings, ConnectionSecurity
from cadence.core.oauth import OAuthProvider, resolve_client_config
from cadence.core.ports import SecretKind
from cadence.services.connection_test import (
    ConnectionTestReport,
    Server,
    Step,
    StepResult,
    StepStatus,
    TestCredentials,
    iter_connection_test,
    run_connection_test,
)
from tests.integration.dovecot import DovecotServer, dovecot, free_port
from tests.integration.oauth_server import TokenServer, oauth_server_fixture  # noqa: F401
from tests.integration.smtp_peer import AUTH, Hang, Reply, ScriptedSmtpPeer
from tests.integration.test_oauth_refresh import FakeClock, MemorySecrets

pytestmark = pytest.mark.dovecot

__all__ = ["dovecot"]

SMTP_STEPS = [Step.DNS, Step.TCP, Step.TLS, Step.CERTIFICATE, Step.LOGIN]
IMAP_STEPS = [*SMTP_STEPS, Step.SENT_FOLDER]


@pytest_asyncio.fixture
async def peer(dovecot: DovecotServer) -> AsyncIterator[ScriptedSmtpPeer]:
    """A STARTTLS submission peer sharing Dovecot's CA and user, so one account reaches both."""
    server = ScriptedSmtpPeer(ca=dovecot.ca, mode="starttls", users={dovecot.user: dovecot.password})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def settings_for(peer: ScriptedSmtpPeer, dovecot: DovecotServer, **changes: object) -> AccountSettings:
    base = AccountSettings(
        email=dovecot.user,
        smtp_host="127.0.0.1",
        smtp_port=peer.port,
        smtp_security=ConnectionSecurity.STARTTLS,
        imap_host="127.0.0.1",
        imap_port=dovecot.imaps_port,
        imap_security=ConnectionSecurity.TLS,
        ca_file=str(dovecot.ca_file),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def run(settings: AccountSettings, credentials: TestCredentials, **kw: object) -> ConnectionTestReport:
    return await run_connection_test(settings, credentials=credentials, probe=NetworkProbe(), **kw)  # type: ignore[arg-type]


def assert_human(result: StepResult) -> None:
    assert result.advice is not None
    for machine_words in ("Traceback", "Error(", "errno", "None", "<", "ProbeFailure", "ssl.", "aiosmtplib"):
        assert machine_words not in result.advice.summary + " " + result.advice.action
    assert result.message.startswith(result.advice.summary)
    assert len(result.message) < 900


def statuses(report: ConnectionTestReport, server: Server) -> list[tuple[Step, StepStatus]]:
    return [(s.step, s.status) for s in report.steps if s.server is server]


@pytest.mark.asyncio
async def test_all_green(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    seen: list[StepResult] = []
    report = await run(
        settings_for(peer, dovecot), TestCredentials(password=dovecot.password), on_step=seen.append
    )
    assert report.ok, [s.message for s in report.failures]
    assert statuses(report, Server.SMTP) == [(step, StepStatus.OK) for step in SMTP_STEPS]
    assert statuses(report, Server.IMAP) == [(step, StepStatus.OK) for step in IMAP_STEPS]
    assert list(report.steps) == seen  # reported live, in order
    assert all(step.elapsed_s >= 0 for step in report.steps)
    assert "TLSv1." in report.step(Server.SMTP, Step.TLS).message
    assert "after STARTTLS" in report.step(Server.SMTP, Step.TLS).message
    assert "trusted" in report.step(Server.IMAP, Step.CERTIFICATE).message
    assert "PLAIN" in report.step(Server.SMTP, Step.LOGIN).message
    assert "“Sent”" in report.step(Server.IMAP, Step.SENT_FOLDER).message
    assert [(a.login, a.ok, a.tls) for a in peer.auth_attempts] == [(dovecot.user, True, True)]


@pytest.mark.asyncio
async def test_wrong_password(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    report = await run(settings_for(peer, dovecot), TestCredentials(password="not-the-password"))
    assert statuses(report, Server.SMTP) == [
        *[(step, StepStatus.OK) for step in SMTP_STEPS[:-1]],
        (Step.LOGIN, StepStatus.FAILED),
    ]
    assert statuses(report, Server.IMAP)[-2:] == [
        (Step.LOGIN, StepStatus.FAILED),
        (Step.SENT_FOLDER, StepStatus.SKIPPED),
    ]
    for server in Server:
        failed = report.step(server, Step.LOGIN)
        assert failed.advice is not None and failed.advice.problem is Problem.WRONG_PASSWORD
        assert "did not accept the user name or password" in failed.message
        assert "not-the-password" not in failed.message
        assert_human(failed)


@pytest.mark.asyncio
async def test_wrong_ca_stops_before_any_password_is_sent(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    report = await run(
        settings_for(peer, dovecot, ca_file=str(other_ca)), TestCredentials(password=dovecot.password)
    )
    for server in Server:
        steps = statuses(report, server)
        assert steps[:4] == [
            (Step.DNS, StepStatus.OK),
            (Step.TCP, StepStatus.OK),
            (Step.TLS, StepStatus.OK),
            (Step.CERTIFICATE, StepStatus.FAILED),
        ]
        assert all(status is StepStatus.SKIPPED for _, status in steps[4:])
        failed = report.step(server, Step.CERTIFICATE)
        assert failed.advice is not None and failed.advice.problem is Problem.CERT_UNTRUSTED
        assert "not trusted" in failed.message and "CA certificate" in failed.message
        assert_human(failed)
    assert peer.auth_attempts == []


@pytest.mark.asyncio
async def test_certificate_for_another_name(dovecot: DovecotServer) -> None:
    peer = ScriptedSmtpPeer(ca=dovecot.ca, mode="starttls", cert_hosts=("mail.elsewhere.test",))
    await peer.start()
    try:
        report = await run(
            settings_for(peer, dovecot), TestCredentials(password=dovecot.password), servers=(Server.SMTP,)
        )
    finally:
        await peer.stop()
    failed = report.step(Server.SMTP, Step.CERTIFICATE)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None and failed.advice.problem is Problem.CERT_HOSTNAME_MISMATCH
    assert_human(failed)


@pytest.mark.asyncio
async def test_closed_port_is_refused(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    closed = free_port()
    report = await run(
        settings_for(peer, dovecot, smtp_port=closed, imap_port=free_port()),
        TestCredentials(password=dovecot.password),
    )
    for server in Server:
        steps = statuses(report, server)
        assert steps[:2] == [(Step.DNS, StepStatus.OK), (Step.TCP, StepStatus.FAILED)]
        assert all(status is StepStatus.SKIPPED for _, status in steps[2:])
        failed = report.step(server, Step.TCP)
        assert failed.advice is not None and failed.advice.problem is Problem.CONNECTION_REFUSED
        assert "refused the connection" in failed.message and "port" in failed.message
        assert_human(failed)
    assert f"127.0.0.1:{closed}" in report.step(Server.SMTP, Step.TCP).message


@pytest_asyncio.fixture
async def silent_port() -> AsyncIterator[int]:
    """A server that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await server.wait_closed()


@pytest.mark.asyncio
async def test_a_hanging_server_times_out(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer, silent_port: int
) -> None:
    settings = settings_for(peer, dovecot, smtp_port=silent_port, imap_port=silent_port)
    started = time.monotonic()
    report = await run(settings, TestCredentials(password=dovecot.password), step_timeout_s=0.6)
    took = time.monotonic() - started
    for server in Server:
        steps = statuses(report, server)
        assert steps[:3] == [
            (Step.DNS, StepStatus.OK),
            (Step.TCP, StepStatus.OK),
            (Step.TLS, StepStatus.FAILED),
        ]
        failed = report.step(server, Step.TLS)
        assert failed.advice is not None and failed.advice.problem is Problem.TIMEOUT
        assert "did not answer within 0.6 seconds" in failed.message
        assert 0.5 <= failed.elapsed_s < 3
        assert_human(failed)
    assert took < 8


@pytest.mark.asyncio
async def test_starttls_not_offered(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    peer.offer_starttls = False
    report = await run(
        settings_for(peer, dovecot), TestCredentials(password=dovecot.password), servers=(Server.SMTP,)
    )
    failed = report.step(Server.SMTP, Step.TLS)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None and failed.advice.problem is Problem.STARTTLS_MISSING
    assert "did not offer STARTTLS" in failed.message
    assert report.step(Server.SMTP, Step.LOGIN).status is StepStatus.SKIPPED
    assert peer.auth_attempts == []
    assert_human(failed)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("reply", "problem", "words"),
    [
        (
            "534 5.7.9 Application-specific password required. Learn more at https://support.google.com/",
            Problem.APP_PASSWORD_REQUIRED,
            "app password",
        ),
        (
            "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
            Problem.BASIC_AUTH_DISABLED,
            "Sign in with Microsoft",
        ),
        (
            "550 5.7.30 Basic authentication is not supported for Client Submission.",
            Problem.BASIC_AUTH_DISABLED,
            "OAuth",
        ),
        (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            Problem.SMTP_AUTH_DISABLED,
            "administrator",
        ),
    ],
)
async def test_provider_login_refusals_get_specific_advice(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer, reply: str, problem: Problem, words: str
) -> None:
    peer.on(AUTH, Reply(reply))
    provider = "gmail" if "5.7.9" in reply else "microsoft365"
    report = await run(
        settings_for(peer, dovecot, provider_key=provider),
        TestCredentials(password=dovecot.password),
        servers=(Server.SMTP,),
    )
    failed = report.step(Server.SMTP, Step.LOGIN)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None and failed.advice.problem is problem
    assert words in failed.message
    assert reply.split(" ", 1)[1][:20] in failed.advice.detail  # the server's words are kept as detail
    assert_human(failed)


@pytest.mark.asyncio
async def test_unknown_host_fails_at_dns(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    report = await run(
        settings_for(peer, dovecot, smtp_host="no-such-host.invalid"),
        TestCredentials(password=dovecot.password),
        servers=(Server.SMTP,),
        step_timeout_s=5,
    )
    failed = report.step(Server.SMTP, Step.DNS)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None
    assert failed.advice.problem in {Problem.HOST_NOT_FOUND, Problem.NETWORK_UNREACHABLE, Problem.TIMEOUT}
    assert [s.status for s in report.steps[1:]] == [StepStatus.SKIPPED] * 4
    assert_human(failed)


@pytest.mark.asyncio
async def test_imap_starttls_is_explained_not_attempted(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer
) -> None:
    settings = settings_for(
        peer, dovecot, imap_port=dovecot.imap_port, imap_security=ConnectionSecurity.STARTTLS
    )
    report = await run(settings, TestCredentials(password=dovecot.password), servers=(Server.IMAP,))
    failed = report.step(Server.IMAP, Step.TLS)
    assert failed.advice is not None and failed.advice.problem is Problem.IMAP_STARTTLS_UNSUPPORTED
    assert "993" in failed.message


@pytest.mark.asyncio
async def test_missing_password_is_advice_not_a_crash(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    report = await run(settings_for(peer, dovecot), TestCredentials())
    for server in Server:
        failed = report.step(server, Step.LOGIN)
        assert failed.advice is not None and failed.advice.problem is Problem.MISSING_SECRET
    assert peer.auth_attempts == []


@pytest.mark.asyncio
async def test_oauth_smtp_login_in_the_connection_test(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer, oauth_server: TokenServer, tmp_path: Path
) -> None:
    peer.tokens[dovecot.user] = "at-1"
    store = MemorySecrets()
    store.values[(dovecot.user, SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
    source = OAuthTokenSource(
        account=dovecot.user,
        config=resolve_client_config(
            OAuthProvider.MICROSOFT, environ={"CADENCE_MS_CLIENT_ID": "c"}, token_url=oauth_server.url
        ),
        secrets=store,
        clock=FakeClock(),
        endpoint=TokenEndpoint(ca_file=oauth_server.write_ca_file(tmp_path / "ca.pem")),
    )
    report = await run(
        settings_for(peer, dovecot), TestCredentials(token_provider=source), servers=(Server.SMTP,)
    )
    assert report.ok, [s.message for s in report.failures]
    assert "XOAUTH2" in report.step(Server.SMTP, Step.LOGIN).message

    oauth_server.refresh_tokens = set()
    source.invalidate()
    report = await run(
        settings_for(peer, dovecot), TestCredentials(token_provider=source), servers=(Server.SMTP,)
    )
    failed = report.step(Server.SMTP, Step.LOGIN)
    assert failed.advice is not None and failed.advice.problem is Problem.OAUTH_SIGN_IN_REQUIRED
    assert_human(failed)


@pytest.mark.asyncio
async def test_steps_stream_as_they_finish(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    seen = []
    stream = iter_connection_test(
        settings_for(peer, dovecot),
        credentials=TestCredentials(password=dovecot.password),
        probe=NetworkProbe(),
    )
    async with contextlib.aclosing(stream):
        async for result in stream:
            seen.append((result.server, result.step))
            if result.step is Step.TLS and result.server is Server.SMTP:
                break  # the window may stop listening (dialog closed): nothing is left hanging
    assert seen == [(Server.SMTP, Step.DNS), (Server.SMTP, Step.TCP), (Server.SMTP, Step.TLS)]


@pytest.mark.asyncio
async def test_a_server_that_hangs_at_login_times_out_at_that_step(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer
) -> None:
    peer.on(AUTH, Hang())
    report = await run(
        settings_for(peer, dovecot),
        TestCredentials(password=dovecot.password),
        servers=(Server.SMTP,),
        step_timeout_s=0.8,
    )
    assert statuses(report, Server.SMTP)[-2:] == [
        (Step.CERTIFICATE, StepStatus.OK),
        (Step.LOGIN, StepStatus.FAILED),
    ]
    failed = report.step(Server.SMTP, Step.LOGIN)
    assert failed.advice is not None and failed.advice.problem is Problem.TIMEOUT
    assert failed.elapsed_s < 3
    assert_human(failed)


@pytest.mark.asyncio
async def test_implicit_tls_smtp_all_green(dovecot: DovecotServer) -> None:
    peer = ScriptedSmtpPeer(ca=dovecot.ca, mode="tls", users={dovecot.user: dovecot.password})
    await peer.start()
    try:
        report = await run(
            settings_for(peer, dovecot, smtp_security=ConnectionSecurity.TLS),
            TestCredentials(password=dovecot.password),
            servers=(Server.SMTP,),
        )
    finally:
        await peer.stop()
    assert report.ok, [s.message for s in report.failures]
    assert "from the first byte" in report.step(Server.SMTP, Step.TLS).message


@pytest.mark.asyncio
async def test_starttls_setting_against_an_implicit_tls_port(dovecot: DovecotServer) -> None:
    """A common mix-up (587 settings on port 465): the server speaks TLS, we wait for a greeting."""
    peer = ScriptedSmtpPeer(ca=dovecot.ca, mode="tls", users={dovecot.user: dovecot.password})
    await peer.start()
    try:
        report = await run(
            settings_for(peer, dovecot),
            TestCredentials(password=dovecot.password),
            servers=(Server.SMTP,),
            step_timeout_s=1.0,
        )
    finally:
        await peer.stop()
    failed = report.step(Server.SMTP, Step.TLS)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None and failed.advice.problem is Problem.TIMEOUT
    assert "security setting" in failed.message


@pytest.mark.asyncio
async def test_tls_setting_against_a_starttls_port(peer: ScriptedSmtpPeer, dovecot: DovecotServer) -> None:
    report = await run(
        settings_for(peer, dovecot, smtp_security=ConnectionSecurity.TLS),
        TestCredentials(password=dovecot.password),
        servers=(Server.SMTP,),
        step_timeout_s=3.0,
    )
    failed = report.step(Server.SMTP, Step.TLS)
    assert failed.status is StepStatus.FAILED
    assert failed.advice is not None and failed.advice.problem is Problem.TLS_FAILED
    assert "port 587 uses STARTTLS" in failed.message
    assert_human(failed)


@pytest.mark.asyncio
async def test_oauth_account_on_a_server_without_xoauth2(dovecot: DovecotServer) -> None:
    peer = ScriptedSmtpPeer(ca=dovecot.ca, mode="starttls", auth_mechanisms=("PLAIN", "LOGIN"))
    await peer.start()

    async def token() -> str:
        return "some-token"

    try:
        report = await run(
            settings_for(peer, dovecot), TestCredentials(token_provider=token), servers=(Server.SMTP,)
        )
    finally:
        await peer.stop()
    failed = report.step(Server.SMTP, Step.LOGIN)
    assert failed.advice is not None and failed.advice.problem is Problem.NO_AUTH_MECHANISM
    assert "XOAUTH2" in failed.message
    assert peer.auth_attempts == []


@pytest.mark.asyncio
@pytest.mark.parametrize("content", [None, b"this is not a certificate\n"])
async def test_an_unusable_ca_file_is_named(
    peer: ScriptedSmtpPeer, dovecot: DovecotServer, tmp_path: Path, content: bytes | None
) -> None:
    ca_file = tmp_path / "company-ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    report = await run(
        settings_for(peer, dovecot, ca_file=str(ca_file)), TestCredentials(password=dovecot.password)
    )
    for server in Server:
        failed = report.step(server, Step.TLS)
        assert failed.status is StepStatus.FAILED
        assert failed.advice is not None and failed.advice.problem is Problem.CA_FILE_UNREADABLE, (
            failed.message
        )
        assert "company-ca.pem" in failed.advice.detail
    assert peer.auth_attempts == []
