"""An in-memory mail server for the sandbox: INBOX, Sent and Junk with UIDs and UIDVALIDITY, and a
`ports.Mailbox` session over it that the real InboxWatcher reads exactly as it reads IMAP."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from cadence.core.model import FetchedMessage, FolderStatus, MailboxFolders
from cadence.core.ports import Clock, Mailbox, MailboxError, MailboxErrorKind, WakeSignal

INBOX, SENT, JUNK = "INBOX", "Sent", "Junk"


@dataclass
class _Stored:
    uid: int
    raw: bytes
    arrived: datetime


@dataclass
class _Folder:
    name: str
    uidvalidity: int
    next_uid: int = 1
    messages: list[_Stored] = field(default_factory=list)


class SandboxMailStore:
    """The folders of one sandbox account. Used from one event loop only."""

    def __init__(self, *, clock: Clock, uidvalidity: int = 1) -> None:
        self._clock = clock
        self._folders = {name: _Folder(name, uidvalidity) for name in (INBOX, SENT, JUNK)}
        self._changed: asyncio.Event | None = None
        self.connections = 0

    def folder_names(self) -> tuple[str, ...]:
        return tuple(self._folders)

    def deliver(self, folder: str, raw: bytes) -> int:
        """Add a message (INTERNALDATE = the clock's now); returns its UID and wakes waiting sessions."""
        target = self._folder(folder)
        uid = target.next_uid
        target.next_uid += 1
        target.messages.append(_Stored(uid, raw, self._clock.now()))
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return uid

    def messages(self, folder: str) -> tuple[bytes, ...]:
        return tuple(stored.raw for stored in self._folder(folder).messages)

    def change_signal(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _folder(self, name: str) -> _Folder:
        folder = self._folders.get(name)
        if folder is None:
            raise MailboxError(
                f"There is no folder {name!r} in the sandbox.", kind=MailboxErrorKind.FOLDER_MISSING
            )
        return folder


class SandboxMailbox:
    """core.ports.Mailbox over a SandboxMailStore (one 'connection')."""

    def __init__(self, store: SandboxMailStore) -> None:
        self._store = store
        self._examined: _Folder | None = None
        self._closed = False

    @property
    def supports_idle(self) -> bool:
        return True

    async def folders(self) -> MailboxFolders:
        self._check_open()
        return MailboxFolders(inbox=INBOX, junk=JUNK, sent=SENT)

    async def examine(self, folder: str) -> FolderStatus:
        self._check_open()
        found = self._store._folder(folder)
        self._examined = found
        return FolderStatus(
            name=found.name, uidvalidity=found.uidvalidity, uidnext=found.next_uid, exists=len(found.messages)
        )

    async def uids_after(self, last_uid: int) -> list[int]:
        return [stored.uid for stored in self._current().messages if stored.uid > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        return [stored.uid for stored in self._current().messages if stored.arrived.date() >= day]

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        wanted = set(uids)
        return {stored.uid: len(stored.raw) for stored in self._current().messages if stored.uid in wanted}

    async def fetch(self, uids: Sequence[int], *, expected_bytes: int = 0) -> list[FetchedMessage]:
        wanted = set(uids)
        return [
            FetchedMessage(uid=stored.uid, raw=stored.raw)
            for stored in self._current().messages
            if stored.uid in wanted
        ]

    async def wait_for_change(self, *, max_wait_s: float, wake: WakeSignal) -> bool:
        self._check_open()
        if wake.is_set():
            return False
        changed = asyncio.ensure_future(self._store.change_signal().wait())
        woken = asyncio.ensure_future(wake.wait())
        try:
            done, _ = await asyncio.wait(
                {changed, woken}, timeout=max_wait_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (changed, woken):
                task.cancel()
            await asyncio.gather(changed, woken, return_exceptions=True)
        return changed in done

    async def find_message_id(self, folder: str, message_id: str) -> list[int]:
        self._check_open()
        wanted = message_id.strip()
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        return [
            stored.uid
            for stored in self._store._folder(folder).messages
            if str(parser.parsebytes(stored.raw).get("Message-ID", "")).strip() == wanted
        ]

    async def append(
        self, folder: str, raw: bytes, *, seen: bool = True, when: datetime | None = None
    ) -> int | None:
        self._check_open()
        return self._store.deliver(folder, raw)

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise MailboxError(
                "The sandbox mailbox connection is closed.", kind=MailboxErrorKind.CONNECTION_LOST
            )

    def _current(self) -> _Folder:
        self._check_open()
        if self._examined is None:
            raise MailboxError("No folder is selected.", kind=MailboxErrorKind.SERVER_ERROR)
        return self._examined


def sandbox_connector(
    store: SandboxMailStore, *, password: Callable[[], Awaitable[str | None]], expected: str
) -> Callable[[], Awaitable[Mailbox]]:
    """A MailboxConnector: logs in with the account's secret (as IMAP would) and opens a session."""

    async def connect() -> Mailbox:
        if await password() != expected:
            raise MailboxError("The sandbox refused the password.", kind=MailboxErrorKind.AUTH_FAILED)
        store.connections += 1
        return SandboxMailbox(store)

    return connect
