"""SmtpMailer against a real scripted aiosmtpd peer over TLS: the whole fault matrix."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from cadence.adapters.smtp import SmtpMailer
from cadence.core.compose import ComposeError, OutgoingMessage, compose, new_message_id
from cadence.core.model import AccountSettings, ConnectionSecurity, SendOutcome, SendResult
from cadence.core.smtp_replies import SmtpStage
from tests.integration.smtp_peer import (
    AUTH,
    DATA,
    DATA_BODY,
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    EHLO,
    END_OF_DATA,
    GREETING,
    MAIL,
    RCPT,
    Drop,
    Hang,
    Reply,
    ScriptedSmtpPeer,
    smtp_ca,
    smtp_ca_file,
    smtp_peer,
    smtp_peer_tls,
    threaded_smtp_peer,
)

FIXTURES = (smtp_ca, smtp_ca_file, smtp_peer, smtp_peer_tls, threaded_smtp_peer)  # pytest finds them here
pytestmark = pytest.mark.timeout(60)

Out = SendOutcome
LEAD = "bob@acme.example"


def make_mailer(peer: ScriptedSmtpPeer, ca_file: Path, **overrides: object) -> SmtpMailer:
    options = peer.client_options(ca_file) | {"command_timeout_s": 1.0, "final_reply_timeout_s": 2.0}
    options.update(overrides)
    return SmtpMailer(**options)  # type: ignore[arg-type]


def make_message(
    recipient: str = LEAD, *, subject: str = "Quick question", message_id: str | None = None
) -> bytes:
    return compose(
        OutgoingMessage(
            sender=DEFAULT_USER,
            sender_name="Alice Example",
            recipient=recipient,
            recipient_name="Bob",
            subject=subject,
            text="Hi Bob,\n.\nShort line with a dot above.\n",
            message_id=message_id or new_message_id(DEFAULT_USER),
            date=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
        )
    )


async def send(mailer: SmtpMailer, *recipients: str, message: bytes | None = None) -> SendResult:
    recipients = recipients or (LEAD,)
    return await mailer.send(sender=DEFAULT_USER, recipients=recipients, message=message or make_message())


# --- the happy path ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delivers_over_starttls_with_the_headers_as_received(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    message_id = new_message_id(DEFAULT_USER)
    raw = make_message(message_id=message_id)
    try:
        result = await send(mailer, message=raw)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED
    assert result.code == 250 and result.stage == SmtpStage.DATA_END.value
    [received] = smtp_peer.accepted
    assert received.recipients == (LEAD,)
    assert received.mail_from == DEFAULT_USER
    assert received.login == DEFAULT_USER
    assert received.tls
    assert received.message_id == message_id
    assert received.data == raw  # byte for byte, dot-stuffing undone by the server
    headers = received.headers
    assert headers["List-Unsubscribe"] == f"<mailto:{DEFAULT_USER}?subject=unsubscribe>"
    assert headers["Auto-Submitted"] is None
    assert headers["Precedence"] is None
    # STARTTLS came before AUTH, and nothing after EHLO went in clear
    verbs = smtp_peer.commands
    assert [(verb, tls) for _, verb, tls in verbs[:4]] == [
        ("EHLO", False),
        ("STARTTLS", False),
        ("EHLO", True),
        ("AUTH", True),
    ]
    assert all(tls for _, verb, tls in verbs if verb in {"AUTH", "MAIL", "RCPT", "DATA"})
    assert smtp_peer.verbs()[-1] == "QUIT"


@pytest.mark.asyncio
async def test_delivers_over_implicit_tls(smtp_peer_tls: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    mailer = make_mailer(smtp_peer_tls, smtp_ca_file)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED
    assert smtp_peer_tls.accepted[0].tls
    assert "STARTTLS" not in smtp_peer_tls.verbs()
    assert "TLS established" in result.transcript


def test_threaded_peer_serves_synchronous_tests(
    threaded_smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    async def run() -> SendResult:
        mailer = make_mailer(threaded_smtp_peer, smtp_ca_file)
        try:
            return await send(mailer)
        finally:
            await mailer.close()

    threaded_smtp_peer.on(RCPT, Reply("550 5.1.1 user unknown"), times=1)
    first = asyncio.run(run())
    second = asyncio.run(run())
    assert first.outcome is Out.RECIPIENT_DEAD
    assert second.outcome is Out.DELIVERED
    assert len(threaded_smtp_peer.accepted) == 1


# --- replies at every step -----------------------------------------------------------------------------

REPLY_MATRIX = [
    (
        GREETING,
        Reply("421 4.7.0 Too many connections, try again later", close=True),
        Out.THROTTLED,
        "greeting",
    ),
    (GREETING, Reply("554 No SMTP service here", close=True), Out.POLICY, "greeting"),
    (EHLO, Reply("421 4.7.0 Try again later, closing connection.", close=True), Out.THROTTLED, "ehlo"),
    (AUTH, Reply("454 4.7.0 Too many login attempts, please try again later."), Out.THROTTLED, "auth"),
    (AUTH, Reply("534 5.7.9 Application-specific password required."), Out.AUTH_FAILED, "auth"),
    (
        AUTH,
        Reply("550 5.7.30 Basic authentication is not supported for Client Submission."),
        Out.POLICY,
        "auth",
    ),
    (MAIL, Reply("451 4.3.0 Temporary failure, try again in 120 seconds"), Out.DEFERRED, "mail"),
    (MAIL, Reply("550 5.4.5 Daily user sending limit exceeded."), Out.QUOTA, "mail"),
    (MAIL, Reply("553 5.7.1 Sender address rejected: not owned by user"), Out.POLICY, "mail"),
    (MAIL, Reply("421 4.7.0 [TSS04] Messages temporarily deferred", close=True), Out.THROTTLED, "mail"),
    (
        RCPT,
        Reply("550 5.1.1 The email account that you tried to reach does not exist."),
        Out.RECIPIENT_DEAD,
        "rcpt",
    ),
    (
        RCPT,
        Reply("550 5.2.1 The email account that you tried to reach is disabled."),
        Out.RECIPIENT_DEAD,
        "rcpt",
    ),
    (
        RCPT,
        Reply("552 5.2.2 The email account that you tried to reach is over quota."),
        Out.RECIPIENT_SOFT,
        "rcpt",
    ),
    (
        RCPT,
        Reply("450 4.2.1 The user is receiving mail at a rate that prevents delivery"),
        Out.DEFERRED,
        "rcpt",
    ),
    (RCPT, Reply("421 4.7.0 [TS01] Messages temporarily deferred", close=True), Out.THROTTLED, "rcpt"),
    (RCPT, Reply("554 5.7.1 Client host blocked using Spamhaus"), Out.POLICY, "rcpt"),
    (DATA, Reply("451 4.3.0 Mail server temporarily rejected message."), Out.DEFERRED, "data"),
    (DATA, Reply("554 5.7.1 Message rejected"), Out.POLICY, "data"),
    (
        END_OF_DATA,
        Reply("451 4.7.500 Server busy. Please try again later from [127.0.0.1]."),
        Out.THROTTLED,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("421 4.7.28 Unusual rate of unsolicited mail", close=True),
        Out.THROTTLED,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"),
        Out.THROTTLED,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("451 4.7.651 The mail server has been temporarily rate limited"),
        Out.THROTTLED,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("550 5.7.26 This mail has been blocked because the sender is unauthenticated."),
        Out.POLICY,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("550 5.7.515 Access denied, sending domain doesn't meet the authentication level."),
        Out.POLICY,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("554 5.7.9 [TS03] All messages will be permanently deferred; Retrying will NOT succeed."),
        Out.DO_NOT_RETRY,
        "data_end",
    ),
    (
        END_OF_DATA,
        Reply("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"),
        Out.QUOTA,
        "data_end",
    ),
    (END_OF_DATA, Reply("550 5.2.253 Sending suspended after continuous errors"), Out.QUOTA, "data_end"),
    (END_OF_DATA, Reply("550 5.4.5 Daily user sending limit exceeded."), Out.QUOTA, "data_end"),
    (
        END_OF_DATA,
        Reply("552 5.3.4 Message size exceeds fixed maximum message size"),
        Out.PERMANENT,
        "data_end",
    ),
    (END_OF_DATA, Reply("451 4.3.0 Temporary local problem"), Out.DEFERRED, "data_end"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("stage", "action", "expected", "result_stage"), REPLY_MATRIX, ids=lambda v: str(v)[:40]
)
async def test_reply_matrix(
    smtp_peer: ScriptedSmtpPeer,
    smtp_ca_file: Path,
    stage: str,
    action: Reply,
    expected: SendOutcome,
    result_stage: str,
) -> None:
    smtp_peer.on(stage, action, times=1)
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        result = await send(mailer)
        assert result.outcome is expected, result.transcript
        assert result.code == int(action.text[:3])
        assert result.stage == result_stage
        assert result.text == action.text[4:]
        assert action.text[:3] in result.transcript
        assert not smtp_peer.accepted
        if expected is Out.DEFERRED and "try again in 120" in action.text:
            assert result.retry_after_s == 120
        if expected is not Out.AUTH_FAILED:
            again = await send(mailer)  # the mailer recovers by itself once the server does
            assert again.outcome is Out.DELIVERED, again.transcript
            assert len(smtp_peer.accepted) == 1
    finally:
        await mailer.close()


# --- no reply at all -----------------------------------------------------------------------------------

SILENCE_MATRIX = [
    (GREETING, Hang(), Out.DEFERRED, "connect"),
    (GREETING, Drop(), Out.DEFERRED, "connect"),
    (EHLO, Hang(), Out.DEFERRED, "ehlo"),
    (AUTH, Drop(), Out.DEFERRED, "auth"),
    (MAIL, Hang(), Out.DEFERRED, "mail"),
    (RCPT, Drop(), Out.DEFERRED, "rcpt"),
    (DATA, Drop(), Out.DEFERRED, "data"),  # DATA refused by silence: no content was sent
    (DATA_BODY, Drop(), Out.IN_DOUBT, "data_end"),
    (END_OF_DATA, Drop(), Out.IN_DOUBT, "data_end"),
    (END_OF_DATA, Hang(), Out.IN_DOUBT, "data_end"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("stage", "action", "expected", "result_stage"), SILENCE_MATRIX, ids=str)
async def test_silence_matrix(
    smtp_peer: ScriptedSmtpPeer,
    smtp_ca_file: Path,
    stage: str,
    action: Hang | Drop,
    expected: SendOutcome,
    result_stage: str,
) -> None:
    smtp_peer.on(stage, action, times=1)
    mailer = make_mailer(smtp_peer, smtp_ca_file, command_timeout_s=0.8, final_reply_timeout_s=1.5)
    try:
        started = time.monotonic()
        result = await send(mailer)
        elapsed = time.monotonic() - started
        assert result.outcome is expected, result.transcript
        assert result.code is None
        assert result.stage == result_stage
        assert elapsed < 5.0
        assert not smtp_peer.accepted
        if expected is Out.IN_DOUBT and stage == END_OF_DATA:
            assert (
                len(smtp_peer.received) == 1
            )  # it did arrive: why an in-doubt send must never be retried blindly
        again = await send(mailer)
        assert again.outcome is Out.DELIVERED, again.transcript
    finally:
        await mailer.close()


@pytest.mark.asyncio
async def test_final_reply_has_its_own_long_timeout(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    smtp_peer.on(END_OF_DATA, Reply("250 2.0.0 OK after a long scan", delay_s=2.0))
    mailer = make_mailer(smtp_peer, smtp_ca_file, command_timeout_s=1.0, final_reply_timeout_s=6.0)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED, result.transcript


@pytest.mark.asyncio
async def test_slow_command_reply_times_out_at_the_command_timeout(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    smtp_peer.on(MAIL, Reply("250 2.1.0 OK, eventually", delay_s=2.5), times=1)
    mailer = make_mailer(smtp_peer, smtp_ca_file, command_timeout_s=0.8, final_reply_timeout_s=10.0)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DEFERRED
    assert result.stage == "mail" and result.text.startswith("timeout")


@pytest.mark.asyncio
async def test_nothing_listening_is_deferred(smtp_ca_file: Path, smtp_ca: trustme.CA) -> None:
    peer = ScriptedSmtpPeer(ca=smtp_ca)
    await peer.start()
    port = peer.port
    await peer.stop()  # the port is now closed
    mailer = SmtpMailer(
        host="127.0.0.1", port=port, username=DEFAULT_USER, password="x", ca_file=smtp_ca_file
    )
    result = await send(mailer)
    await mailer.close()
    assert result.outcome is Out.DEFERRED
    assert result.stage == "connect" and result.text.startswith("unreachable")


# --- TLS fails closed ------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_certificate_from_another_ca_fails_closed(
    smtp_ca: trustme.CA, tmp_path: Path, mode: str
) -> None:
    peer = ScriptedSmtpPeer(ca=trustme.CA(), mode=mode)  # type: ignore[arg-type]
    await peer.start()
    ca_file = tmp_path / "ours.pem"
    smtp_ca.cert_pem.write_to_path(str(ca_file))  # we trust a different CA than the one that signed the peer
    mailer = make_mailer(peer, ca_file)
    try:
        result = await send(mailer)
        check = await mailer.verify_login()
    finally:
        await mailer.close()
        await peer.stop()
    assert result.outcome is Out.POLICY
    assert result.stage == ("starttls" if mode == "starttls" else "connect")
    assert "certificate verify failed" in result.text
    assert not check.ok and check.failed_step == result.stage
    assert not peer.auth_attempts
    assert not {"AUTH", "MAIL"} & set(peer.verbs())


@pytest.mark.asyncio
async def test_certificate_for_another_host_fails_closed(smtp_ca: trustme.CA, smtp_ca_file: Path) -> None:
    peer = ScriptedSmtpPeer(ca=smtp_ca, cert_hosts=("mail.other.example",))
    await peer.start()
    mailer = make_mailer(peer, smtp_ca_file)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
        await peer.stop()
    assert result.outcome is Out.POLICY
    assert "certificate" in result.text.lower() or "hostname" in result.text.lower()
    assert not peer.auth_attempts


@pytest.mark.asyncio
async def test_system_trust_alone_does_not_accept_a_private_ca(smtp_peer: ScriptedSmtpPeer) -> None:
    mailer = SmtpMailer(
        host="127.0.0.1", port=smtp_peer.port, username=DEFAULT_USER, password=DEFAULT_PASSWORD
    )
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.POLICY
    assert not smtp_peer.auth_attempts


@pytest.mark.asyncio
async def test_stripped_starttls_fails_closed(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    smtp_peer.offer_starttls = False
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        result = await send(mailer)
        check = await mailer.verify_login()
    finally:
        await mailer.close()
    assert result.outcome is Out.POLICY
    assert result.stage == "starttls"
    assert "STARTTLS" in result.text
    assert not check.ok and check.failed_step == "starttls"
    assert set(smtp_peer.verbs()) <= {"EHLO", "QUIT"}  # never AUTH, never MAIL, never STARTTLS unasked
    assert not smtp_peer.auth_attempts


@pytest.mark.asyncio
async def test_plaintext_only_server_is_refused(smtp_ca: trustme.CA, smtp_ca_file: Path) -> None:
    peer = ScriptedSmtpPeer(ca=smtp_ca, mode="plain")
    await peer.start()
    mailer = make_mailer(peer, smtp_ca_file)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
        await peer.stop()
    assert result.outcome is Out.POLICY and result.stage == "starttls"
    assert "AUTH" not in peer.verbs()


def test_configuration_errors_are_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpMailer(host="h", security="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TLS"):
        SmtpMailer(host="h", security="none", username="u", password="p")
    with pytest.raises(ValueError, match="not both"):
        SmtpMailer(host="h", username="u", password="p", token_provider=lambda: asyncio.sleep(0, "t"))
    with pytest.raises(ValueError, match="CA file"):
        SmtpMailer(host="h", ca_file=tmp_path / "missing.pem")
    assert SmtpMailer(host="h").port == 587
    assert SmtpMailer(host="h", security="tls").port == 465


# --- login -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_wrong_password_fails_once_without_a_retry_storm(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file, password="wrong-password-123")
    try:
        results = [await send(mailer) for _ in range(5)]
        assert all(r.outcome is Out.AUTH_FAILED for r in results)
        assert results[0].code == 535
        assert len(smtp_peer.auth_attempts) == 1  # one mechanism, one try, then no more logins
        assert smtp_peer.auth_attempts[0].mechanism == "PLAIN" and not smtp_peer.auth_attempts[0].ok
        assert smtp_peer.connections == 1
        check = await mailer.verify_login()  # the explicit connection test does try again
        assert not check.ok and check.failed_step == "auth" and check.outcome is Out.AUTH_FAILED
        assert len(smtp_peer.auth_attempts) == 2
        for transcript in [r.transcript for r in results] + [check.transcript]:
            assert "wrong-password-123" not in transcript
            assert base64.b64encode(b"wrong-password-123").decode() not in transcript
    finally:
        await mailer.close()


@pytest.mark.asyncio
async def test_clearing_the_auth_failure_allows_a_new_attempt(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    smtp_peer.on(AUTH, Reply("535 5.7.8 Username and Password not accepted."), times=1)
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        assert (await send(mailer)).outcome is Out.AUTH_FAILED
        assert (await send(mailer)).outcome is Out.AUTH_FAILED  # latched: no network
        assert smtp_peer.connections == 1
        mailer.clear_auth_failure()
        assert (await send(mailer)).outcome is Out.DELIVERED
    finally:
        await mailer.close()


@pytest.mark.asyncio
async def test_auth_login_mechanism_and_redaction(smtp_ca: trustme.CA, smtp_ca_file: Path) -> None:
    peer = ScriptedSmtpPeer(ca=smtp_ca, auth_mechanisms=("LOGIN",))
    await peer.start()
    mailer = make_mailer(peer, smtp_ca_file)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
        await peer.stop()
    assert result.outcome is Out.DELIVERED
    assert [a.mechanism for a in peer.auth_attempts] == ["LOGIN"]
    assert "AUTH LOGIN <redacted>" in result.transcript
    assert DEFAULT_PASSWORD not in result.transcript
    assert base64.b64encode(DEFAULT_PASSWORD.encode()).decode() not in result.transcript


@pytest.mark.asyncio
async def test_transcript_has_the_dialogue_but_no_password(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    plain_blob = base64.b64encode(f"\0{DEFAULT_USER}\0{DEFAULT_PASSWORD}".encode()).decode()
    for secret in (DEFAULT_PASSWORD, plain_blob, base64.b64encode(DEFAULT_PASSWORD.encode()).decode()):
        assert secret not in result.transcript
        assert secret not in mailer.last_transcript
    for expected in (
        "S: 220",
        "C: STARTTLS",
        "C: AUTH PLAIN <redacted>",
        "S: 235",
        "C: MAIL FROM:<",
        "S: 354",
    ):
        assert expected in result.transcript
    assert "Message-ID <cad-" in result.transcript


@pytest.mark.asyncio
async def test_xoauth2_exchange(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        return DEFAULT_TOKEN

    mailer = make_mailer(smtp_peer, smtp_ca_file, password=None, token_provider=token)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED, result.transcript
    [attempt] = smtp_peer.auth_attempts
    assert (attempt.mechanism, attempt.login, attempt.secret, attempt.ok, attempt.tls) == (
        "XOAUTH2",
        DEFAULT_USER,
        DEFAULT_TOKEN,
        True,
        True,
    )
    assert calls == 1
    assert DEFAULT_TOKEN not in result.transcript
    assert smtp_peer.accepted[0].login == DEFAULT_USER


@pytest.mark.asyncio
async def test_xoauth2_rejected_token(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    async def token() -> str:
        return "expired-token-xyz"

    mailer = make_mailer(smtp_peer, smtp_ca_file, password=None, token_provider=token)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.AUTH_FAILED and result.code == 535
    assert smtp_peer.xoauth2_error_answers == [b""]  # the JSON error challenge, answered with an empty line
    assert "expired-token-xyz" not in result.transcript
    assert smtp_peer.auth_attempts[0].secret == "expired-token-xyz"


@pytest.mark.asyncio
async def test_token_provider_failure_is_reported(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    async def token() -> str:
        raise RuntimeError("refresh token revoked")

    mailer = make_mailer(smtp_peer, smtp_ca_file, password=None, token_provider=token)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.AUTH_FAILED
    assert "refresh token revoked" in result.text
    assert not smtp_peer.auth_attempts


@pytest.mark.asyncio
async def test_verify_login_reports_success_and_the_failing_step(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        check = await mailer.verify_login()
        assert check.ok and check.tls_version and check.auth_mechanism == "PLAIN"
        assert not mailer.connected and smtp_peer.verbs()[-1] == "QUIT"
        smtp_peer.on(EHLO, Reply("421 4.7.0 closing", close=True), times=1)
        failed = await mailer.verify_login()
        assert not failed.ok and failed.failed_step == "ehlo" and failed.outcome is Out.THROTTLED
        assert failed.code == 421
    finally:
        await mailer.close()
    assert not smtp_peer.accepted


# --- connections -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_twenty_messages_per_connection_then_a_new_one(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        results = [await send(mailer, message=make_message(subject=f"n{i}")) for i in range(25)]
    finally:
        await mailer.close()
    assert all(r.outcome is Out.DELIVERED for r in results)
    assert [m.connection for m in smtp_peer.accepted] == [1] * 20 + [2] * 5
    assert smtp_peer.connections == 2
    assert len(smtp_peer.auth_attempts) == 2
    assert smtp_peer.verbs(connection=1)[-1] == "QUIT"
    assert "C: QUIT" in results[19].transcript


@pytest.mark.asyncio
async def test_concurrent_sends_share_one_connection(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        results = await asyncio.gather(
            *(send(mailer, message=make_message(subject=f"c{i}")) for i in range(6))
        )
    finally:
        await mailer.close()
    assert [r.outcome for r in results] == [Out.DELIVERED] * 6
    assert smtp_peer.connections == 1
    assert len(smtp_peer.accepted) == 6


@pytest.mark.asyncio
async def test_idle_connection_is_closed(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file, idle_close_s=0.3)
    try:
        assert (await send(mailer)).outcome is Out.DELIVERED
        assert mailer.connected
        await asyncio.sleep(0.8)
        assert not mailer.connected
        assert smtp_peer.verbs(connection=1)[-1] == "QUIT"
        assert (await send(mailer)).outcome is Out.DELIVERED
        assert smtp_peer.connections == 2
    finally:
        await mailer.close()


@pytest.mark.asyncio
async def test_connection_dropped_while_idle_is_replaced_transparently(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        assert (await send(mailer)).outcome is Out.DELIVERED
        smtp_peer.drop_connections()
        await asyncio.sleep(0.05)
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED, result.transcript
    assert [m.connection for m in smtp_peer.accepted] == [1, 2]


@pytest.mark.asyncio
async def test_reused_connection_lost_at_mail_is_retried_once_on_a_new_one(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        assert (await send(mailer)).outcome is Out.DELIVERED
        smtp_peer.on(MAIL, Drop(), times=1)  # nothing of the message was sent: safe to go again
        result = await send(mailer)
        smtp_peer.on(MAIL, Drop(), times=2)  # but only once
        failed = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED, result.transcript
    assert "reconnecting" in result.transcript
    assert [m.connection for m in smtp_peer.accepted] == [1, 2]
    assert smtp_peer.connections == 3
    assert failed.outcome is Out.DEFERRED and failed.stage == "mail"


@pytest.mark.asyncio
async def test_unreadable_ca_file_fails_closed_before_connecting(
    smtp_peer_tls: ScriptedSmtpPeer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    mailer = make_mailer(smtp_peer_tls, bad)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.POLICY
    assert "could not be loaded" in result.text
    assert smtp_peer_tls.connections == 0


@pytest.mark.asyncio
async def test_cancelling_a_send_closes_the_connection(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    smtp_peer.on(END_OF_DATA, Hang(), times=1)
    mailer = make_mailer(smtp_peer, smtp_ca_file, final_reply_timeout_s=30.0)
    try:
        task = asyncio.create_task(send(mailer))
        while not smtp_peer.received:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not mailer.connected
        assert (await send(mailer)).outcome is Out.DELIVERED
    finally:
        await mailer.close()


# --- recipients ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_partial_recipient_refusal(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    smtp_peer.reply_to_recipient("gone@acme.example", Reply("550 5.1.1 user unknown"))
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        result = await send(mailer, LEAD, "gone@acme.example")
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED
    [refusal] = result.refused
    assert (refusal.address, refusal.outcome, refusal.code, refusal.enhanced_status) == (
        "gone@acme.example",
        Out.RECIPIENT_DEAD,
        550,
        "5.1.1",
    )
    assert smtp_peer.accepted[0].recipients == (LEAD,)


@pytest.mark.asyncio
async def test_all_recipients_refused(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    smtp_peer.on(RCPT, Reply("550 5.1.1 user unknown"))
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        result = await send(mailer, LEAD, "other@acme.example")
        smtp_peer.clear_script()
        after = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.RECIPIENT_DEAD and result.stage == "rcpt"
    assert "DATA" not in smtp_peer.verbs()[: smtp_peer.verbs().index("RSET")]
    assert after.outcome is Out.DELIVERED  # the RSET left the session usable
    assert smtp_peer.connections == 1


# --- refusals before any network I/O ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_header_injection_is_refused_before_any_network_io(
    smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path
) -> None:
    with pytest.raises(ComposeError):
        make_message(subject="Hello\r\nBcc: everyone@victim.example")
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        for recipients in (("bob@acme.example\r\nRCPT TO:<x@y.example>",), ("<bob@acme.example>",), ()):
            result = await mailer.send(sender=DEFAULT_USER, recipients=recipients, message=make_message())
            assert result.outcome is Out.PERMANENT
        result = await mailer.send(sender="a@b.example\r\nRSET", recipients=(LEAD,), message=make_message())
        assert result.outcome is Out.PERMANENT
    finally:
        await mailer.close()
    assert smtp_peer.connections == 0


@pytest.mark.asyncio
async def test_built_from_account_settings(smtp_peer_tls: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    settings = AccountSettings(
        email=DEFAULT_USER,
        smtp_host="127.0.0.1",
        smtp_port=smtp_peer_tls.port,
        smtp_security=ConnectionSecurity.TLS,
        ca_file=str(smtp_ca_file),
    )
    mailer = SmtpMailer.from_settings(settings, password=DEFAULT_PASSWORD, command_timeout_s=5.0)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.DELIVERED
    assert smtp_peer_tls.auth_attempts[0].login == DEFAULT_USER
    with pytest.raises(ValueError, match="TLS"):
        SmtpMailer.from_settings(
            AccountSettings(email=DEFAULT_USER, smtp_host="h", smtp_security=ConnectionSecurity.NONE),
            password="p",
        )


@pytest.mark.asyncio
async def test_plain_local_relay_without_login(smtp_ca: trustme.CA) -> None:
    peer = ScriptedSmtpPeer(ca=smtp_ca, mode="plain", require_auth=False)
    await peer.start()
    mailer = SmtpMailer(host="127.0.0.1", port=peer.port, security="none", command_timeout_s=5.0)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
        await peer.stop()
    assert result.outcome is Out.DELIVERED
    assert "AUTH" not in peer.verbs() and "STARTTLS" not in peer.verbs()
    assert peer.accepted[0].login is None and not peer.accepted[0].tls


@pytest.mark.asyncio
async def test_multi_line_provider_reply(smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> None:
    smtp_peer.on(
        END_OF_DATA,
        Reply(
            "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\n"
            "550-5.4.5 sending limits go to\n"
            "550 5.4.5  https://support.google.com/a/answer/166852 a1-20020a05 - gsmtp"
        ),
        times=1,
    )
    mailer = make_mailer(smtp_peer, smtp_ca_file)
    try:
        result = await send(mailer)
    finally:
        await mailer.close()
    assert result.outcome is Out.QUOTA and result.enhanced_status == "5.4.5"
    assert result.text.count("\n") == 2
    assert "S: 550-5.4.5 sending limits go to" in result.transcript
