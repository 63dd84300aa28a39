"""The inbox watcher: one owned task per account reads INBOX, Junk and Sent incrementally by UID.

Per folder the store keeps (UIDVALIDITY, last UID). A pass examines each folder, fetches what is new in
bounded batches (count and bytes), classifies the batch off the event loop (best in a worker process, see
`classification_pool`: a CPU-bound classifier in a thread holds the GIL against the loop) and hands it to
the sink (called in `sink_executor`, e.g. the store's database thread), which
commits the items together with the new last UID (so a crash mid-batch re-runs that batch, and the sink's
idempotency makes the re-run harmless). A changed UIDVALIDITY means the folder's UIDs mean something else
now: that folder is read again from scratch. Between passes the task IDLEs on INBOX when the server offers
it (re-checking every folder every `idle_refresh_s`), else it polls. Connection problems reconnect with
exponential backoff; errors the user must fix (password, IMAP switched off, untrusted certificate) wait
much longer, so a bad password does not lock the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from enum import StrEnum
from typing import Any, TypeVar

from cadence.core.model import FolderRole, InboundItem, InboundKind, MailboxFolders, Verdict
from cadence.core.ports import (
    Clock,
    InboxSink,
    Mailbox,
    MailboxConnector,
    MailboxError,
    MailboxErrorKind,
    SystemClock,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Classifier = Callable[[bytes], Verdict]


class InboxEventKind(StrEnum):
    CONNECTED = "connected"
    NEW_ITEMS = "new_items"  # a batch reached the sink (count, folder)
    FOLDER_RESET = "folder_reset"  # UIDVALIDITY changed: the folder is read again from scratch
    SYNCED = "synced"  # a pass over all folders finished (count = items in this pass)
    ERROR = "error"  # message is a sentence for the user; error_kind says which
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class InboxEvent:
    kind: InboxEventKind
    account_id: int
    folder: str | None = None
    count: int = 0
    message: str = ""
    error_kind: MailboxErrorKind | None = None
    needs_user: bool = False
    kinds: tuple[InboundKind, ...] = ()  # verdict kinds of a NEW_ITEMS batch, in UID order


@dataclass(frozen=True, slots=True)
class SyncReport:
    account_id: int
    new_items: int = 0
    error: MailboxError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class WatchOptions:
    poll_interval_s: float = 120.0  # servers without IDLE (or idle=False)
    idle: bool = True
    idle_refresh_s: float = 300.0  # leave IDLE this often to look at Junk and Sent too (IDLE sees INBOX only)
    batch_size: int = 50  # UIDs per FETCH
    batch_bytes: int = 16_000_000  # and at most this many bytes per FETCH (one bigger message goes alone)
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    needs_user_retry_s: float = 900.0  # wrong password & co.: try again this rarely (or on start())
    # On a first pass (or after a UIDVALIDITY change) only mail from the last N days is read, so that a
    # mailbox with years of history is not downloaded; None reads everything.
    rescan_window_days: float | None = 30.0


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID header of a raw message, or None; never raises (malformed mail is normal here)."""
    try:
        end = raw.find(b"\r\n\r\n")
        if end == -1:
            end = raw.find(b"\n\n")
        head = raw if end == -1 else raw[: end + 2]
        value = BytesHeaderParser(policy=compat32).parsebytes(head[:65536]).get("Message-ID")
    except Exception:
        return None
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    start, stop = text.find("<"), text.find(">")
    if 0 <= start < stop:
        return text[start : stop + 1]
    return text or None


def classify_batch(classify: Classifier, raws: Sequence[bytes]) -> list[tuple[Verdict, str | None]]:
    """Verdict and Message-ID of each raw message. Runs in the classify executor: a thread, or a process
    (the arguments and results pickle), so the event loop never parses mail. A classifier failure becomes
    an OTHER verdict with `error` set: the message still reaches the sink, nothing is silently dropped."""
    results: list[tuple[Verdict, str | None]] = []
    for raw in raws:
        try:
            verdict = classify(raw)
        except Exception as exc:
            log.exception("classifier failed")
            verdict = Verdict(kind=InboundKind.OTHER, error=f"classifier error: {type(exc).__name__}: {exc}")
        results.append((verdict, verdict.message_id or message_id_of(raw)))
    return results


_BOUNCES = frozenset({InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE})


def _warn_unreadable(account_id: int, items: Sequence[InboundItem]) -> None:
    """Say so when a message could not be read (the classifier failed) or is a bounce naming no recipient
    that could be read: it is kept and marked read up to its UID, but it changes nothing."""
    for item in items:
        verdict = item.verdict
        unreadable_bounce = verdict.kind in _BOUNCES and not verdict.recipients and not verdict.delayed
        if verdict.error or (unreadable_bounce and item.role is not FolderRole.SENT):
            log.warning(
                "account %s: %s UID %d (Message-ID %s) is malformed: %s; it changes nothing",
                account_id,
                item.folder,
                item.uid,
                item.message_id or "none",
                verdict.error or "a bounce that names no recipient Cadence can read",
            )


def group_by_size(uids: Sequence[int], sizes: dict[int, int], *, max_bytes: int) -> list[list[int]]:
    """Split UIDs (ascending) into groups of at most max_bytes; UIDs without a size (gone) are dropped."""
    groups: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for uid in uids:
        size = sizes.get(uid)
        if size is None:
            continue
        if current and current_bytes + size > max_bytes:
            groups.append(current)
            current, current_bytes = [], 0
        current.append(uid)
        current_bytes += size
    if current:
        groups.append(current)
    return groups


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # os.nice does not exist on Windows
        os.nice(10)


def classification_pool() -> ProcessPoolExecutor:
    """One worker process at lower CPU priority for `classify_executor`: classification then neither
    holds the GIL against the event loop nor competes with it for a CPU. Frozen (PyInstaller) builds must
    call multiprocessing.freeze_support() first thing in main. The caller shuts it down."""
    return ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_lower_priority
    )


class _Job:
    def __init__(self, run: Callable[[Mailbox, MailboxFolders], Awaitable[Any]], future: asyncio.Future[Any]):
        self.run = run
        self.future = future


class _AccountRunner:
    def __init__(self, watcher: InboxWatcher, account_id: int, connect: MailboxConnector) -> None:
        self.watcher = watcher
        self.account_id = account_id
        self.connect = connect
        self.wake = asyncio.Event()
        self.sync_waiters: list[asyncio.Future[SyncReport]] = []
        self.jobs: deque[_Job] = deque()
        self.last_error: MailboxError | None = None
        self.state: dict[str, tuple[int, int]] = {}  # folder → (uidvalidity, last_uid), mirrors the sink
        self.task: asyncio.Task[None] | None = None

    # --- requests from outside ----------------------------------------------------------------------------

    def request_sync(self) -> asyncio.Future[SyncReport]:
        future: asyncio.Future[SyncReport] = asyncio.get_running_loop().create_future()
        self.sync_waiters.append(future)
        self.wake.set()
        return future

    def submit(self, run: Callable[[Mailbox, MailboxFolders], Awaitable[T]]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.jobs.append(_Job(run, future))
        self.wake.set()
        return future

    def fail_pending(self, error: MailboxError) -> None:
        waiters, self.sync_waiters = self.sync_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(SyncReport(self.account_id, error=error))
        while self.jobs:
            job = self.jobs.popleft()
            if not job.future.done():
                job.future.set_exception(error)

    # --- the task -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        options = self.watcher.options
        backoff = options.backoff_initial_s
        try:
            while True:
                mailbox: Mailbox | None = None
                delay = backoff
                try:
                    mailbox = await self.connect()
                    folders = await mailbox.folders()
                    self.last_error = None
                    self.watcher.publish(InboxEvent(InboxEventKind.CONNECTED, self.account_id))
                    backoff = options.backoff_initial_s
                    await self.serve(mailbox, folders)
                except MailboxError as exc:
                    delay = self.on_error(exc, backoff)
                    backoff = min(backoff * 2, options.backoff_max_s)
                except Exception as exc:  # the sink (storage) or a bug: keep the watcher alive, say it once
                    log.exception("inbox watcher for account %s failed", self.account_id)
                    error = MailboxError(
                        f"Reading the mailbox failed: {exc}", kind=MailboxErrorKind.SERVER_ERROR
                    )
                    delay = self.on_error(error, backoff)
                    backoff = min(backoff * 2, options.backoff_max_s)
                finally:
                    if mailbox is not None:
                        await mailbox.close()
                await self.sleep(delay)
        finally:
            self.fail_pending(
                MailboxError("The mailbox watcher stopped.", kind=MailboxErrorKind.CONNECTION_LOST)
            )

    def on_error(self, error: MailboxError, backoff: float) -> float:
        self.last_error = error
        self.fail_pending(error)
        self.watcher.publish(
            InboxEvent(
                InboxEventKind.ERROR,
                self.account_id,
                message=str(error),
                error_kind=error.kind,
                needs_user=error.needs_user,
            )
        )
        if error.needs_user:
            return self.watcher.options.needs_user_retry_s
        return backoff * random.uniform(0.8, 1.2)

    async def sleep(self, delay: float) -> None:
        """Back off; a sync request or job cuts it short unless the user has to fix something first."""
        if self.last_error is not None and self.last_error.needs_user:
            self.fail_pending(self.last_error)
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=delay)

    async def serve(self, mailbox: Mailbox, folders: MailboxFolders) -> None:
        options = self.watcher.options
        while True:
            self.wake.clear()
            waiters, self.sync_waiters = self.sync_waiters, []
            try:
                count = await self.sync_pass(mailbox, folders)
            except BaseException:
                self.sync_waiters[:0] = waiters  # answered by fail_pending
                raise
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(SyncReport(self.account_id, new_items=count))
            while self.jobs:
                job = self.jobs.popleft()
                if job.future.done():
                    continue
                try:
                    result = await job.run(mailbox, folders)
                except MailboxError as exc:
                    if not job.future.done():
                        job.future.set_exception(exc)
                    if exc.kind in (MailboxErrorKind.TIMEOUT, MailboxErrorKind.CONNECTION_LOST):
                        raise  # this connection is gone: reconnect
                    continue
                if not job.future.done():
                    job.future.set_result(result)
            if self.wake.is_set():
                continue
            if options.idle and mailbox.supports_idle:
                inbox = await mailbox.examine(folders.inbox)
                known = self.state.get(folders.inbox)
                if known is None or known[0] != inbox.uidvalidity or (inbox.uidnext or 0) > known[1] + 1:
                    continue  # mail arrived after the pass looked at INBOX: IDLE would not report it
                await mailbox.wait_for_change(max_wait_s=options.idle_refresh_s, wake=self.wake)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=options.poll_interval_s)

    async def sync_pass(self, mailbox: Mailbox, folders: MailboxFolders) -> int:
        total = 0
        for role, folder in folders.watched():
            total += await self.sync_folder(mailbox, role, folder)
        self.watcher.publish(InboxEvent(InboxEventKind.SYNCED, self.account_id, count=total))
        return total

    async def sync_folder(self, mailbox: Mailbox, role: FolderRole, folder: str) -> int:
        watcher, options = self.watcher, self.watcher.options
        status = await mailbox.examine(folder)
        known = self.state.get(folder)
        if known is None:
            stored = await watcher.call_sink(watcher.sink.mailbox_state, self.account_id, folder)
            if stored is not None:
                known = self.state[folder] = (stored.uidvalidity, stored.last_uid)
        if known is not None and known[0] == status.uidvalidity:
            last_uid = known[1]
            if status.uidnext is not None and status.uidnext <= last_uid + 1:
                return 0
            uids = await mailbox.uids_after(last_uid)
            from_scratch = False
        else:
            if known is not None:
                log.info(
                    "UIDVALIDITY of %s changed for account %s: reading it again", folder, self.account_id
                )
                watcher.publish(InboxEvent(InboxEventKind.FOLDER_RESET, self.account_id, folder=folder))
            last_uid = 0
            from_scratch = True
            if options.rescan_window_days is None:
                uids = await mailbox.uids_after(0)
            else:
                since = watcher.clock.now() - timedelta(days=options.rescan_window_days)
                uids = await mailbox.uids_since(since.date())
        # Every message below UIDNEXT (as of EXAMINE) was in the search (mail arriving since gets a UID ≥
        # UIDNEXT), so the folder counts as read up to UIDNEXT - 1 once these are done: UIDs that vanished,
        # and older mail a windowed scan from scratch leaves out on purpose, are not asked for again.
        read_up_to = max(status.uidnext - 1, last_uid) if status.uidnext else last_uid
        if not uids:
            if from_scratch or read_up_to > last_uid:
                await self.apply(mailbox, folder, status.uidvalidity, [], read_up_to)
            return 0
        total = 0
        for start in range(0, len(uids), options.batch_size):
            chunk = uids[start : start + options.batch_size]
            sizes = await mailbox.sizes(chunk)
            groups = group_by_size(chunk, sizes, max_bytes=options.batch_bytes)
            if not groups:  # all expunged meanwhile
                last_chunk = start + options.batch_size >= len(uids)
                await self.apply(
                    mailbox, folder, status.uidvalidity, [], max(chunk[-1], read_up_to if last_chunk else 0)
                )
                continue
            for index, group in enumerate(groups):
                expected = sum(sizes[uid] for uid in group)
                messages = await mailbox.fetch(group, expected_bytes=expected)
                classified = await asyncio.get_running_loop().run_in_executor(
                    watcher.classify_executor,
                    classify_batch,
                    watcher.classify,
                    [message.raw for message in messages],
                )
                items = [
                    InboundItem(
                        folder=folder,
                        role=role,
                        uid=message.uid,
                        raw=message.raw,
                        message_id=message_id,
                        verdict=verdict,
                    )
                    for message, (verdict, message_id) in zip(messages, classified, strict=True)
                ]
                _warn_unreadable(self.account_id, items)
                batch_last = chunk[-1] if index == len(groups) - 1 else group[-1]
                if start + options.batch_size >= len(uids) and index == len(groups) - 1:
                    batch_last = max(batch_last, read_up_to)
                await self.apply(mailbox, folder, status.uidvalidity, items, batch_last)
                total += len(items)
                if items:
                    watcher.publish(
                        InboxEvent(
                            InboxEventKind.NEW_ITEMS,
                            self.account_id,
                            folder=folder,
                            count=len(items),
                            kinds=tuple(item.verdict.kind for item in items),
                        )
                    )
        return total

    async def apply(
        self, mailbox: Mailbox, folder: str, uidvalidity: int, items: list[InboundItem], last_uid: int
    ) -> None:
        await self.watcher.call_sink(
            functools.partial(
                self.watcher.sink.apply_batch,
                account_id=self.account_id,
                folder=folder,
                uidvalidity=uidvalidity,
                items=items,
                last_uid=last_uid,
            )
        )
        self.state[folder] = (uidvalidity, last_uid)


class InboxWatcher:
    """Watches the mailboxes of any number of accounts; each account has one task owned here."""

    def __init__(
        self,
        *,
        sink: InboxSink,
        classify: Classifier,
        on_event: Callable[[InboxEvent], None] | None = None,
        options: WatchOptions | None = None,
        clock: Clock | None = None,
        sink_executor: Executor | None = None,
        classify_executor: Executor | None = None,
    ) -> None:
        self.sink = sink
        self.classify = classify
        self.options = options or WatchOptions()
        self.clock: Clock = clock or SystemClock()
        self.sink_executor = sink_executor  # e.g. the store's single database worker; None: default pool
        self.classify_executor = classify_executor
        self._on_event = on_event
        self._runners: dict[int, _AccountRunner] = {}

    # --- life cycle ---------------------------------------------------------------------------------------

    async def start(self, account_id: int, connect: MailboxConnector) -> None:
        """Start watching an account (restarts it if already watched, e.g. after a password change)."""
        await self.stop(account_id)
        runner = _AccountRunner(self, account_id, connect)
        runner.task = asyncio.get_running_loop().create_task(runner.run(), name=f"inbox-watcher-{account_id}")
        self._runners[account_id] = runner

    async def stop(self, account_id: int | None = None) -> None:
        """Stop one account's task (or all): cancel and wait until it is gone."""
        ids = list(self._runners) if account_id is None else [account_id]
        runners = [self._runners.pop(i) for i in ids if i in self._runners]
        tasks = [r.task for r in runners if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for runner in runners:
            self.publish(InboxEvent(InboxEventKind.STOPPED, runner.account_id))

    @property
    def accounts(self) -> tuple[int, ...]:
        return tuple(self._runners)

    def last_error(self, account_id: int) -> MailboxError | None:
        return self._runner(account_id).last_error

    # --- requests -----------------------------------------------------------------------------------------

    async def sync_now(
        self, account_id: int | None = None, *, timeout_s: float | None = None
    ) -> list[SyncReport]:
        """Run one pass now (all accounts, or one) and wait for it. Never raises for mailbox problems: a
        report carries the error. An account waiting for the user to fix its login is not retried."""
        runners = list(self._runners.values()) if account_id is None else [self._runner(account_id)]
        futures: list[asyncio.Future[SyncReport]] = []
        for runner in runners:
            error = runner.last_error
            if error is not None and error.needs_user:
                done: asyncio.Future[SyncReport] = asyncio.get_running_loop().create_future()
                done.set_result(SyncReport(runner.account_id, error=error))
                futures.append(done)
            else:
                futures.append(runner.request_sync())
        reports: list[SyncReport] = []
        for runner, future in zip(runners, futures, strict=True):
            try:
                reports.append(await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s))
            except TimeoutError:
                reports.append(
                    SyncReport(
                        runner.account_id,
                        error=MailboxError(
                            "Checking the mailbox took too long.", kind=MailboxErrorKind.TIMEOUT
                        ),
                    )
                )
        return reports

    async def find_in_sent(
        self, account_id: int, message_id: str, *, timeout_s: float | None = None
    ) -> bool | None:
        """Is a message with this Message-ID in the account's Sent folder? None when there is no Sent
        folder. Settles in-doubt sends. Raises MailboxError when the mailbox cannot be asked."""

        async def run(mailbox: Mailbox, folders: MailboxFolders) -> bool | None:
            if folders.sent is None:
                return None
            return bool(await mailbox.find_message_id(folders.sent, message_id))

        return await self._job(account_id, run, timeout_s)

    async def append_to_sent(
        self, account_id: int, raw: bytes, *, timeout_s: float | None = None
    ) -> int | None:
        """Store a copy of a sent message in Sent (only for providers that do not file SMTP mail there
        themselves). Returns the new UID when the server tells. Raises MailboxError."""

        async def run(mailbox: Mailbox, folders: MailboxFolders) -> int | None:
            if folders.sent is None:
                raise MailboxError("This mailbox has no Sent folder.", kind=MailboxErrorKind.FOLDER_MISSING)
            return await mailbox.append(folders.sent, raw, seen=True)

        return await self._job(account_id, run, timeout_s)

    async def _job(
        self, account_id: int, run: Callable[[Mailbox, MailboxFolders], Awaitable[T]], timeout_s: float | None
    ) -> T:
        runner = self._runner(account_id)
        if runner.last_error is not None and runner.last_error.needs_user:
            raise runner.last_error
        future = runner.submit(run)
        try:
            return await asyncio.wait_for(future, timeout=timeout_s)
        except TimeoutError:
            raise MailboxError("The mailbox did not answer in time.", kind=MailboxErrorKind.TIMEOUT) from None

    # --- helpers ------------------------------------------------------------------------------------------

    def _runner(self, account_id: int) -> _AccountRunner:
        try:
            return self._runners[account_id]
        except KeyError:
            raise ValueError(f"account {account_id} is not being watched") from None

    async def call_sink(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.sink_executor, function, *args)

    def publish(self, event: InboxEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a listener's bug must not stop the mail from being read
            log.exception("inbox event listener failed on %s", event.kind)
