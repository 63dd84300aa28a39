"""The InboxSink over the store: what each classified inbox item does, applied with the folder's new last
UID in ONE transaction (so a crash re-runs the batch and the re-run changes nothing).

hard bounce → suppress (the raw mail kept as evidence) and count in the bounce rate; soft bounce → counted,
the third within 7 days suppresses; complaint / unsubscribe / not interested → suppress and stop; auto-reply
→ the lead's next message waits for the return date; a person's reply → the lead's follow-ups stop. Leads
are matched by our Message-ID (original, In-Reply-To, References), then by address. A message in Sent
settles an in-doubt send with the same Message-ID, or counts as a manual send in the ledger.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, TypeVar

from cadence.core import retry
from cadence.core.model import (
    Campaign,
    CampaignLead,
    FolderRole,
    InboundAction,
    InboundEffect,
    InboundItem,
    InboundKind,
    LeadStatus,
    MailboxState,
    NewDraft,
    OutboxMessage,
    SentFolderKind,
    SuppressionReason,
)
from cadence.core.ports import Clock, MailboxError, MailboxErrorKind, RecordNotFound, Store, SystemClock
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent, SendEventKind
from cadence.services.inbox import InboxEvent, InboxEventKind, InboxWatcher
from cadence.services.scheduler import THROTTLE_PACE, follow_up_draft

log = logging.getLogger(__name__)
T = TypeVar("T")

_STOPPING = {
    InboundKind.COMPLAINT: (SuppressionReason.COMPLAINT, LeadStatus.UNSUBSCRIBED),
    InboundKind.UNSUBSCRIBE: (SuppressionReason.UNSUBSCRIBE, LeadStatus.UNSUBSCRIBED),
    InboundKind.NOT_INTERESTED: (SuppressionReason.NOT_INTERESTED, LeadStatus.NOT_INTERESTED),
}
RETURN_TIME = time(8, 0, tzinfo=UTC)  # an auto-reply's "back on the 3rd": not before that morning
# a reply from these says nothing about a company: never stop other leads at the same domain
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
        "ymail.com", "rocketmail.com", "aol.com", "icloud.com", "me.com", "mac.com", "gmx.com", "gmx.net",
        "gmx.de", "gmx.at", "gmx.ch", "web.de", "proton.me", "protonmail.com", "protonmail.ch", "pm.me",
        "mail.com", "zoho.com", "yandex.com", "yandex.ru", "mail.ru", "t-online.de", "freenet.de",
        "orange.fr", "free.fr", "laposte.net", "libero.it", "qq.com", "163.com", "fastmail.com", "hey.com",
        "tutanota.com", "tuta.io", "comcast.net", "att.net", "btinternet.com",
    }
)  # fmt: skip
_FREE_MAIL_PREFIXES = ("yahoo.", "hotmail.", "outlook.", "live.", "gmx.", "protonmail.", "yandex.")
# RFC 2606 placeholders: addresses there are examples of unrelated people, never one company
_PLACEHOLDER_DOMAINS = frozenset({"example.com", "example.net", "example.org"})


def company_domain(address: str) -> str | None:
    """The company domain of an address, or None for a free-mail provider (or no domain at all)."""
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    if not domain or "." not in domain:
        return None
    if domain in FREE_MAIL_DOMAINS or domain in _PLACEHOLDER_DOMAINS:
        return None
    if domain.startswith(_FREE_MAIL_PREFIXES):
        return None
    return domain


def _headers(raw: bytes) -> dict[str, str]:
    try:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
    except Exception:
        return {}
    return {key.lower(): str(value) for key, value in parsed.items()}


def sent_copy_effect(item: InboundItem, *, now: datetime) -> InboundEffect:
    headers = _headers(item.raw)
    addresses = tuple(
        address.lower()
        for _, address in getaddresses([headers.get(name, "") for name in ("to", "cc", "bcc")])
        if "@" in address
    )
    sent_at = now
    try:
        parsed = parsedate_to_datetime(headers["date"])
        if parsed.tzinfo is not None:
            sent_at = min(parsed.astimezone(UTC), now)
    except (KeyError, TypeError, ValueError):
        pass
    return InboundEffect(
        item=item,
        action=InboundAction.SENT_COPY,
        addresses=tuple(dict.fromkeys(addresses)),
        subject=" ".join(headers.get("subject", "").split()),
        sent_at=sent_at,
    )


def plan_effect(item: InboundItem, *, now: datetime) -> InboundEffect:
    """What one item does (pure)."""
    if item.role is FolderRole.SENT:
        return sent_copy_effect(item, now=now)
    verdict = item.verdict
    references = tuple(ref for ref in (verdict.original_message_id, *verdict.in_reply_to) if ref)
    sender = (verdict.from_address,) if verdict.from_address else ()
    kind = verdict.kind
    if kind is InboundKind.HARD_BOUNCE and not verdict.delayed and verdict.recipients:
        return InboundEffect(
            item=item,
            action=InboundAction.SUPPRESS,
            addresses=verdict.recipients,
            references=references,
            suppression=SuppressionReason.HARD_BOUNCE,
            lead_status=LeadStatus.BOUNCED,
            hard_bounce=True,
        )
    if kind is InboundKind.SOFT_BOUNCE and not verdict.delayed and verdict.recipients:
        return InboundEffect(
            item=item, action=InboundAction.SOFT_BOUNCE, addresses=verdict.recipients, references=references
        )
    if kind in _STOPPING:
        suppression, status = _STOPPING[kind]
        addresses = verdict.recipients if kind is InboundKind.COMPLAINT and verdict.recipients else sender
        return InboundEffect(
            item=item,
            action=InboundAction.SUPPRESS,
            addresses=addresses,
            references=references,
            suppression=suppression,
            lead_status=status,
        )
    if kind is InboundKind.AUTO_REPLY and verdict.return_date is not None:
        return InboundEffect(
            item=item,
            action=InboundAction.AUTO_REPLY,
            addresses=sender,
            references=references,
            resume_at=datetime.combine(verdict.return_date, RETURN_TIME),
        )
    if kind is InboundKind.REPLY:
        return InboundEffect(
            item=item,
            action=InboundAction.STOP,
            addresses=sender,
            references=references,
            lead_status=LeadStatus.REPLIED,
        )
    return InboundEffect(item=item, action=InboundAction.NONE, references=references)


class InboxEffects:
    """core.ports.InboxSink over the store (called on the database worker thread)."""

    def __init__(
        self,
        store: Store,
        *,
        events: EventBus[SendEvent] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        stop_company_on_reply: bool = True,
    ):
        self._store = store
        self._stop_company_on_reply = stop_company_on_reply
        self._events = events
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()

    def mailbox_state(self, account_id: int, folder: str) -> MailboxState | None:
        return self._store.get_mailbox_state(account_id, folder=folder)

    def apply_batch(
        self,
        *,
        account_id: int,
        folder: str,
        uidvalidity: int,
        items: Sequence[InboundItem],
        last_uid: int,
    ) -> None:
        now = self._clock.now()
        guardrails = self._store.get_account(account_id).settings.guardrails
        effects = [plan_effect(item, now=now) for item in items]

        def follow_up(
            campaign: Campaign, lead: CampaignLead, sent: OutboxMessage, at: datetime
        ) -> NewDraft | None:
            return follow_up_draft(campaign, lead, sent, at, guardrails=guardrails)

        outcome = self._store.apply_inbound_batch(
            account_id=account_id,
            folder=folder,
            uidvalidity=uidvalidity,
            last_uid=last_uid,
            effects=effects,
            now=now,
            follow_up=follow_up,
        )
        company_stopped = self._stop_companies(account_id, effects, now=now) if outcome.applied else ()
        throttling = [item.verdict.throttling for item in items if item.verdict.throttling]
        if throttling and outcome.applied:
            self._back_off(account_id, throttling[-1], now=now)
        changed = (
            outcome.suppressed
            or outcome.stopped_leads
            or outcome.settled
            or outcome.manual_sends
            or company_stopped
        )
        if changed:
            detail = (
                f"{folder}: suppressed {len(outcome.suppressed)}, "
                f"stopped {len(outcome.stopped_leads)} lead(s), "
                f"{len(company_stopped)} more at the same company, "
                f"cancelled {len(outcome.cancelled_messages)}, settled {len(outcome.settled)} in-doubt, "
                f"{outcome.manual_sends} manual send(s)"
            )
            log.info("inbox batch for account %d: %s", account_id, detail)
            if self._events is not None:
                self._events.publish(
                    SendEvent(kind=SendEventKind.INBOX, account_id=account_id, at=now, detail=detail)
                )

    def _stop_companies(
        self, account_id: int, effects: Sequence[InboundEffect], *, now: datetime
    ) -> tuple[int, ...]:
        """A person's reply stops the other leads at the replier's company (not for free-mail domains)."""
        if not self._stop_company_on_reply:
            return ()
        stopped: list[int] = []
        for effect in effects:
            if effect.action is not InboundAction.STOP or effect.lead_status is not LeadStatus.REPLIED:
                continue
            for address in effect.addresses:
                domain = company_domain(address)
                if domain is None:
                    continue
                stopped.extend(
                    self._store.stop_company_leads(
                        account_id,
                        domain=domain,
                        references=effect.references,
                        now=now,
                        reason=f"{address} at the same company replied",
                    )
                )
        return tuple(dict.fromkeys(stopped))

    def _back_off(self, account_id: int, text: str, *, now: datetime) -> None:
        """A provider's throttling text in a DSN: the same account backoff as an SMTP throttling reply."""
        account = self._store.get_account(account_id)
        state = retry.after_throttle(
            retry.PaceState(
                factor=account.pace_factor,
                consecutive_throttles=account.consecutive_throttles,
                backoff_until=account.backoff_until,
            ),
            now=now,
            rng=self._rng,
            config=THROTTLE_PACE,
        )
        until = state.backoff_until or now
        self._store.set_account_backoff(
            account_id,
            until=until,
            pace_factor=state.factor,
            consecutive_throttles=state.consecutive_throttles,
        )
        log.warning(
            "account %d: throttling reported in a bounce (%s): backing off until %s", account_id, text, until
        )
        if self._events is not None:
            self._events.publish(
                SendEvent(
                    kind=SendEventKind.DEFERRED,
                    account_id=account_id,
                    at=now,
                    detail=f"throttled (from a bounce): {text}; pace {state.factor:g}",
                    until=until,
                )
            )


SENT_COPY_WINDOW = timedelta(days=7)  # the catch-up looks this far back for sent messages without a copy
SENT_COPY_BATCH = 50  # messages looked at per catch-up pass (each costs a SEARCH, maybe an APPEND)
SENT_COPY_RETRY = timedelta(minutes=15)  # failures are tried again at the first watcher pass after this


@dataclass(frozen=True, slots=True)
class CatchUpReport:
    """One catch-up pass of an account: copies found already in Sent (recorded), appended, failed."""

    account_id: int
    found: int = 0
    appended: int = 0
    failed: int = 0
    more: bool = False  # the batch was full or the pass stopped early: more may be waiting


class SentFolderCopier:
    """For providers that do not file submitted mail in Sent themselves (SentFolderKind.APP_APPENDS): after
    each delivery, APPEND the exact bytes that were sent to the account's Sent folder, so the user sees what
    went out, and record that the copy is there (messages.sent_copy_at).

    A process killed between the delivery and the APPEND (or a message the user marked sent) leaves no
    record: the catch-up, run when the account's watcher connects (start and every reconnect), looks for
    each such message of the last 7 days in Sent by Message-ID first (the APPEND may have succeeded just
    before the kill) and appends it only when it is missing. Subscribe `on_event` to the scheduler's events
    and `on_inbox_event` to the watcher's; `aclose()` waits for copies in progress."""

    def __init__(
        self,
        *,
        store: Store,
        db: DbWorker,
        watcher: InboxWatcher,
        clock: Clock | None = None,
        window: timedelta = SENT_COPY_WINDOW,
        batch: int = SENT_COPY_BATCH,
        retry_after: timedelta = SENT_COPY_RETRY,
    ) -> None:
        self._store = store
        self._db = db
        self._watcher = watcher
        self._clock: Clock = clock or SystemClock()
        self._window = window
        self._batch = batch
        self._retry_after = retry_after
        self._tasks: set[asyncio.Task[Any]] = set()
        self._copying: set[int] = set()  # outbox ids one path is copying: the other leaves them alone
        self._catching_up: dict[int, asyncio.Task[CatchUpReport]] = {}
        self._again: set[int] = set()  # accounts that connected again while their catch-up ran
        self._next_due: dict[int, datetime] = {}  # accounts with work left: when to look again
        self._closing = False

    def on_event(self, event: SendEvent) -> None:
        if self._closing:
            return
        if event.kind is not SendEventKind.SENT or event.account_id is None or event.outbox_id is None:
            return
        if event.account_id not in self._watcher.accounts:
            return
        self._spawn(self._copy(event.account_id, event.outbox_id))

    def on_inbox_event(self, event: InboxEvent) -> None:
        """The catch-up runs on every (re)connection, and after a pass when the last catch-up left work."""
        if self._closing:
            return
        if event.kind is InboxEventKind.CONNECTED:
            self.request_catch_up(event.account_id)
        elif event.kind is InboxEventKind.SYNCED:
            due = self._next_due.get(event.account_id)
            if due is not None and self._clock.now() >= due:
                self.request_catch_up(event.account_id)

    def request_catch_up(self, account_id: int) -> None:
        """Start a catch-up pass for the account (or one more after the running one); no-op when its
        mailbox is not watched (the watcher's next connection runs one)."""
        if self._closing or account_id not in self._watcher.accounts:
            return
        if account_id in self._catching_up:
            self._again.add(account_id)
            return
        self._next_due.pop(account_id, None)
        task = self._spawn(self.catch_up(account_id))
        self._catching_up[account_id] = task

        def finished(done: asyncio.Task[CatchUpReport]) -> None:
            self._catching_up.pop(account_id, None)
            if account_id in self._again and not self._closing:
                self._again.discard(account_id)
                self.request_catch_up(account_id)

        task.add_done_callback(finished)

    def catching_up(self, account_id: int) -> bool:
        return account_id in self._catching_up

    async def catch_up(self, account_id: int) -> CatchUpReport:
        """One bounded pass: sent messages of the last 7 days without a recorded copy are looked for in Sent
        (recorded when there) and appended when missing. Never raises; failures wait for the next pass."""
        found = appended = failed = 0
        more = False
        try:
            account = await self._db.call(self._store.get_account, account_id)
            if account.settings.sent_folder_kind is not SentFolderKind.APP_APPENDS:
                return CatchUpReport(account_id)
            since = self._clock.now() - self._window
            pending = await self._db.call(
                functools.partial(
                    self._store.list_missing_sent_copies, account_id, since=since, limit=self._batch
                )
            )
            more = len(pending) >= self._batch
            for item in pending:
                if self._closing:
                    more = True
                    break
                if item.outbox_id in self._copying:
                    continue  # its own copy is being made right now
                self._copying.add(item.outbox_id)
                try:
                    outcome = await self._catch_up_one(account_id, item.outbox_id, item.message_id)
                except MailboxError as exc:
                    failed += 1
                    log.warning(
                        "account %d: the copy of message %d is not in Sent yet, trying again later: %s",
                        account_id,
                        item.outbox_id,
                        exc,
                    )
                    if exc.needs_user or exc.kind in (
                        MailboxErrorKind.TIMEOUT,
                        MailboxErrorKind.CONNECTION_LOST,
                        MailboxErrorKind.FOLDER_MISSING,
                    ):
                        more = True
                        break  # the mailbox cannot be asked now: the next connection tries again
                    continue
                finally:
                    self._copying.discard(item.outbox_id)
                if outcome == "found":
                    found += 1
                elif outcome == "appended":
                    appended += 1
        except (ValueError, RecordNotFound):  # the account is no longer watched (or was deleted meanwhile)
            return CatchUpReport(account_id, found=found, appended=appended, failed=failed)
        except Exception:
            log.exception("account %d: catching up on copies in Sent failed", account_id)
            failed += 1
        report = CatchUpReport(account_id, found=found, appended=appended, failed=failed, more=more)
        if found or appended or failed:
            log.info(
                "account %d: copies in Sent caught up: %d already there (recorded), %d appended, %d failed%s",
                account_id,
                found,
                appended,
                failed,
                "; more next pass" if more else "",
            )
        if more or failed:
            delay = timedelta(0) if more and not failed else self._retry_after
            self._next_due[account_id] = self._clock.now() + delay
        return report

    async def _catch_up_one(self, account_id: int, outbox_id: int, message_id: str) -> str:
        try:
            if await self._db.call(self._store.has_sent_copy, outbox_id):
                return "recorded"  # the SENT event's copy finished after the list was read
        except RecordNotFound:
            return "gone"  # its person was erased meanwhile
        there = await self._watcher.find_in_sent(account_id, message_id, timeout_s=60)
        if there is None:
            raise MailboxError("This mailbox has no Sent folder.", kind=MailboxErrorKind.FOLDER_MISSING)
        if not there:
            raw = await self._db.call(self._store.get_mime, message_id)
            if raw is None:
                return "gone"  # erased meanwhile
            await self._watcher.append_to_sent(account_id, raw, timeout_s=120)
        await self._db.call(functools.partial(self._store.record_sent_copy, message_id, at=self._clock.now()))
        return "found" if there else "appended"

    async def _copy(self, account_id: int, outbox_id: int) -> None:
        if outbox_id in self._copying:
            return  # the catch-up has it
        self._copying.add(outbox_id)
        try:
            account = await self._db.call(self._store.get_account, account_id)
            if account.settings.sent_folder_kind is not SentFolderKind.APP_APPENDS:
                return
            if await self._db.call(self._store.has_sent_copy, outbox_id):
                return  # the catch-up made it between the delivery and this event
            message = await self._db.call(self._store.get_message, outbox_id)
            if message.message_id is None:
                return
            raw = await self._db.call(self._store.get_mime, message.message_id)
            if raw is None:
                return
            await self._watcher.append_to_sent(account_id, raw, timeout_s=120)
            await self._db.call(
                functools.partial(self._store.record_sent_copy, message.message_id, at=self._clock.now())
            )
        except RecordNotFound:
            pass  # its person was erased meanwhile
        except MailboxError as exc:
            log.warning(
                "the copy of message %d was not stored in Sent (the catch-up tries again): %s", outbox_id, exc
            )
            self._next_due.setdefault(account_id, self._clock.now() + self._retry_after)
        except Exception:
            log.exception("storing the copy of message %d in Sent failed", outbox_id)
        finally:
            self._copying.discard(outbox_id)

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        self._closing = True
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
