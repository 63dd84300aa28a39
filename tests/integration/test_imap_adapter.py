"""The IMAP adapter against a real Dovecot (and its pure parsing helpers)."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from cadence.adapters.imap import (
    ImapAccount,
    ImapConnector,
    ImapMailbox,
    LiteralChunks,
    choose_folders,
    decode_modified_utf7,
    parse_fetch_bodies,
    parse_list,
    uid_set,
)
from cadence.core.ports import MailboxError, MailboxErrorKind
from tests.integration.dovecot import DovecotServer, FlakyProxy, free_port, running_dovecot

pytestmark = pytest.mark.dovecot


@pytest.fixture
def server() -> Iterator[DovecotServer]:
    with running_dovecot() as started:
        yield started


def mail(subject: str, *, message_id: str | None = None, body: str = "hello") -> bytes:
    headers = [f"Subject: {subject}", "From: Pat <pat@prospect.test>", "To: seller@seller.test"]
    if message_id:
        headers.append(f"Message-ID: {message_id}")
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


def account(server: DovecotServer, **changes: object) -> ImapAccount:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.imaps_port,
        "username": server.user,
        "ca_file": str(server.ca_file),
        "timeout_s": 10.0,
    }
    values.update(changes)
    return ImapAccount(**values)  # type: ignore[arg-type]


async def connect(server: DovecotServer, **changes: object) -> ImapMailbox:
    return await ImapMailbox.connect(account(server, **changes), secret=server.password)


# --- pure helpers -----------------------------------------------------------------------------------------


def test_uid_set_compacts_runs() -> None:
    assert uid_set([9, 1, 2, 3, 7, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"


def test_modified_utf7_names_are_decoded() -> None:
    assert decode_modified_utf7("Envoy&AOk-s") == "Envoyés"
    assert decode_modified_utf7("Wys&AUI-ane") == "Wysłane"
    assert decode_modified_utf7("A&-B") == "A&B"


def test_localized_folders_are_found_without_special_use() -> None:
    lines: list[bytes | bytearray] = [
        b'() "." INBOX',
        b'(\\HasNoChildren) "." "INBOX.Envoy&AOk-s"',
        b'(\\HasNoChildren) "." {4}',
        bytearray(b"Spam"),
        b'(\\Noselect \\HasChildren) "." "[Gmail]"',
        b"List completed.",
    ]
    folders = parse_list(lines)
    assert [f.name for f in folders] == ["INBOX", "INBOX.Envoy&AOk-s", "Spam", "[Gmail]"]
    chosen = choose_folders(folders)
    assert chosen.sent == "INBOX.Envoy&AOk-s"  # the wire name, not the decoded one
    assert chosen.junk == "Spam"


def test_special_use_wins_over_names() -> None:
    lines: list[bytes | bytearray] = [
        b'(\\HasNoChildren) "/" "Sent"',
        b'(\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"',
        b'(\\HasNoChildren \\Junk) "/" "[Gmail]/Spam"',
        b"done",
    ]
    chosen = choose_folders(parse_list(lines))
    assert (chosen.sent, chosen.junk) == ("[Gmail]/Sent Mail", "[Gmail]/Spam")


def test_fetch_parser_takes_uid_before_or_after_the_literal_and_skips_flag_updates() -> None:
    lines: list[bytes | bytearray | LiteralChunks] = [
        b"1 FETCH (UID 4 BODY[] {5}",
        bytearray(b"AAAAA"),
        b")",
        b"2 FETCH (FLAGS (\\Seen))",
        b"3 FETCH (BODY[] {3}",
        LiteralChunks([b"BB", b"B"]),
        b" UID 9)",
        b"Fetch completed.",
    ]
    assert [(m.uid, m.raw) for m in parse_fetch_bodies(lines)] == [(4, b"AAAAA"), (9, b"BBB")]


# --- against Dovecot --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_folders_by_special_use(server: DovecotServer) -> None:
    mailbox = await connect(server)
    try:
        folders = await mailbox.folders()
    finally:
        await mailbox.close()
    assert (folders.inbox, folders.sent, folders.junk) == ("INBOX", "Sent", "Junk")


@pytest.mark.asyncio
async def test_fetch_reads_everything_and_marks_nothing(server: DovecotServer) -> None:
    raws = [mail(f"m{i}", message_id=f"<m{i}@prospect.test>") for i in range(3)]
    uids = server.append_many("INBOX", raws)
    mailbox = await connect(server)
    try:
        status = await mailbox.examine("INBOX")
        assert status.uidvalidity == server.uidvalidity("INBOX")
        assert status.exists == 3 and status.uidnext == uids[-1] + 1
        assert await mailbox.uids_after(0) == uids
        assert await mailbox.uids_after(uids[0]) == uids[1:]
        assert await mailbox.uids_after(uids[-1]) == []  # "n:*" would return the last UID: filtered
        sizes = await mailbox.sizes(uids)
        assert sizes == {uid: len(raw) for uid, raw in zip(uids, raws, strict=True)}
        fetched = await mailbox.fetch(uids)
    finally:
        await mailbox.close()
    assert [(m.uid, m.raw) for m in fetched] == list(zip(uids, raws, strict=True))
    flags = server.flags("INBOX")
    assert set(flags) == set(uids)
    assert all("\\Seen" not in f and "\\Deleted" not in f for f in flags.values())


@pytest.mark.asyncio
async def test_message_id_search_finds_and_misses(server: DovecotServer) -> None:
    server.append("Sent", mail("sent one", message_id="<abc.123@seller.test>"), seen=True)
    server.append("Sent", mail("sent two", message_id="<xabc.123@seller.test>"), seen=True)
    mailbox = await connect(server)
    try:
        assert await mailbox.find_message_id("Sent", "<abc.123@seller.test>") == [1]
        assert await mailbox.find_message_id("Sent", "<never@seller.test>") == []
        with pytest.raises(MailboxError) as caught:
            await mailbox.find_message_id("Sent", "<a@b>\r\nA1 DELETE INBOX")
        assert caught.value.kind is MailboxErrorKind.BAD_INPUT
        assert await mailbox.find_message_id("Sent", "<xabc.123@seller.test>") == [2]  # still usable
    finally:
        await mailbox.close()


@pytest.mark.asyncio
async def test_append_to_sent(server: DovecotServer) -> None:
    raw = mail("my cold email", message_id="<out-1@seller.test>")
    mailbox = await connect(server)
    try:
        uid = await mailbox.append("Sent", raw)
        assert uid is not None
        assert await mailbox.find_message_id("Sent", "<out-1@seller.test>") == [uid]
        assert [m.raw for m in await mailbox.fetch([uid])] == [raw]
    finally:
        await mailbox.close()
    assert "\\Seen" in server.flags("Sent")[uid]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_twenty_megabyte_message(server: DovecotServer) -> None:
    body = ("x" * 76 + "\r\n") * (20 * 1024 * 1024 // 78)
    raw = mail("big", message_id="<big@prospect.test>", body=body)
    assert len(raw) > 20_000_000
    uid = await asyncio.to_thread(server.append, "INBOX", raw)
    mailbox = await connect(server)
    try:
        await mailbox.examine("INBOX")
        size = (await mailbox.sizes([uid]))[uid]
        fetched = await mailbox.fetch([uid], expected_bytes=size)
    finally:
        await mailbox.close()
    assert len(fetched) == 1 and fetched[0].raw == raw


@pytest.mark.asyncio
async def test_idle_sees_new_mail_and_can_be_woken(server: DovecotServer) -> None:
    mailbox = await connect(server)
    try:
        assert mailbox.supports_idle
        await mailbox.examine("INBOX")

        async def deliver_later() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.append, "INBOX", mail("pushed"))

        delivery = asyncio.create_task(deliver_later())
        started = time.monotonic()
        assert await mailbox.wait_for_change(max_wait_s=20, wake=asyncio.Event()) is True
        assert time.monotonic() - started < 10
        await delivery
        assert await mailbox.uids_after(0) == [1]

        wake = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, wake.set)
        started = time.monotonic()
        assert await mailbox.wait_for_change(max_wait_s=20, wake=wake) is False
        assert time.monotonic() - started < 5
        assert await mailbox.uids_after(1) == []  # the connection is still usable after DONE
    finally:
        await mailbox.close()


@pytest.mark.asyncio
async def test_wrong_password_is_a_human_error_and_no_penalty_follows(server: DovecotServer) -> None:
    with pytest.raises(MailboxError) as caught:
        await ImapMailbox.connect(account(server), secret="not-the-password")
    error = caught.value
    assert error.kind is MailboxErrorKind.AUTH_FAILED and error.needs_user
    assert server.user in str(error) and "password" in str(error)
    assert "not-the-password" not in str(error)
    started = time.monotonic()
    mailbox = await connect(server)  # the anvil auth penalty is off in the fixture
    await mailbox.close()
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_missing_secret_is_reported_before_connecting(server: DovecotServer) -> None:
    async def no_secret() -> str | None:
        return None

    with pytest.raises(MailboxError) as caught:
        await ImapConnector(account(server), secret=no_secret)()
    assert caught.value.kind is MailboxErrorKind.AUTH_FAILED


@pytest.mark.asyncio
async def test_untrusted_certificate_fails_closed(server: DovecotServer, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    for changes in ({"ca_file": str(other_ca)}, {"ca_file": None}):
        with pytest.raises(MailboxError) as caught:
            await connect(server, **changes)
        assert caught.value.kind is MailboxErrorKind.TLS_UNTRUSTED
        assert "not trusted" in str(caught.value)
    assert "Login: user=<" not in server.log_tail(200)


@pytest.mark.asyncio
async def test_certificate_for_another_host_fails_closed(server: DovecotServer) -> None:
    # the same Dovecot reached as 127.0.0.2, an address its certificate does not name
    proxy = await FlakyProxy(server.imaps_port, listen_host="127.0.0.2").start()
    try:
        with pytest.raises(MailboxError) as caught:
            await connect(server, host="127.0.0.2", port=proxy.port)
        assert caught.value.kind is MailboxErrorKind.TLS_UNTRUSTED
        assert "127.0.0.2" in str(caught.value)
        assert proxy.connections == 1  # it did reach the server: the refusal is the certificate check
    finally:
        await proxy.close()


@pytest.mark.asyncio
async def test_plaintext_port_is_never_used_without_tls(server: DovecotServer) -> None:
    with pytest.raises(MailboxError) as caught:
        await connect(server, port=server.imap_port)
    assert caught.value.kind is MailboxErrorKind.TLS_FAILED
    assert "Login: user=<" not in server.log_tail(200)


@pytest.mark.asyncio
async def test_server_refuses_plaintext_login_from_a_non_local_address(server: DovecotServer) -> None:
    """Dovecot counts 127.0.0.1 → 127.0.0.1 as secure; from 127.0.0.2 it must insist on TLS."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.imap_port, local_addr=("127.0.0.2", 0))
    try:
        greeting = await asyncio.wait_for(reader.readline(), 5)
        assert b"LOGINDISABLED" in greeting
        writer.write(f'a1 LOGIN "{server.user}" "{server.password}"\r\n'.encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 5)
        while answer.startswith(b"* "):
            answer = await asyncio.wait_for(reader.readline(), 5)
        assert answer.startswith((b"a1 NO", b"a1 BAD")), answer
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_connection_refused_is_reported() -> None:
    port = free_port()
    with pytest.raises(MailboxError) as caught:
        await ImapMailbox.connect(
            ImapAccount(host="127.0.0.1", port=port, username="x", timeout_s=5), secret="y"
        )
    assert caught.value.kind is MailboxErrorKind.CONNECTION_REFUSED
    assert str(port) in str(caught.value)


@pytest.mark.asyncio
async def test_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept TCP, never speak TLS
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(MailboxError) as caught:
            await ImapMailbox.connect(
                ImapAccount(host="127.0.0.1", port=port, username="x", timeout_s=0.5), secret="y"
            )
        assert caught.value.kind is MailboxErrorKind.TIMEOUT
        assert time.monotonic() - started < 3
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_stalled_fetch_times_out_and_the_connection_is_abandoned(server: DovecotServer) -> None:
    raw = mail("large", body="y" * 400_000)
    uid = server.append("INBOX", raw)
    proxy = await FlakyProxy(server.imaps_port, plans=[("stall", 100_000)]).start()
    try:
        mailbox = await connect(server, port=proxy.port, timeout_s=1.0)
        await mailbox.examine("INBOX")
        started = time.monotonic()
        with pytest.raises(MailboxError) as caught:
            await mailbox.fetch([uid])
        assert caught.value.kind is MailboxErrorKind.TIMEOUT
        assert time.monotonic() - started < 5
        assert mailbox.broken
        with pytest.raises(MailboxError):
            await mailbox.uids_after(0)  # abandoned: no command goes out on it any more
        await mailbox.close()
        again = await connect(server, port=proxy.port)  # a fresh connection works
        await again.examine("INBOX")
        assert [m.raw for m in await again.fetch([uid])] == [raw]
        await again.close()
    finally:
        await proxy.close()


@pytest.mark.asyncio
async def test_dropped_connection_mid_fetch_is_connection_lost(server: DovecotServer) -> None:
    uid = server.append("INBOX", mail("large", body="z" * 400_000))
    proxy = await FlakyProxy(server.imaps_port, plans=[("cut", 100_000)]).start()
    try:
        mailbox = await connect(server, port=proxy.port)
        await mailbox.examine("INBOX")
        started = time.monotonic()
        with pytest.raises(MailboxError) as caught:
            await mailbox.fetch([uid])
        assert caught.value.kind is MailboxErrorKind.CONNECTION_LOST
        assert time.monotonic() - started < 3  # noticed at once, not after the timeout
        await mailbox.close()
    finally:
        await proxy.close()


class XOAuth2Peer:
    """A scripted IMAPS peer for XOAUTH2 (Dovecot would need an OAuth2 introspection server): accepts one
    token; for any other it sends the JSON error challenge and waits for the client's empty line."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ca = ca
        self.decoded: list[str] = []
        self.empty_line_answers = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=context)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n")
        try:
            while line := await reader.readline():
                tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
                words = rest.split(" ")
                verb = words[0].upper()
                if verb == "CAPABILITY":
                    writer.write(f"* CAPABILITY IMAP4rev1 SASL-IR IDLE\r\n{tag} OK done\r\n".encode())
                elif verb == "AUTHENTICATE" and words[1:2] == ["XOAUTH2"]:
                    decoded = base64.b64decode(words[2]).decode()
                    self.decoded.append(decoded)
                    if decoded == "user=u@x.test\x01auth=Bearer good-token\x01\x01":
                        writer.write(f"{tag} OK authenticated\r\n".encode())
                    else:
                        writer.write(
                            b"+ " + base64.b64encode(b'{"status":"401","schemes":"bearer"}') + b"\r\n"
                        )
                        await writer.drain()
                        if await reader.readline() == b"\r\n":
                            self.empty_line_answers += 1
                        writer.write(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n".encode())
                elif verb == "LOGOUT":
                    writer.write(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                    await writer.drain()
                    break
                else:
                    writer.write(f"{tag} BAD unknown\r\n".encode())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.mark.asyncio
async def test_xoauth2_login_and_a_refused_token(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    peer = XOAuth2Peer(ca)
    port = await peer.start()
    oauth = ImapAccount(host="127.0.0.1", port=port, username="u@x.test", ca_file=str(ca_file), oauth2=True)
    try:
        mailbox = await ImapMailbox.connect(oauth, secret="good-token")
        assert mailbox.supports_idle  # capabilities were read again after the login
        await mailbox.close()

        started = time.monotonic()
        with pytest.raises(MailboxError) as caught:
            await ImapMailbox.connect(oauth, secret="expired-token")
        assert caught.value.kind is MailboxErrorKind.AUTH_FAILED
        assert "expired-token" not in str(caught.value)
        assert time.monotonic() - started < oauth.timeout_s / 2  # answered, not timed out
        assert peer.empty_line_answers == 1
        assert peer.decoded[0] == "user=u@x.test\x01auth=Bearer good-token\x01\x01"
    finally:
        await peer.close()


def test_fixture_offers_lmtp_delivery_for_end_to_end_tests() -> None:
    with running_dovecot(lmtp=True) as server:
        assert server.lmtp_port is not None
        with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=10) as lmtp:
            refused = lmtp.sendmail("bounce@mail.test", [server.user], mail("via lmtp", message_id="<l@x>"))
        assert refused == {}
        assert server.auth_socket.exists()
        with server.client() as conn:
            conn.select("INBOX", readonly=True)
            typ, data = conn.search(None, "SUBJECT", '"via lmtp"')
            assert typ == "OK" and data[0] == b"1"
