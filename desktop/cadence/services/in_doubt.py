"""Settling in-doubt sends from the Sent folder, and reading the mailbox before a sending batch.

A message is in doubt when the connection ended after its final dot: it may have gone out. After a grace
period (the provider may file it late) Sent is searched by its Message-ID. Found → delivered (the same
transaction as a normal delivery, with its follow-up). Not found, and the provider files SMTP mail in Sent
itself → it did not go out: queued again with the SAME Message-ID, audited. Not found where Cadence APPENDs
its own copies → nothing can be told: it stays in doubt for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from cadence.core.model import (
    Account,
    AuditEntry,
    AuditResult,
    MessageState,
    OutboxMessage,
    SentFolderKind,
)
from cadence.core.ports import Clock, MailboxError, Store, SystemClock
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent, SendEventKind
from cadence.services.inbox import InboxEvent, InboxEventKind, InboxWatcher
from cadence.services.scheduler import follow_up_draft

log = logging.getLogger(__name__)

# A message still `sending` may belong to a send that is really in progress (this process or another one on
# the same data directory): the SMTP adapter waits up to 10 min for the reply to the final dot alone, plus
# 30 s per earlier command. Only after this grace is such a message treated as in doubt and settled.
IN_DOUBT_GRACE = timedelta(minutes=30)
IN_DOUBT_CHECK_EVERY = timedelta(minutes=5)
SEARCH_TIMEOUT_S = 60.0


class InDoubtSettler:
    """`settle_once()` checks every account's in-doubt messages whose grace period is over; `start()` runs it
    now and every `interval` in an owned task, `aclose()` cancels and awaits that task."""

    def __init__(
        self,
        *,
        store: Store,
        db: DbWorker,
        watcher: InboxWatcher,
        events: EventBus[SendEvent] | None = None,
        clock: Clock | None = None,
        grace: timedelta = IN_DOUBT_GRACE,
        interval: timedelta = IN_DOUBT_CHECK_EVERY,
        on_requeued: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._db = db
        self._watcher = watcher
        self._events = events
        self._clock: Clock = clock or SystemClock()
        self._grace = grace
        self._interval = interval
        self._on_requeued = on_requeued
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="in-doubt-settler")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.settle_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("settling in-doubt messages failed")
            await asyncio.sleep(self._interval.total_seconds())

    async def settle_once(self) -> dict[str, str]:
        """Returns {Message-ID: "sent" | "requeued" | "in_doubt"} for the messages looked at."""
        results: dict[str, str] = {}
        now = self._clock.now()
        for account in await self._db.call(self._store.list_accounts):
            if account.id not in self._watcher.accounts:
                continue
            for message in await self._db.call(self._store.list_in_doubt, account.id):
                if message.message_id is None or message.state_changed_at + self._grace > now:
                    continue
                results[message.message_id] = await self._settle(account, message)
        return results

    async def _settle(self, account: Account, message: OutboxMessage) -> str:
        assert message.message_id is not None
        try:
            found = await self._watcher.find_in_sent(
                account.id, message.message_id, timeout_s=SEARCH_TIMEOUT_S
            )
        except MailboxError as exc:
            log.warning("in-doubt message %d: Sent could not be searched: %s", message.id, exc)
            return "in_doubt"
        now = self._clock.now()
        if found:
            current = await self._db.call(self._store.get_message, message.id)
            if current.state is not MessageState.SENDING:
                return "sent"  # the watcher's pass before the search read the copy in Sent and settled it
            follow_up = functools.partial(follow_up_draft, guardrails=account.settings.guardrails)
            _, draft_id = await self._db.call(
                self._store.record_delivered_with_follow_up, message.message_id, at=now, follow_up=follow_up
            )
            await self._audit(account, message, AuditResult.SENT, "in doubt, found in Sent", now)
            self._publish(SendEventKind.SENT, account, message, now)
            if draft_id is not None:
                self._publish(SendEventKind.FOLLOW_UP, account, message, now, outbox_id=draft_id)
            return "sent"
        if found is not None and account.settings.sent_folder_kind is SentFolderKind.PROVIDER_FILES:
            await self._db.call(self._store.requeue_in_doubt, message.message_id, at=now)
            await self._audit(
                account,
                message,
                AuditResult.DEFERRED,
                "in doubt, not in Sent: queued again",
                now,
                detail=f"the provider files sent mail itself; message_id={message.message_id}",
            )
            self._publish(SendEventKind.DEFERRED, account, message, now, detail="in doubt: queued again")
            if self._on_requeued is not None:
                self._on_requeued(account.id)
            return "requeued"
        return "in_doubt"

    async def _audit(
        self,
        account: Account,
        message: OutboxMessage,
        result: AuditResult,
        reason: str,
        now: datetime,
        *,
        detail: str = "",
    ) -> None:
        entry = AuditEntry(
            at=now,
            result=result,
            account_id=account.id,
            lead_id=message.lead_id,
            sender=account.email,
            recipient=message.recipient,
            subject=message.subject,
            reason=reason,
            detail=detail or f"message_id={message.message_id}",
        )
        await self._db.call(self._store.append_audit, [entry])

    def _publish(
        self,
        kind: SendEventKind,
        account: Account,
        message: OutboxMessage,
        now: datetime,
        *,
        outbox_id: int | None = None,
        detail: str = "",
    ) -> None:
        if self._events is not None:
            self._events.publish(
                SendEvent(
                    kind=kind,
                    account_id=account.id,
                    at=now,
                    outbox_id=outbox_id or message.id,
                    recipient=message.recipient,
                    detail=detail,
                )
            )


class MailboxFirst:
    """The scheduler's `before_batch` hook: when the account's mailbox was last read more than `stale_after`
    ago, read it now (bounded), so fresh unsubscribes and bounces are applied before the next claim."""

    def __init__(
        self,
        watcher: InboxWatcher,
        *,
        clock: Clock | None = None,
        stale_after: timedelta = timedelta(minutes=10),
        timeout_s: float = 30.0,
    ) -> None:
        self._watcher = watcher
        self._clock: Clock = clock or SystemClock()
        self._stale_after = stale_after
        self._timeout_s = timeout_s
        self._last_sync: dict[int, datetime] = {}

    def on_inbox_event(self, event: InboxEvent) -> None:
        """Subscribe to the watcher's events: a pass it made by itself (IDLE, polling) counts as a read."""
        if event.kind is InboxEventKind.SYNCED:
            self._last_sync[event.account_id] = self._clock.now()

    async def __call__(self, account_id: int) -> None:
        if account_id not in self._watcher.accounts:
            return
        now = self._clock.now()
        last = self._last_sync.get(account_id)
        if last is not None and now - last < self._stale_after:
            return
        reports = await self._watcher.sync_now(account_id, timeout_s=self._timeout_s)
        self._last_sync[account_id] = self._clock.now()
        for report in reports:
            if not report.ok:
                log.warning(
                    "account %d: the mailbox was not read before sending: %s", account_id, report.error
                )
