"""KeyringSecretStore against the real Secret Service (gnome-keyring in a private D-Bus session).

Run by hand:
  dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1;
    QT_QPA_PLATFORM=offscreen .venv/bin/pytest tests/integration/test_secrets_keyring.py -q'
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import pytest
from keyring.backends import SecretService

from cadence import APP_ID
from cadence.adapters.secrets import (
    REDACTED,
    KeyringSecretStore,
    SecretRedactingFilter,
    backend_refusal,
    keyring_user,
    redact,
)
from cadence.core.ports import (
    AccountSecretStore,
    SecretKind,
    SecretStore,
    SecretStoreError,
    SecretStoreTimeout,
    SecretStoreUnavailable,
)


def _secret_service_or_skip() -> SecretService.Keyring:
    try:
        priority = SecretService.Keyring.priority
    except Exception as error:
        pytest.skip(
            f"no Secret Service reachable ({error}); run inside dbus-run-session with "
            "gnome-keyring-daemon --unlock --components=secrets (tests/run.sh does this)"
        )
    assert priority > 0
    return SecretService.Keyring()


@pytest.fixture
def secret_service() -> SecretService.Keyring:
    return _secret_service_or_skip()


@pytest.fixture
def service_name(secret_service: SecretService.Keyring) -> Iterator[str]:
    """A service name of its own per test, so the real app's entries are never touched; swept after."""
    name = f"{APP_ID}.test-{uuid.uuid4().hex[:8]}"
    yield name
    collection = secret_service.get_preferred_collection()
    for item in collection.search_items({"service": name}):
        item.delete()


@pytest.fixture
def restore_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def _entries(secret_service: SecretService.Keyring, service: str) -> dict[str, str]:
    collection = secret_service.get_preferred_collection()
    return {
        item.get_attributes()["username"]: item.get_secret().decode("utf-8")
        for item in collection.search_items({"service": service})
    }


# --- round trips through the Secret Service ------------------------------------------------------------


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_set_get_delete_round_trip(secret_service: SecretService.Keyring, service_name: str) -> None:
    store = KeyringSecretStore(backend=secret_service, service=service_name, timeout_s=10)
    assert await store.check() == "keyring.backends.SecretService.Keyring"
    assert await store.get("alice@example.com") is None

    await store.set("Alice@Example.com", "app-pass wörd")
    assert await store.get("alice@example.com") == "app-pass wörd"
    assert _entries(secret_service, service_name) == {"alice@example.com": "app-pass wörd"}

    await store.set("alice@example.com", "second")
    assert await store.get("alice@example.com") == "second"

    await store.delete("alice@example.com")
    assert await store.get("alice@example.com") is None
    await store.delete("alice@example.com")  # deleting what is gone is fine
    assert _entries(secret_service, service_name) == {}


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_default_backend_is_the_secret_service(
    secret_service: SecretService.Keyring, service_name: str
) -> None:
    store = KeyringSecretStore(service=service_name, timeout_s=10)
    assert "SecretService" in await store.check()
    await store.set("bob@example.com", "pw")
    assert _entries(secret_service, service_name) == {"bob@example.com": "pw"}


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_kinds_are_separate_entries_and_account_removal_removes_all(
    secret_service: SecretService.Keyring, service_name: str
) -> None:
    store = KeyringSecretStore(backend=secret_service, service=service_name, timeout_s=10, chunk_limit=200)
    await store.set("carol@example.com", "smtp-pass")
    await store.set("carol@example.com", "imap-pass", kind=SecretKind.IMAP_PASSWORD)
    await store.set("carol@example.com", "r" * 450, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    await store.set("dave@example.com", "other-account")

    assert await store.get("carol@example.com", kind=SecretKind.IMAP_PASSWORD) == "imap-pass"
    assert await store.get("carol@example.com", kind=SecretKind.OAUTH_CLIENT_SECRET) is None
    users = set(_entries(secret_service, service_name))
    assert {"carol@example.com", "carol@example.com#imap", "carol@example.com#oauth"} <= users
    assert "carol@example.com#oauth#part3" in users

    await store.delete_account("carol@example.com")
    assert _entries(secret_service, service_name) == {"dave@example.com": "other-account"}


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_long_token_is_chunked_and_rejoined(
    secret_service: SecretService.Keyring, service_name: str
) -> None:
    token = "".join(f"{i:05d}" for i in range(1000))  # 5,000 characters, every chunk boundary visible
    store = KeyringSecretStore(backend=secret_service, service=service_name, timeout_s=10, chunk_limit=1280)
    await store.set("erin@example.com", token, kind=SecretKind.OAUTH_REFRESH_TOKEN)

    entries = _entries(secret_service, service_name)
    parts = {user: value for user, value in entries.items() if "#part" in user}
    assert sorted(parts) == [f"erin@example.com#oauth#part{i}" for i in range(1, 5)]
    assert all(len(value) <= 1280 for value in entries.values())
    assert "".join(parts[f"erin@example.com#oauth#part{i}"] for i in range(1, 5)) == token
    assert await store.get("erin@example.com", kind=SecretKind.OAUTH_REFRESH_TOKEN) == token

    # A reader with no chunk limit (another platform's default) still joins the chunks.
    plain_reader = KeyringSecretStore(
        backend=secret_service, service=service_name, use_platform_chunk_limit=False
    )
    assert await plain_reader.get("erin@example.com", kind=SecretKind.OAUTH_REFRESH_TOKEN) == token

    # Replacing it with a short secret removes the stale chunks.
    await store.set("erin@example.com", "short", kind=SecretKind.OAUTH_REFRESH_TOKEN)
    assert _entries(secret_service, service_name) == {"erin@example.com#oauth": "short"}

    await store.set("erin@example.com", token, kind=SecretKind.OAUTH_REFRESH_TOKEN)
    await store.delete("erin@example.com", kind=SecretKind.OAUTH_REFRESH_TOKEN)
    assert _entries(secret_service, service_name) == {}


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_interrupted_chunked_write_is_reported_not_returned_corrupt(
    secret_service: SecretService.Keyring, service_name: str
) -> None:
    store = KeyringSecretStore(backend=secret_service, service=service_name, timeout_s=10, chunk_limit=100)
    await store.set("frank@example.com", "x" * 250)
    secret_service.set_password(service_name, "frank@example.com#part2", "y" * 100)  # half-overwritten
    with pytest.raises(SecretStoreError, match="incomplete"):
        await store.get("frank@example.com")


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_secret_that_looks_like_a_chunk_header_survives(
    secret_service: SecretService.Keyring, service_name: str
) -> None:
    store = KeyringSecretStore(backend=secret_service, service=service_name, timeout_s=10)
    tricky = "cadence-chunked-secret:v1:2:abcdef"
    await store.set("gina@example.com", tricky)
    assert await store.get("gina@example.com") == tricky


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_store_registers_its_secrets_for_redaction(
    secret_service: SecretService.Keyring, service_name: str
) -> None:
    redaction = SecretRedactingFilter()
    store = KeyringSecretStore(backend=secret_service, service=service_name, redaction=redaction)
    secret_service.set_password(service_name, "hank@example.com", "stored-before-start")
    assert await store.get("hank@example.com") == "stored-before-start"
    await store.set("hank@example.com#x", "typed-in-now")
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "%s and %s", ("stored-before-start", "typed-in-now"), None
    )
    redaction.filter(record)
    assert record.getMessage() == f"{REDACTED} and {REDACTED}"


def test_the_store_satisfies_both_ports() -> None:
    store: AccountSecretStore = KeyringSecretStore(backend=keyring.backends.null.Keyring())
    plain: SecretStore = store
    assert plain is store


# --- refused backends ----------------------------------------------------------------------------------


class _FileKeyring(keyring.backend.KeyringBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring (keyrings.alt is deliberately not installed)."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise AssertionError("a refused backend must never be read")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("a refused backend must never be written")

    def delete_password(self, service: str, username: str) -> None:
        raise AssertionError("a refused backend must never be touched")


_FileKeyring.__module__ = "keyrings.alt.file"


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (keyring.backends.fail.Keyring(), "no OS keyring was found"),
        (keyring.backends.null.Keyring(), "null backend"),
        (_FileKeyring(), "keyrings.alt"),
    ],
    ids=["fail", "null", "keyrings.alt"],
)
@pytest.mark.asyncio
async def test_insecure_backends_are_refused_with_a_way_out(
    backend: keyring.backend.KeyringBackend, expected: str, restore_keyring: None
) -> None:
    keyring.set_keyring(backend)
    store = KeyringSecretStore(timeout_s=5)
    with pytest.raises(SecretStoreUnavailable, match=expected) as caught:
        await store.check()
    assert "gnome-keyring" in str(caught.value) or "Credential Manager" in str(caught.value)
    with pytest.raises(SecretStoreUnavailable):
        await store.set("ivy@example.com", "never-stored")
    with pytest.raises(SecretStoreUnavailable):
        await store.get("ivy@example.com")


def test_chainer_without_a_usable_member_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        keyring.backends.chainer.ChainerBackend, "backends", [_FileKeyring(), keyring.backends.null.Keyring()]
    )
    refusal = backend_refusal(keyring.backends.chainer.ChainerBackend())
    assert refusal is not None and "no usable OS keyring" in refusal


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_chainer_uses_only_its_secure_member(
    secret_service: SecretService.Keyring, service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyring.backends.chainer.ChainerBackend, "backends", [_FileKeyring(), secret_service])
    store = KeyringSecretStore(backend=keyring.backends.chainer.ChainerBackend(), service=service_name)
    assert "SecretService" in await store.check()
    await store.set("jack@example.com", "pw")  # _FileKeyring would raise if written
    assert await store.get("jack@example.com") == "pw"


# --- the worker deadline -------------------------------------------------------------------------------


class _StuckKeyring(keyring.backend.KeyringBackend):
    """A keyring whose read blocks like an unanswered unlock prompt, until the test releases it."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.stored: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        self.release.wait(30)
        return self.stored.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.stored[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.stored.pop((service, username), None)


@pytest.mark.asyncio
async def test_a_blocked_keyring_times_out_with_a_clear_error_and_the_loop_stays_free() -> None:
    stuck = _StuckKeyring()
    store = KeyringSecretStore(backend=stuck, timeout_s=0.3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(SecretStoreTimeout, match=r"did not answer within 0\.3 seconds.*unlock"):
            await store.get("kim@example.com")
    finally:
        ticking.cancel()
        stuck.release.set()
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 2.0
    assert ticks >= 5  # the event loop kept running while the keyring was stuck
    assert isinstance(SecretStoreTimeout("x"), TimeoutError)

    # Once the keyring answers again, the same store works.
    await store.set("kim@example.com", "pw")
    assert await store.get("kim@example.com") == "pw"


# --- redaction -----------------------------------------------------------------------------------------


def test_redact_replaces_plain_url_and_base64_forms() -> None:
    secret = "s3cr3t/p@ss+word"
    text = f"login {secret} url=pw%3D{'s3cr3t%2Fp%40ss%2Bword'} b64=czNjcjN0L3BAc3Mrd29yZA== ok"
    assert redact(text, [secret]) == f"login {REDACTED} url=pw%3D{REDACTED} b64={REDACTED}== ok"
    assert redact("nothing here", [secret, ""]) == "nothing here"


def test_logging_filter_removes_secrets_from_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redaction = SecretRedactingFilter(["hunter2-token"])
    logger = logging.getLogger("cadence.test.redaction")
    caplog.handler.addFilter(redaction)
    try:
        with caplog.at_level(logging.INFO, logger="cadence.test.redaction"):
            logger.info("AUTH with %s for %s", "hunter2-token", "lee@example.com")
            try:
                raise RuntimeError("server echoed hunter2-token back")
            except RuntimeError:
                logger.exception("login failed")
            redaction.add("added-later-secret")
            logger.warning("refresh token is added-later-secret")
    finally:
        caplog.handler.removeFilter(redaction)
    assert "hunter2-token" not in caplog.text
    assert "added-later-secret" not in caplog.text
    assert f"AUTH with {REDACTED} for lee@example.com" in caplog.text
    assert f"RuntimeError: server echoed {REDACTED} back" in caplog.text
    assert f"refresh token is {REDACTED}" in caplog.text


def test_filter_install_attaches_to_handlers() -> None:
    logger = logging.getLogger("cadence.test.install")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        redaction = SecretRedactingFilter()
        redaction.install(logger)
        redaction.install(logger)
        assert handler.filters == [redaction]
    finally:
        logger.removeHandler(handler)


def test_keyring_user_names() -> None:
    assert keyring_user(" Alice@Example.COM ") == "alice@example.com"
    assert keyring_user("a@b.c", SecretKind.OAUTH_REFRESH_TOKEN) == "a@b.c#oauth"
    assert len({keyring_user("a@b.c", kind) for kind in SecretKind}) == len(SecretKind)
    with pytest.raises(ValueError, match="address"):
        keyring_user("  ")
