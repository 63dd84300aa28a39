"""Zero hits: after a full session with real components, no password is anywhere on disk but the keyring.

In process: the account's SMTP and IMAP passwords (long random markers) go into the real Secret Service
(gnome-keyring) through KeyringSecretStore; AccountSetupService runs the connection test with them (and with
a typed, wrong third password); the real SmtpMailer sends a claimed outbox message to the scripted aiosmtpd
peer and the transcript is recorded in SQLite as the scheduler does; the real IMAP adapter reads INBOX from
a real Dovecot. Logging runs at DEBUG (aiosmtplib and aioimaplib included) into a file with the
SecretRedactingFilter installed. Then every file of the data and log directories, the SQLite file and its
-wal/-shm included, is read as bytes and searched for each password: plain, URL-encoded, base64, and the
base64 AUTH PLAIN string. Through the CLI the same check runs on `cadence account add --password-stdin` +
`cadence run --once` in subprocesses.

Run by hand inside a keyring session (tests/run.sh does this):
  dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1;
    QT_QPA_PLATFORM=offscreen .venv/bin/pytest tests/integration/test_secrets_zero_hit.py -q'
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme

from cadence import APP_ID
from cadence.adapters.connection_probe import NetworkProbe
from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.imap import ImapAccount, ImapMailbox
from cadence.adapters.secrets import KeyringSecretStore, SecretRedactingFilter
from cadence.adapters.smtp import SmtpMailer
from cadence.app import setup_logging
from cadence.core import views as v
from cadence.core.model import (
    AccountSettings,
    Claim,
    ClaimDecision,
    ConnectionSecurity,
    Guardrails,
    Lead,
    MessageState,
    NewDraft,
    PacingSnapshot,
    SendCandidate,
    SendOutcome,
    SendPick,
    Step,
)
from cadence.core.ports import SecretKind
from cadence.services.accounts import AccountSetupService
from cadence.services.dbworker import DbWorker
from tests.integration.cli_harness import (
    PERMISSIVE,
    keyring_session,
    peer_process,
    run_cadence,
    write_campaign_files,
)
from tests.integration.dovecot import DOVECOT, DovecotServer, free_port
from tests.integration.smtp_peer import ScriptedSmtpPeer

pytestmark = [pytest.mark.keyring, pytest.mark.dovecot]

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def password_marker(tag: str) -> str:
    """Long, random, and with characters that URL encoding changes ("/", "+", "=", "!")."""
    return f"Zh{tag}!{secrets.token_hex(24)}/+={secrets.token_urlsafe(18)}"


def leak_forms(secret: str, *, user: str) -> dict[str, bytes]:
    raw = secret.encode("utf-8")
    forms = {
        "plain": raw,
        "url": urllib.parse.quote(secret, safe="").encode("ascii"),
        "url_plus": urllib.parse.quote_plus(secret).encode("ascii"),
        "base64": base64.b64encode(raw),
        "base64_unpadded": base64.b64encode(raw).rstrip(b"="),
        "auth_plain": base64.b64encode(b"\0" + user.encode() + b"\0" + raw),
        "auth_plain_authzid": base64.b64encode(user.encode() + b"\0" + user.encode() + b"\0" + raw),
    }
    return forms


def all_files(folders: Iterable[Path]) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*") if path.is_file())


def hits(folders: Iterable[Path], markers: dict[str, str], *, user: str) -> list[str]:
    found = []
    for path in all_files(folders):
        content = path.read_bytes()
        for name, secret in markers.items():
            for form, needle in leak_forms(secret, user=user).items():
                if needle in content:
                    found.append(f"{path.name}: {name} ({form})")
    return found


def test_the_scanner_finds_every_form_it_looks_for(tmp_path: Path) -> None:
    marker = password_marker("selfcheck")
    for form, needle in leak_forms(marker, user="u@example.test").items():
        folder = tmp_path / form
        folder.mkdir()
        (folder / "blob.bin").write_bytes(b"\x00prefix " + needle + b" suffix\xff")
        assert f"blob.bin: m ({form})" in hits([folder], {"m": marker}, user="u@example.test")
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "blob.bin").write_bytes(b"nothing secret here")
    assert hits([clean], {"m": marker}, user="u@example.test") == []


# --- in process ----------------------------------------------------------------------------------------


@pytest.fixture
def secret_service() -> object:
    try:
        from keyring.backends import SecretService

        assert SecretService.Keyring.priority > 0
    except Exception as error:
        pytest.skip(
            f"no Secret Service reachable ({error}); run inside dbus-run-session with "
            "gnome-keyring-daemon --unlock --components=secrets (tests/run.sh does this)"
        )
    return SecretService.Keyring()


@pytest.fixture
def keyring_service(secret_service: object) -> Iterator[str]:
    name = f"{APP_ID}.zero-hit-{uuid.uuid4().hex[:8]}"
    yield name
    collection = secret_service.get_preferred_collection()  # type: ignore[attr-defined]
    for item in collection.search_items({"service": name}):
        item.delete()


@contextlib.contextmanager
def dovecot_with_password(user: str, password: str) -> Iterator[DovecotServer]:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="cadence-dovecot-"))
    root.chmod(0o755)
    server = DovecotServer(
        root=root,
        ca=trustme.CA(),
        imaps_port=free_port(),
        imap_port=free_port(),
        user=user,
        password=password,
    )
    try:
        server.write_config()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def debug_logging(tmp_path: Path) -> Iterator[tuple[Path, SecretRedactingFilter]]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    root = logging.getLogger()
    level = root.level
    redaction = setup_logging(log_dir, verbose=True, to_stderr=False)
    libraries = ("aiosmtplib", "aioimaplib", "cadence")
    before = {name: logging.getLogger(name).level for name in libraries}
    for name in libraries:  # the worst case: even the libraries' wire chatter goes to the file
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield log_dir, redaction
    for handler in list(root.handlers):
        if getattr(handler, "_cadence", False):
            root.removeHandler(handler)
            handler.close()
    for name, old in before.items():
        logging.getLogger(name).setLevel(old)
    root.setLevel(level)


def first_candidate(mime: bytes) -> object:
    def decide(snapshot: PacingSnapshot, candidates: tuple[SendCandidate, ...]) -> ClaimDecision:
        first = candidates[0]
        return ClaimDecision(pick=SendPick(first.message.id, "<zero-hit-1@seller.test>", mime))

    return decide


@pytest.mark.asyncio
async def test_a_full_session_leaves_no_password_on_disk(
    tmp_path: Path,
    secret_service: object,
    keyring_service: str,
    debug_logging: tuple[Path, SecretRedactingFilter],
) -> None:
    log_dir, redaction = debug_logging
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    email = "seller@seller.test"
    markers = {
        "smtp": password_marker("smtp"),
        "imap": password_marker("imap"),
        "typed_wrong": password_marker("typed"),
    }
    with dovecot_with_password(email, markers["imap"]) as dovecot:
        peer = ScriptedSmtpPeer(ca=dovecot.ca, mode="starttls", users={email: markers["smtp"]})
        await peer.start()
        database = open_database(data_dir / "cadence.sqlite3")
        store = SqliteStore(database)
        db = DbWorker()
        try:
            keyring = KeyringSecretStore(
                backend=secret_service,  # type: ignore[arg-type]
                service=keyring_service,
                timeout_s=15,
                redaction=redaction,
            )
            setup = AccountSetupService(
                secrets=keyring,
                mx_hosts=_no_mx,
                probe=NetworkProbe(),
                redact=redaction.add,
                store=store,
                db=db,
                step_timeout_s=10,
            )
            settings = AccountSettings(
                email=email,
                display_name="Sam Seller",
                smtp_host="127.0.0.1",
                smtp_port=peer.port,
                smtp_security=ConnectionSecurity.STARTTLS,
                imap_host="127.0.0.1",
                imap_port=dovecot.imaps_port,
                ca_file=str(dovecot.ca_file),
                guardrails=Guardrails(),
            )
            account = await db.call(store.create_account, settings, now=NOW)
            await keyring.set(email, markers["smtp"])
            await keyring.set(email, markers["imap"], kind=SecretKind.IMAP_PASSWORD)
            view = v.AccountSettings(
                email=email,
                display_name="Sam Seller",
                smtp_host="127.0.0.1",
                smtp_port=peer.port,
                imap_host="127.0.0.1",
                imap_port=dovecot.imaps_port,
                account_id=account.id,
                ca_file=str(dovecot.ca_file),
            )

            # the connection test with the stored passwords: every step passes
            tested = await setup.test_connection(view)
            assert tested.ok, [s.message for s in tested.failures]
            assert [s.step for s in tested.steps][-1] == "sent_folder"
            # a typed, wrong password: refused, explained, never stored
            refused = await setup.test_connection(view, password=markers["typed_wrong"])
            assert [f.step for f in refused.failures] == ["login", "login"]
            assert all(markers["typed_wrong"] not in f.message for f in refused.failures)
            assert await keyring.get(email) == markers["smtp"]

            # a campaign message claimed, sent with the keyring's password, and recorded with its transcript
            campaign = await db.call(
                store.create_campaign,
                name="Zero hit",
                account_id=account.id,
                steps=[Step(index=1, subject="Hello", body="Hello {first_name}")],
                now=NOW,
            )
            await db.call(store.add_leads, campaign.id, leads=[Lead(email="lead@example.test")], now=NOW)
            lead = (await db.call(store.list_leads, campaign.id))[0]
            draft = NewDraft(
                campaign_id=campaign.id,
                lead_id=lead.id,
                step_index=1,
                subject="Hello",
                body="Hello there",
                state=MessageState.APPROVED,
            )
            await db.call(store.create_drafts, [draft], now=NOW)
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = email, "lead@example.test", "Hello"
            message["Message-ID"] = "<zero-hit-1@seller.test>"
            message.set_content("Hello there")
            claim = await db.call(
                store.claim_next_send, account_id=account.id, now=NOW, decide=first_candidate(bytes(message))
            )
            assert isinstance(claim, Claim)
            mailer = SmtpMailer(
                host="127.0.0.1",
                port=peer.port,
                security="starttls",
                username=email,
                password=await keyring.get(email),
                ca_file=dovecot.ca_file,
            )
            try:
                result = await mailer.send(
                    sender=email, recipients=("lead@example.test",), message=claim.mime
                )
            finally:
                await mailer.close()
            assert result.outcome is SendOutcome.DELIVERED, result
            assert "AUTH" in result.transcript  # the dialogue is kept, so it is worth searching
            await db.call(
                store.record_delivered_with_follow_up,
                "<zero-hit-1@seller.test>",
                at=NOW,
                follow_up=lambda *_args: None,
                transcript=result.transcript,
            )
            assert len(peer.accepted) == 1 and peer.auth_attempts[-1].ok

            # the inbox read with the IMAP password from the keyring
            await _deliver(dovecot)
            imap_secret = await keyring.get(email, kind=SecretKind.IMAP_PASSWORD)
            assert imap_secret == markers["imap"]
            imap = await ImapMailbox.connect(
                ImapAccount(
                    host="127.0.0.1",
                    username=email,
                    port=dovecot.imaps_port,
                    ca_file=str(dovecot.ca_file),
                    timeout_s=10,
                ),
                secret=imap_secret,
            )
            try:
                assert (await imap.folders()).sent == "Sent"
                await imap.examine("INBOX")
                uids = await imap.uids_after(0)
                fetched = await imap.fetch(uids)
            finally:
                await imap.close()
            assert len(fetched) == 1

            # while the database is open its -wal holds the latest writes: search it now as well
            assert (data_dir / "cadence.sqlite3-wal").exists()
            assert hits([data_dir, log_dir], markers, user=email) == []
        finally:
            db.shutdown()
            database.close()
            await peer.stop()

    for handler in logging.getLogger().handlers:
        handler.flush()
    files = all_files([data_dir, log_dir])
    names = {path.name for path in files}
    assert "cadence.sqlite3" in names and "cadence.log" in names
    log_text = (log_dir / "cadence.log").read_bytes()
    assert b" DEBUG " in log_text and email.encode() in log_text  # the log really saw the session
    assert b"Sending" in log_text  # aioimaplib's wire log, the riskiest place, was on
    assert hits([data_dir, log_dir], markers, user=email) == []


async def _no_mx(domain: str) -> tuple[str, ...]:
    return ()


async def _deliver(dovecot: DovecotServer) -> None:
    import asyncio

    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "lead@example.test", dovecot.user, "Re: Hello"
    reply.set_content("Thanks, tell me more.")
    await asyncio.to_thread(dovecot.append, "INBOX", bytes(reply))


# --- through the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_session_leaves_no_password_on_disk(tmp_path: Path) -> None:
    login = "alice@example.com"
    marker = password_marker("cli")
    with (
        keyring_session(tmp_path / "keyring") as env,
        peer_process(tmp_path / "peer", users=(login,), password=marker) as peer,
        dovecot_with_password(login, marker) as dovecot,
    ):
        data = tmp_path / "data"
        both_cas = tmp_path / "cas.pem"  # the peer and Dovecot have CAs of their own
        both_cas.write_bytes(peer.ca_file.read_bytes() + dovecot.ca_file.read_bytes())
        added = run_cadence(
            data,
            "account", "add", "--email", login,
            "--smtp", f"127.0.0.1:{peer.port}", "--imap", f"127.0.0.1:{dovecot.imaps_port}",
            "--ca-file", str(both_cas),
            "--guardrails", json.dumps(PERMISSIVE),
            "--all-hours", "--no-warmup", "--no-first-touch-approval", "--password-stdin",
            env=env,
            input_text=marker + "\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["password_stored"] is True
        leads, body = write_campaign_files(tmp_path / "campaign", leads=2)
        created = run_cadence(
            data, "campaign", "add", "--name", "z", "--leads", str(leads),
            "--step", f"Hello {{first_name}}|{body}|0", env=env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        dovecot.append("INBOX", b"From: lead000@example.com\r\nSubject: Re: hi\r\n\r\nTell me more.\r\n")
        # --until rather than --once: --once leaves the inbox watcher off, so IMAP would never log in
        until = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
        ran = run_cadence(data, "run", "--until", until, "--verbose", env=env, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr.count(" sent account=1 ") == 2
        records = peer.stop()
        assert len(records) == 2
        sent_copies = list((dovecot.maildir("Sent") / "new").iterdir()) + list(
            (dovecot.maildir("Sent") / "cur").iterdir()
        )
        assert len(sent_copies) == 2  # IMAP logged in with the same password to file the copies in Sent
        console = tmp_path / "console"
        console.mkdir()
        (console / "stdout-stderr.txt").write_text(
            added.stdout + added.stderr + created.stdout + created.stderr + ran.stdout + ran.stderr,
            encoding="utf-8",
        )
    files = all_files([data])
    assert any(p.name.endswith(".sqlite3") for p in files) and any(p.suffix == ".log" for p in files), files
    assert hits([data, console], {"cli": marker}, user=login) == []
