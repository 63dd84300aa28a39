"""Secrets in the OS keyring (Secret Service, KWallet, macOS Keychain, Windows Credential Manager).

Every keyring call runs in its own daemon thread with a deadline: an unlock prompt can block for ever, and a
stuck daemon thread neither blocks the event loop nor keeps the process alive at exit. Insecure backends
(keyrings.alt, the `fail` and `null` backends) are refused with a message saying how to get a real one.

Keyring layout (service name = `cadence.APP_ID`):
  user `alice@example.com`                 PASSWORD
  user `alice@example.com#imap`            IMAP_PASSWORD
  user `alice@example.com#oauth`           OAUTH_REFRESH_TOKEN
  user `alice@example.com#oauth-client`    OAUTH_CLIENT_SECRET
A secret longer than the chunk limit (Windows: 1,280 UTF-16 units) is stored as a header entry under the
user name plus numbered chunks `<user>#part1`, `<user>#part2`, …
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from typing import TypeVar

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors

from cadence import APP_ID
from cadence.core.ports import SecretKind, SecretStoreError, SecretStoreTimeout, SecretStoreUnavailable

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "WINDOWS_CREDENTIAL_LIMIT",
    "KeyringSecretStore",
    "SecretRedactingFilter",
    "backend_refusal",
    "keyring_user",
    "redact",
    "usable_backend",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
WINDOWS_CREDENTIAL_LIMIT = 1280  # CRED_MAX_CREDENTIAL_BLOB_SIZE (2,560 bytes) in UTF-16 code units
_CHUNK_HEADER = "cadence-chunked-secret:v1:"
_KIND_SUFFIX: dict[SecretKind, str] = {
    SecretKind.PASSWORD: "",
    SecretKind.IMAP_PASSWORD: "#imap",
    SecretKind.OAUTH_REFRESH_TOKEN: "#oauth",
    SecretKind.OAUTH_CLIENT_SECRET: "#oauth-client",
}


def keyring_user(account: str, kind: SecretKind = SecretKind.PASSWORD) -> str:
    """The keyring user name for one secret of an account (addresses are compared case-insensitively)."""
    address = account.strip().lower()
    if not address:
        raise ValueError("an account address is needed to store its secret")
    return address + _KIND_SUFFIX[kind]


def _default_chunk_limit() -> int | None:
    return WINDOWS_CREDENTIAL_LIMIT if sys.platform == "win32" else None


# --- backend checks ----------------------------------------------------------------------------------------


def _how_to_enable() -> str:
    if sys.platform == "win32":
        return "Windows Credential Manager should be available to every signed-in user."
    if sys.platform == "darwin":
        return "The macOS Keychain should be available; sign in to a desktop session."
    return (
        "Install and start a Secret Service provider: GNOME Keyring (package gnome-keyring) or KWallet. "
        "On a machine without a desktop session, start Cadence with "
        '`dbus-run-session -- sh -c \'printf %s "$KEYRING_PW" | gnome-keyring-daemon --unlock '
        "--components=secrets; cadence'`."
    )


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def backend_refusal(backend: keyring.backend.KeyringBackend) -> str | None:
    """Why Cadence will not keep secrets in `backend`, or None if it is a real OS keyring."""
    name = _backend_name(backend)
    if type(backend).__module__.split(".")[:2] == ["keyrings", "alt"]:
        return (
            f"the keyring backend {name} (from keyrings.alt) keeps secrets in a file, not in the OS "
            "keyring. Uninstall keyrings.alt or choose another backend with PYTHON_KEYRING_BACKEND."
        )
    if isinstance(backend, keyring.backends.fail.Keyring):
        return "no OS keyring was found."
    if isinstance(backend, keyring.backends.null.Keyring):
        return "the keyring is switched off (null backend); remove that setting from keyringrc.cfg."
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        members = list(backend.backends)
        if not any(backend_refusal(member) is None for member in members):
            found = ", ".join(_backend_name(m) for m in members) or "none"
            return f"no usable OS keyring among the available backends ({found})."
    return None


def usable_backend(backend: keyring.backend.KeyringBackend | None = None) -> keyring.backend.KeyringBackend:
    """The backend Cadence will use (blocking: may talk to D-Bus). Raises SecretStoreUnavailable.

    From a chain of backends only the best safe member is used, so a plaintext file backend installed next to
    the Secret Service can never receive nor serve a secret.
    """
    chosen: keyring.backend.KeyringBackend = backend if backend is not None else keyring.get_keyring()
    refusal = backend_refusal(chosen)
    if refusal is not None:
        raise SecretStoreUnavailable(f"Cadence cannot store passwords safely: {refusal} {_how_to_enable()}")
    if isinstance(chosen, keyring.backends.chainer.ChainerBackend):
        members: list[keyring.backend.KeyringBackend] = list(chosen.backends)
        return next(m for m in members if backend_refusal(m) is None)
    return chosen


# --- worker threads with a deadline --------------------------------------------------------------------


async def _in_daemon_thread(call: Callable[[], T], *, timeout_s: float, what: str) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = call()
        except BaseException as error:  # handed to the awaiting coroutine
            caught = error
            _post(lambda: deliver(lambda: future.set_exception(caught)))
        else:
            _post(lambda: deliver(lambda: future.set_result(result)))

    def _post(callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed while the keyring was busy
            loop.call_soon_threadsafe(callback)

    threading.Thread(target=work, name=f"keyring-{what}", daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        raise SecretStoreTimeout(
            f"The system keyring did not answer within {timeout_s:g} seconds while trying to {what}. "
            "It may be waiting for you to unlock it: look for an unlock prompt, then try again."
        ) from None


# --- the store -----------------------------------------------------------------------------------------


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _split(secret: str, limit: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in secret:
        units = _utf16_units(char)
        if size + units > limit:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += units
    if current:
        chunks.append("".join(current))
    return chunks


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


def _parse_header(value: str) -> tuple[int, str] | None:
    if not value.startswith(_CHUNK_HEADER):
        return None
    count, _, digest = value[len(_CHUNK_HEADER) :].partition(":")
    if not count.isdigit() or not digest:
        return None
    return int(count), digest


class KeyringSecretStore:
    """`AccountSecretStore` on the OS keyring. Every call may raise SecretStoreError (never keyring's own)."""

    def __init__(
        self,
        *,
        backend: keyring.backend.KeyringBackend | None = None,
        service: str = APP_ID,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        chunk_limit: int | None = None,
        redaction: SecretRedactingFilter | None = None,
        use_platform_chunk_limit: bool = True,
    ) -> None:
        if chunk_limit is not None and chunk_limit < len(_CHUNK_HEADER) + 40:
            raise ValueError(f"chunk_limit {chunk_limit} is too small to hold a chunk header")
        self._requested_backend = backend
        self._backend: keyring.backend.KeyringBackend | None = None
        self._service = service
        self._timeout_s = timeout_s
        self._chunk_limit = (
            chunk_limit
            if chunk_limit is not None
            else (_default_chunk_limit() if use_platform_chunk_limit else None)
        )
        self._redaction = redaction
        self._lock = threading.Lock()  # one multi-entry operation at a time (chunked writes)

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    async def check(self) -> str:
        """Pick and vet the backend; returns its name for the log. Call at start-up to fail early."""
        backend = await _in_daemon_thread(self._resolve_backend, timeout_s=self._timeout_s, what="open it")
        return _backend_name(backend)

    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None:
        user = keyring_user(account, kind)
        secret = await self._run(lambda: self._read(user), what="read a secret")
        if secret is not None and self._redaction is not None:
            self._redaction.add(secret)
        return secret

    async def set(self, account: str, secret: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        if not secret:
            raise ValueError("an empty secret cannot be stored; delete it instead")
        user = keyring_user(account, kind)
        if self._redaction is not None:
            self._redaction.add(secret)
        await self._run(lambda: self._write(user, secret), what="save a secret")

    async def delete(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        """Remove one secret (with all its chunks); removing a secret that is not there is not an error."""
        user = keyring_user(account, kind)
        await self._run(lambda: self._remove(user), what="delete a secret")

    async def delete_account(self, account: str) -> None:
        users = [keyring_user(account, kind) for kind in SecretKind]

        def remove_all() -> None:
            for user in users:
                self._remove(user)

        await self._run(remove_all, what="delete an account's secrets")

    # --- blocking parts (worker threads only) ---

    def _resolve_backend(self) -> keyring.backend.KeyringBackend:
        if self._backend is None:
            try:
                self._backend = usable_backend(self._requested_backend)
            except SecretStoreError:
                raise
            except Exception as error:
                raise SecretStoreUnavailable(
                    f"The system keyring could not be opened ({type(error).__name__}: {error}). "
                    + _how_to_enable()
                ) from error
            _log.info("secrets are kept by %s", _backend_name(self._backend))
        return self._backend

    async def _run(self, call: Callable[[], T], *, what: str) -> T:
        def guarded() -> T:
            self._resolve_backend()
            with self._lock:
                try:
                    return call()
                except SecretStoreError:
                    raise
                except keyring.errors.KeyringLocked as error:
                    raise SecretStoreUnavailable(
                        "The system keyring is locked; unlock it and try again."
                    ) from error
                except (keyring.errors.KeyringError, OSError) as error:
                    raise SecretStoreError(
                        f"The system keyring failed to {what}: {type(error).__name__}: {error}"
                    ) from error

        return await _in_daemon_thread(guarded, timeout_s=self._timeout_s, what=what)

    def _raw_get(self, user: str) -> str | None:
        assert self._backend is not None
        value = self._backend.get_password(self._service, user)
        return value if value is None or isinstance(value, str) else str(value)

    def _raw_set(self, user: str, value: str) -> None:
        assert self._backend is not None
        self._backend.set_password(self._service, user, value)

    def _raw_delete(self, user: str) -> None:
        assert self._backend is not None
        with contextlib.suppress(keyring.errors.PasswordDeleteError):  # already gone
            self._backend.delete_password(self._service, user)

    def _read(self, user: str) -> str | None:
        value = self._raw_get(user)
        if value is None:
            return None
        header = _parse_header(value)
        if header is None:
            return value
        count, digest = header
        parts = [self._raw_get(f"{user}#part{index}") for index in range(1, count + 1)]
        joined = "".join(part for part in parts if part is not None)
        if None in parts or _digest(joined) != digest:
            raise SecretStoreError(
                f"The secret stored for {user} is incomplete (an earlier save was interrupted); "
                "enter it again."
            )
        return joined

    def _write(self, user: str, secret: str) -> None:
        old = self._raw_get(user)
        old_header = _parse_header(old) if old is not None else None
        old_count = old_header[0] if old_header else 0
        # A plain secret that happens to look like our header is stored chunked, so reading it is unambiguous.
        needs_chunks = secret.startswith(_CHUNK_HEADER) or (
            self._chunk_limit is not None and sum(map(_utf16_units, secret)) > self._chunk_limit
        )
        if needs_chunks:
            chunks = _split(secret, self._chunk_limit or WINDOWS_CREDENTIAL_LIMIT)
            for index, chunk in enumerate(chunks, start=1):
                self._raw_set(f"{user}#part{index}", chunk)
            self._raw_set(user, f"{_CHUNK_HEADER}{len(chunks)}:{_digest(secret)}")
            new_count = len(chunks)
        else:
            self._raw_set(user, secret)
            new_count = 0
        for index in range(new_count + 1, old_count + 1):
            self._raw_delete(f"{user}#part{index}")

    def _remove(self, user: str) -> None:
        value = self._raw_get(user)
        header = _parse_header(value) if value is not None else None
        if value is not None:
            self._raw_delete(user)
        for index in range(1, (header[0] if header else 0) + 1):
            self._raw_delete(f"{user}#part{index}")


# --- redaction -----------------------------------------------------------------------------------------

REDACTED = "[redacted]"
_MIN_SECRET_LEN = 4  # shorter strings would blank out ordinary words; such a secret is not worth hiding


def _forms(secret: str) -> set[str]:
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    encoded = secret.encode("utf-8")
    forms.add(base64.b64encode(encoded).decode("ascii").rstrip("="))
    return {form for form in forms if len(form) >= _MIN_SECRET_LEN}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret (also URL- and base64-encoded) replaced by `[redacted]`."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(secret)
    for form in sorted(forms, key=len, reverse=True):  # longest first: a secret may contain another
        text = text.replace(form, REDACTED)
    return text


class SecretRedactingFilter(logging.Filter):
    """Removes known secrets from log records. Attach to every handler (handler filters see records from
    all loggers); `install(logging.getLogger())` does that for the handlers present."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = {s for s in secrets if s}

    def add(self, secret: str) -> None:
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def discard(self, secret: str) -> None:
        with self._lock:
            self._secrets.discard(secret)

    def install(self, logger: logging.Logger) -> None:
        for handler in logger.handlers:
            if self not in handler.filters:
                handler.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(self._secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message, secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True
