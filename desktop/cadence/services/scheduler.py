"""The scheduler: one owned task per account sends ONE message at a time, when the engine says so.

A pass: the store reserves the next message inside one write transaction, asking `decide_send` (policy +
pacing on a snapshot read in that same transaction, so two processes never exceed a cap together). The
picked row leaves the store as `sending` with its final Message-ID and MIME bytes, committed before any
SMTP byte goes out. The SMTP result is then recorded (sent + ledger + idempotency key + follow-up draft in
one transaction on 2xx). Between passes the task sleeps until the engine's next slot, or until woken
(approval, resume, settings change). Nothing is counted in memory: every decision reads the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cadence.core import pacing, policy, retry
from cadence.core.compose import ComposeError, OutgoingMessage, compose, new_message_id
from cadence.core.legal import legal_basis_for
from cadence.core.model import (
    Account,
    Allowed,
    AuditEntry,
    AuditResult,
    Blocked,
    BlockReason,
    Campaign,
    CampaignLead,
    Claim,
    ClaimDecision,
    DeferReason,
    Deferred,
    Guardrails,
    Held,
    Idle,
    LeadStatus,
    LedgerEntry,
    LedgerKind,
    MessageState,
    NewDraft,
    OutboxMessage,
    PacingSnapshot,
    SendCandidate,
    SendOutcome,
    SendPick,
    SendResult,
    Step,
    SuppressionReason,
)
from cadence.core.ports import (
    Clock,
    Mailer,
    SecretStore,
    SecretStoreError,
    StorageError,
    Store,
    SystemClock,
    real_seconds,
)
from cadence.core.smtp_replies import FailureKind
from cadence.core.templates import TemplateError, render_step
from cadence.services import notices
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent, SendEventKind

log = logging.getLogger(__name__)

MailerFactory = Callable[[Account, str | None], Mailer]

# reasons that hold every candidate of the account alike: no need to look further down the queue
_ACCOUNT_WIDE = frozenset(
    {
        DeferReason.PAUSED,
        DeferReason.BACKOFF,
        DeferReason.BOUNCE_BREAKER,
        DeferReason.DAILY_CAP,
        DeferReason.HOURLY_CAP,
        DeferReason.WARMUP_CAP,
        DeferReason.PROVIDER_DAY,
        DeferReason.PROVIDER_HOUR,
        DeferReason.PROVIDER_MINUTE,
        DeferReason.SPACING,
        DeferReason.MIN_DELAY,
    }
)
_ACCOUNT_PAUSING = {
    SendOutcome.POLICY: "The server refused mail from this account (policy)",
    SendOutcome.AUTH_FAILED: "The server refused the login",
    SendOutcome.DO_NOT_RETRY: "The provider asked not to retry",
}
_SMTP_TEMPORARY = "smtp_temporary"
_SET_ASIDE = timedelta(days=3650)
_EXPIRY_EVERY = timedelta(minutes=1)  # how often a busy account looks for stale messages
# a pacing deferral is audited again only when its reason changes or its time moves by more than this
DEFER_AUDIT_SLACK = timedelta(minutes=30)
# AIMD: every throttle in a row halves the pace, down to an eighth; clean sends add 0.05 back each
THROTTLE_PACE = retry.PaceConfig(decrease_after=1, decrease_factor=0.5, min_factor=0.125)


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    max_candidates: int = 50
    stop_grace_s: float = 30.0  # on stop, a send in progress may finish (and be recorded) this long
    retry_policy: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    pace_config: retry.PaceConfig = THROTTLE_PACE
    keyring_retry: timedelta = timedelta(minutes=5)  # the keyring could not be read: try again then
    quota_fallback: timedelta = timedelta(hours=1)  # quota hit with no send in the window to wait out
    # an idle account still looks in this often (messages expire, deferrals are audited, while paused too)
    housekeeping_interval: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did: `sent_outcome` is None when nothing was claimed."""

    outcome: SendOutcome | None
    wait_until: datetime | None = None  # when nothing was claimed: when to look again (None: not by itself)
    reason: DeferReason | None = None


def deferral_changed(message: OutboxMessage, deferred: Deferred) -> bool:
    """Whether this pacing deferral differs materially from the last one audited for the message."""
    if message.audited_defer_reason is not deferred.reason or message.audited_defer_until is None:
        return True
    return abs(deferred.not_before - message.audited_defer_until) > DEFER_AUDIT_SLACK


def _pause_cause(result: SendResult) -> str:
    """Why an account-level outcome pauses the account, in words (a TLS failure is no server policy)."""
    if result.outcome is SendOutcome.POLICY and result.text.startswith(f"{FailureKind.TLS.value}:"):
        return "The server's TLS certificate was not accepted (changed, expired, or intercepted)"
    return _ACCOUNT_PAUSING[result.outcome]


def _server_words(result: SendResult) -> str:
    parts = [str(result.code)] if result.code else []
    if result.enhanced_status and not result.text.startswith(result.enhanced_status):
        parts.append(result.enhanced_status)
    parts.append(result.text)
    return " ".join(part for part in parts if part).strip()


# --- drafts (pure) ---------------------------------------------------------------------------------------


def draft_for_step(
    *,
    campaign_id: int,
    lead: CampaignLead,
    step: Step,
    guardrails: Guardrails,
    due_at: datetime | None = None,
) -> NewDraft:
    """The rendered draft of one step for one lead, held for approval when policy says so."""
    rendered = render_step(step, lead=lead.lead)
    holds = policy.hold_reasons(
        lead=lead.lead,
        step_index=step.index,
        subject=rendered.subject,
        body=rendered.body,
        guardrails=guardrails,
    )
    return NewDraft(
        campaign_id=campaign_id,
        lead_id=lead.id,
        step_index=step.index,
        subject=rendered.subject,
        body=rendered.body,
        state=MessageState.PENDING_APPROVAL if holds else MessageState.APPROVED,
        hold_reasons=holds,
        next_attempt_at=due_at,
    )


def follow_up_draft(
    campaign: Campaign, lead: CampaignLead, sent: OutboxMessage, at: datetime, *, guardrails: Guardrails
) -> NewDraft | None:
    """Step k+1's draft, due `delay_days` after step k went out; None after the last step."""
    following = [step for step in campaign.steps if step.index == sent.step_index + 1]
    if not following:
        return None
    step = following[0]
    try:
        return draft_for_step(
            campaign_id=campaign.id,
            lead=lead,
            step=step,
            guardrails=guardrails,
            due_at=at + timedelta(days=step.delay_days),
        )
    except TemplateError:
        log.warning("step %d of campaign %d cannot be rendered for lead %d", step.index, campaign.id, lead.id)
        return None


# --- the decision inside the claim transaction (pure; runs on the database thread) --------------------------


def decide_send(
    snapshot: PacingSnapshot,
    candidates: tuple[SendCandidate, ...],
    *,
    account: Account,
    rng: random.Random,
) -> ClaimDecision:
    """Block what must never go, pick the first candidate policy and pacing allow now (with its final
    Message-ID and MIME), else say when to look again (the engine's next slot, jitter included)."""
    guardrails = account.settings.guardrails
    sender = account.email
    now = snapshot.now
    blocked: list[tuple[int, Blocked]] = []
    deferred: list[tuple[int, Deferred]] = []
    audited_deferrals: list[tuple[int, Deferred]] = []
    audit: list[AuditEntry] = []
    soonest: tuple[datetime, DeferReason, SendCandidate] | None = None

    def entry(candidate: SendCandidate, result: AuditResult, reason: str, detail: str = "") -> AuditEntry:
        message = candidate.message
        return AuditEntry(
            at=now,
            result=result,
            account_id=account.id,
            lead_id=message.lead_id,
            sender=sender,
            recipient=message.recipient,
            subject=message.subject,
            reason=reason,
            legal_basis=legal_basis_for(message.recipient),
            detail=detail,
        )

    for candidate in candidates:
        message = candidate.message
        if candidate.step is None:
            decision: Blocked | Held | Deferred | Allowed = Blocked(
                BlockReason.LEAD_STOPPED, f"the campaign no longer has step {message.step_index}"
            )
        else:
            # the store hands out a follow-up only once its due time (next_attempt_at) has passed
            previous_sent_at = (
                now - timedelta(days=candidate.step.delay_days) if message.step_index > 1 else None
            )
            decision = policy.evaluate(
                lead=candidate.lead,
                step_index=message.step_index,
                subject=message.subject,
                body=message.body,
                sender=sender,
                guardrails=guardrails,
                snapshot=snapshot,
                approved_by_user=True,  # claimable rows were approved (by the user, or needed no approval)
                lead_status=candidate.lead_status,
                previous_step_sent_at=previous_sent_at,
                step_delay_days=candidate.step.delay_days,
                queued_at=message.next_attempt_at if message.step_index > 1 else message.created_at,
            )
        if isinstance(decision, Blocked):
            blocked.append((message.id, decision))
            audit.append(entry(candidate, AuditResult.BLOCKED, decision.reason.value, decision.detail))
            continue
        if isinstance(decision, Held):
            # a consent hold outlives approval: set aside until consent is recorded, so that it cannot
            # keep the head of the queue from moving
            deferred.append((message.id, Deferred(DeferReason.CONSENT_REQUIRED, now + _SET_ASIDE)))
            audit.append(entry(candidate, AuditResult.HELD, ",".join(r.value for r in decision.reasons)))
            continue
        if isinstance(decision, Deferred):
            if deferral_changed(message, decision):
                later = decision.not_before >= pacing.FOREVER
                until = "no time yet" if later else decision.not_before.isoformat()
                audit.append(entry(candidate, AuditResult.DEFERRED, decision.reason.value, f"until {until}"))
                audited_deferrals.append((message.id, decision))
            if soonest is None or decision.not_before < soonest[0]:
                soonest = (decision.not_before, decision.reason, candidate)
            if decision.reason in _ACCOUNT_WIDE and not guardrails.use_recipient_timezone:
                break
            continue
        message_id = message.message_id or new_message_id(sender)
        try:
            mime = compose(
                OutgoingMessage(
                    sender=sender,
                    recipient=message.recipient,
                    subject=message.subject,
                    text=message.body,
                    message_id=message_id,
                    date=now,
                    sender_name=account.settings.display_name,
                    recipient_name=" ".join(
                        part for part in (candidate.lead.first_name, candidate.lead.last_name) if part
                    ),
                    in_reply_to=candidate.thread_message_ids[-1] if candidate.thread_message_ids else None,
                    references=candidate.thread_message_ids,
                )
            )
        except ComposeError as exc:
            bad = Blocked(BlockReason.INVALID_ADDRESS, str(exc))
            blocked.append((message.id, bad))
            audit.append(entry(candidate, AuditResult.BLOCKED, bad.reason.value, bad.detail))
            continue
        audit.append(entry(candidate, AuditResult.ALLOWED, "allowed", f"message_id={message_id}"))
        return ClaimDecision(
            pick=SendPick(outbox_id=message.id, message_id=message_id, mime=mime),
            blocked=tuple(blocked),
            deferred=tuple(deferred),
            audit=tuple(audit),
            audited_deferrals=tuple(audited_deferrals),
        )
    if soonest is None:
        return ClaimDecision(
            blocked=tuple(blocked),
            deferred=tuple(deferred),
            audit=tuple(audit),
            audited_deferrals=tuple(audited_deferrals),
        )
    not_before, reason, candidate = soonest
    wait_until = not_before
    if not_before < pacing.FOREVER and reason is not DeferReason.STEP_NOT_DUE:
        wait_until = max(
            not_before,
            pacing.next_send_time(
                guardrails=guardrails,
                snapshot=snapshot,
                recipient_domain=candidate.lead.domain,
                recipient_timezone=candidate.lead.timezone,
                rng=rng,
            ),
        )
    return ClaimDecision(
        wait_until=wait_until,
        wait_reason=reason,
        blocked=tuple(blocked),
        deferred=tuple(deferred),
        audit=tuple(audit),
        audited_deferrals=tuple(audited_deferrals),
    )


# --- the service --------------------------------------------------------------------------------------------


class Scheduler:
    """Owns one sending task per account. `start()` / `stop()`; `wake()` after approvals, resumes and
    settings changes; `pause()` / `resume()` per account or for all."""

    def __init__(
        self,
        *,
        store: Store,
        db: DbWorker,
        secrets: SecretStore,
        mailer_factory: MailerFactory,
        events: EventBus[SendEvent] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        options: SchedulerOptions | None = None,
        before_batch: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._before_batch = before_batch  # e.g. read the mailbox first, so fresh unsubscribes count
        self._store = store
        self._db = db
        self._secrets = secrets
        self._mailer_factory = mailer_factory
        self.events: EventBus[SendEvent] = events or EventBus()
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._options = options or SchedulerOptions()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wakes: dict[int, asyncio.Event] = {}
        self._secret_cache: dict[int, str | None] = {}
        self._mailers: dict[int, Mailer] = {}
        self._busy: set[int] = set()  # accounts with a send between claim and record
        self._stopping = False
        self._last_idle: dict[int, tuple[datetime | None, DeferReason | None]] = {}
        self._last_expiry: dict[int, datetime] = {}
        self._settling: set[int] = set()  # accounts whose campaigns may have just sent their last message

    # --- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> tuple[OutboxMessage, ...]:
        """Report messages left in doubt by an earlier run (never re-sent), then start every account's
        task. Returns the in-doubt messages."""
        self._stopping = False
        in_doubt = await self.report_in_doubt()
        for account in await self._db.call(self._store.list_accounts):
            self.ensure_account(account.id)
        return in_doubt

    def ensure_account(self, account_id: int) -> None:
        """Start the task of an account added after start()."""
        if self._stopping or account_id in self._tasks:
            return
        self._wakes[account_id] = asyncio.Event()
        self._settling.add(account_id)
        task = asyncio.get_running_loop().create_task(
            self._run_account(account_id), name=f"scheduler-account-{account_id}"
        )
        self._tasks[account_id] = task

    async def stop(self) -> None:
        """Let a send in progress finish and be recorded (up to the grace period), then cancel and await
        every task, and close the mail connections. Idempotent."""
        self._stopping = True
        for event in self._wakes.values():
            event.set()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._options.stop_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        mailers, self._mailers = list(self._mailers.values()), {}
        for mailer in mailers:
            with contextlib.suppress(Exception):
                await mailer.close()

    def wake(self, account_id: int | None = None) -> None:
        targets = self._wakes.values() if account_id is None else [self._wakes.get(account_id)]
        self._settling.update(self._wakes if account_id is None else [account_id])
        for event in targets:
            if event is not None:
                event.set()

    async def forget_account(self, account_id: int) -> None:
        """Drop the cached secret and connection (after a settings or password change) and wake it."""
        self._secret_cache.pop(account_id, None)
        await self._drop_mailer(account_id)
        self.wake(account_id)

    async def _drop_mailer(self, account_id: int) -> None:
        mailer = self._mailers.pop(account_id, None)
        if mailer is not None:
            with contextlib.suppress(Exception):
                await mailer.close()

    async def remove_account(self, account_id: int) -> None:
        """Stop an account's task (it is being deleted): cancel and await it, close its connection."""
        task = self._tasks.pop(account_id, None)
        self._wakes.pop(account_id, None)
        self._secret_cache.pop(account_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._drop_mailer(account_id)

    @property
    def running_accounts(self) -> tuple[int, ...]:
        return tuple(self._tasks)

    # --- pause / resume -----------------------------------------------------------------------------------

    async def pause(self, account_id: int | None, *, reason: str, until: datetime | None = None) -> None:
        for account in await self._accounts(account_id):
            await self._db.call(self._store.set_account_pause, account.id, reason=reason, until=until)
            await self._audit(account, AuditResult.PAUSED, reason)
            self._publish(SendEventKind.PAUSED, account.id, detail=reason, until=until)

    async def resume(self, account_id: int | None) -> None:
        for account in await self._accounts(account_id):
            if account.paused_reason == pacing.BREAKER_PAUSE_REASON:
                # the user ends the breaker's pause now: it then judges the sends from here on, instead of
                # tripping again at once on the same bounces still inside the last 24 h
                now = self._clock.now()
                await self._db.call(
                    self._store.set_account_pause, account.id, reason=account.paused_reason, until=now
                )
            else:
                await self._db.call(self._store.set_account_pause, account.id, reason=None)
            self._secret_cache.pop(account.id, None)
            await self._drop_mailer(account.id)  # it remembers a refused login: start afresh
            self._publish(SendEventKind.RESUMED, account.id)
            self.wake(account.id)

    async def _accounts(self, account_id: int | None) -> Sequence[Account]:
        if account_id is None:
            return await self._db.call(self._store.list_accounts)
        return [await self._db.call(self._store.get_account, account_id)]

    # --- in doubt -----------------------------------------------------------------------------------------

    async def report_in_doubt(self) -> tuple[OutboxMessage, ...]:
        found: list[OutboxMessage] = []
        for account in await self._db.call(self._store.list_accounts):
            rows = await self._db.call(self._store.list_in_doubt, account.id)
            for message in rows:
                if account.id in self._busy:
                    continue
                log.warning(
                    "message %d to %s (%s) is in doubt: the connection ended after it was handed over; "
                    "it is not sent again (settled from the Sent folder, or by you)",
                    message.id,
                    message.recipient,
                    message.message_id,
                )
                self._publish(
                    SendEventKind.IN_DOUBT, account.id, outbox_id=message.id, recipient=message.recipient
                )
                found.append(message)
        return tuple(found)

    # --- the per-account task -----------------------------------------------------------------------------

    async def _run_account(self, account_id: int) -> None:
        wake = self._wakes[account_id]
        while not self._stopping:
            wake.clear()
            try:
                result = await self.run_pass(account_id)
            except asyncio.CancelledError:
                raise
            except StorageError as exc:
                # disk full, read-only, locked: nothing can be claimed or recorded, so nothing goes out
                log.error("account %d: not sending until the database can be written: %s", account_id, exc)
                result = PassResult(None, self._clock.now() + timedelta(minutes=1))
            except Exception:
                # a bug: log it, look again a minute later instead of spinning
                log.exception("scheduler pass failed for account %d", account_id)
                result = PassResult(None, self._clock.now() + timedelta(minutes=1))
            if self._stopping:
                break
            if result.outcome is not None:
                continue
            await self._sleep_until(result.wait_until, wake)

    async def _sleep_until(self, moment: datetime | None, wake: asyncio.Event) -> None:
        timeout = None if moment is None else max(0.0, (moment - self._clock.now()).total_seconds())
        housekeeping = self._options.housekeeping_interval.total_seconds()
        if timeout is None or timeout > housekeeping:
            timeout = housekeeping  # else a paused or capped account would never expire stale messages
        if timeout is not None:
            timeout = real_seconds(self._clock, timeout)  # a demo clock runs faster than real time
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=timeout)

    async def drain(self, account_id: int | None = None, *, max_passes: int | None = None) -> int:
        """Send, in this task, everything that is due now (for `cadence run --once` and tests); returns how
        many passes claimed a message. Stops at the first pass that finds nothing due now."""
        claimed = 0
        accounts = [a.id for a in await self._accounts(account_id)]
        for current in accounts:
            while max_passes is None or claimed < max_passes:
                result = await self.run_pass(current)
                if result.outcome is None:
                    if result.wait_until is not None and result.wait_until <= self._clock.now() + timedelta(
                        seconds=2
                    ):
                        wait_s = max(0.0, (result.wait_until - self._clock.now()).total_seconds())
                        await asyncio.sleep(real_seconds(self._clock, wait_s))
                        continue
                    break
                claimed += 1
        return claimed

    async def run_pass(self, account_id: int) -> PassResult:
        """One claim and (if something was claimed) one send, recorded."""
        account = await self._db.call(self._store.get_account, account_id)
        await self._expire_stale(account)
        secret = await self._secret(account)
        if isinstance(secret, PassResult):
            return secret
        if self._before_batch is not None:
            await self._before_batch(account_id)
        now = self._clock.now()
        decide = functools.partial(decide_send, account=account, rng=self._rng)
        self._busy.add(account_id)
        try:
            claimed = await self._db.call(
                self._store.claim_next_send,
                account_id=account_id,
                now=now,
                decide=decide,
                max_candidates=self._options.max_candidates,
            )
            if isinstance(claimed, Idle):
                return await self._idle(account, claimed, now)
            self._settling.add(account_id)
            return await self._send(account, claimed, secret)
        finally:
            self._busy.discard(account_id)

    async def _expire_stale(self, account: Account) -> None:
        """Messages that waited in the queue longer than the account's `expire_after_days` become expired
        (shown as such, audited), whatever holds the queue (caps, pauses, approval)."""
        now = self._clock.now()
        last = self._last_expiry.get(account.id)
        if last is not None and last <= now < last + _EXPIRY_EVERY:
            return
        self._last_expiry[account.id] = now
        max_age = timedelta(days=account.settings.guardrails.expire_after_days)
        expired = await self._db.call(self._store.expire_stale, account.id, now=now, max_age=max_age)
        if expired:
            self._settling.add(account.id)
        for message in expired:
            detail = f"queued since {message.created_at.isoformat()}, state was {message.state.value}"
            await self._audit(account, AuditResult.EXPIRED, "expired", message, detail=detail)
            self._publish(
                SendEventKind.BLOCKED,
                account.id,
                outbox_id=message.id,
                recipient=message.recipient,
                detail="expired: " + detail,
            )

    async def _secret(self, account: Account) -> str | PassResult | None:
        if account.id in self._secret_cache:
            return self._secret_cache[account.id]
        try:
            secret = await self._secrets.get(account.email)
        except SecretStoreError as exc:
            # often a keyring still locked at log-in: look again later rather than pause for good
            retry_at = self._clock.now() + self._options.keyring_retry
            log.warning("account %d: the password could not be read from the keyring: %s", account.id, exc)
            self._publish(
                SendEventKind.DEFERRED,
                account.id,
                detail=f"The password could not be read from the system keyring: {exc}",
                until=retry_at,
            )
            return PassResult(None, retry_at, DeferReason.BACKOFF)
        self._secret_cache[account.id] = secret
        return secret

    async def _idle(self, account: Account, idle: Idle, now: datetime) -> PassResult:
        wait_until, reason = idle.wait_until, idle.reason
        already_paused = account.paused_reason is not None and (
            account.paused_until is None or account.paused_until > now
        )
        if reason is DeferReason.BOUNCE_BREAKER and not already_paused:
            await self.pause(
                account.id,
                reason=pacing.BREAKER_PAUSE_REASON,
                until=wait_until,
            )
        due = await self._db.call(self._store.next_attempt_after, account.id, now=now)
        if due is not None and (wait_until is None or due < wait_until):
            wait_until, reason = due, DeferReason.STEP_NOT_DUE
        if wait_until is not None and wait_until >= pacing.FOREVER:
            wait_until = None
        if self._last_idle.get(account.id) != (wait_until, reason):
            self._last_idle[account.id] = (wait_until, reason)
            self._settling.add(account.id)  # e.g. the last candidates were blocked in the claim
            self._publish(
                SendEventKind.IDLE,
                account.id,
                detail=reason.value if reason else "nothing queued",
                until=wait_until,
            )
            if idle.reason in notices.DAILY_CAP_REASONS:
                await self._notify_cap_reached(account, now, idle.wait_until)
        if account.id in self._settling:
            self._settling.discard(account.id)
            await self.finish_settled_campaigns(account.id)
        return PassResult(None, wait_until, reason)

    async def _notify_cap_reached(self, account: Account, now: datetime, until: datetime | None) -> None:
        if await self._db.call(notices.claim_cap_notice, self._store, account, now=now, until=until):
            self._publish(
                SendEventKind.CAP_REACHED,
                account.id,
                detail=f"{account.email} has sent as many messages as its caps allow for today; "
                "sending resumes by itself when the cap frees up",
                until=until,
            )

    async def finish_settled_campaigns(
        self, account_id: int, *, campaign_ids: Sequence[int] | None = None
    ) -> list[Campaign]:
        """Mark finished the running campaigns whose last message settled, and say so once for each."""
        finished = await self._db.call(
            notices.finish_settled_campaigns,
            self._store,
            account_id=account_id,
            now=self._clock.now(),
            campaign_ids=campaign_ids,
        )
        for campaign in finished:
            self.events.publish(
                SendEvent(
                    kind=SendEventKind.CAMPAIGN_FINISHED,
                    account_id=account_id,
                    at=self._clock.now(),
                    detail=campaign.name,
                    campaign_id=campaign.id,
                )
            )
        return finished

    def _mailer(self, account: Account, secret: str | None) -> Mailer:
        mailer = self._mailers.get(account.id)
        if mailer is None:
            mailer = self._mailer_factory(account, secret)
            self._mailers[account.id] = mailer
        return mailer

    async def _send(self, account: Account, claim: Claim, secret: str | None) -> PassResult:
        message = claim.message
        assert message.message_id is not None
        try:
            mailer = self._mailer(account, secret)
        except Exception as exc:  # bad settings (e.g. a CA file that vanished): nothing went out
            await self._db.call(self._store.requeue_in_doubt, message.message_id, at=self._clock.now())
            await self.pause(account.id, reason=f"The account settings cannot be used: {exc}")
            return PassResult(SendOutcome.DO_NOT_RETRY)
        result = await mailer.send(sender=account.email, recipients=(message.recipient,), message=claim.mime)
        await self._record(account, claim, result)
        return PassResult(result.outcome)

    # --- recording an outcome -----------------------------------------------------------------------------

    async def _record_deferral(
        self,
        message_id: str,
        now: datetime,
        until: datetime,
        reason: DeferReason,
        error: str,
        transcript: str | None,
    ) -> None:
        """Not sent, to be tried again from `until`: no capacity used (the store keeps the Message-ID)."""
        await self._db.call(
            self._store.record_deferred,
            message_id,
            at=now,
            next_attempt_at=until,
            reason=reason,
            error=error,
            transcript=transcript,
        )

    async def _record(self, account: Account, claim: Claim, result: SendResult) -> None:
        message = claim.message
        message_id = message.message_id
        assert message_id is not None
        now = self._clock.now()
        server_words = _server_words(result)
        outcome = result.outcome
        transcript = result.transcript or None
        if outcome is SendOutcome.DELIVERED:
            follow_up = functools.partial(follow_up_draft, guardrails=account.settings.guardrails)
            _, draft_id = await self._db.call(
                self._store.record_delivered_with_follow_up,
                message_id,
                at=now,
                follow_up=follow_up,
                transcript=transcript,
            )
            # the store starts the warm-up with the account's first send (same transaction as the ledger row)
            if account.pace_factor < 1 or account.backoff_until is not None or account.consecutive_throttles:
                pace = retry.after_clean_send(
                    retry.PaceState(
                        factor=account.pace_factor, consecutive_throttles=account.consecutive_throttles
                    ),
                    config=self._options.pace_config,
                )
                await self._db.call(
                    self._store.set_account_backoff,
                    account.id,
                    until=None,
                    pace_factor=pace.factor,
                    consecutive_throttles=pace.consecutive_throttles,
                )
            await self._audit(
                account, AuditResult.SENT, "delivered", message, detail=f"message_id={message_id}"
            )
            self._publish(SendEventKind.SENT, account.id, outbox_id=message.id, recipient=message.recipient)
            if draft_id is not None:
                self._publish(
                    SendEventKind.FOLLOW_UP, account.id, outbox_id=draft_id, recipient=message.recipient
                )
            return
        if outcome is SendOutcome.IN_DOUBT:
            # it may have gone out: never sent again blindly; settled from Sent by Message-ID, or by the user
            why = server_words or "connection lost after the data"
            await self._audit(account, AuditResult.IN_DOUBT, why, message)
            self._publish(
                SendEventKind.IN_DOUBT,
                account.id,
                outbox_id=message.id,
                recipient=message.recipient,
                detail=f"not sent again: {why}",
            )
            return
        if outcome is SendOutcome.DEFERRED:
            await self._defer_for_retry(account, message, result, now, server_words, transcript)
            return
        if outcome is SendOutcome.THROTTLED:
            state = retry.after_throttle(
                retry.PaceState(
                    factor=account.pace_factor,
                    consecutive_throttles=account.consecutive_throttles,
                    backoff_until=account.backoff_until,
                ),
                now=now,
                rng=self._rng,
                retry_after_s=result.retry_after_s,
                config=self._options.pace_config,
            )
            until = state.backoff_until or now
            await self._db.call(
                self._store.set_account_backoff,
                account.id,
                until=until,
                pace_factor=state.factor,
                consecutive_throttles=state.consecutive_throttles,
            )
            await self._record_deferral(message_id, now, until, DeferReason.BACKOFF, server_words, transcript)
            await self._audit(
                account,
                AuditResult.DEFERRED,
                "throttled",
                message,
                detail=f"{server_words}; pace {state.factor:g}, backing off until {until.isoformat()}",
            )
            self._publish(
                SendEventKind.DEFERRED, account.id, outbox_id=message.id, detail=server_words, until=until
            )
            return
        if outcome is SendOutcome.QUOTA:
            until = await self._quota_frees(account, now)
            await self._record_deferral(
                message_id, now, until, DeferReason.PROVIDER_DAY, server_words, transcript
            )
            await self.pause(
                account.id,
                reason=f"Automatic pause: the provider's sending limit was reached ({server_words})",
                until=until,
            )
            return
        if outcome in _ACCOUNT_PAUSING:
            self._secret_cache.pop(account.id, None)
            await self._drop_mailer(account.id)
            await self._record_deferral(message_id, now, now, DeferReason.PAUSED, server_words, transcript)
            await self.pause(account.id, reason=f"Automatic pause: {_pause_cause(result)}: {server_words}")
            return
        if outcome is SendOutcome.RECIPIENT_DEAD:
            evidence = f"{server_words}\n\n{result.transcript}".encode()
            await self._db.call(
                self._store.add_suppression,
                message.recipient,
                reason=SuppressionReason.SMTP_REJECTED,
                now=now,
                source=f"SMTP reply to message {message_id}",
                evidence=evidence,
            )
            await self._ledger(account, message, LedgerKind.HARD_BOUNCE, now)
            await self._db.call(
                self._store.record_failed,
                message_id,
                at=now,
                error=server_words,
                transcript=transcript,
                lead_status=LeadStatus.BOUNCED,
            )
            await self._audit(
                account, AuditResult.SUPPRESSED, "recipient rejected", message, detail=server_words
            )
            self._publish(
                SendEventKind.SUPPRESSED, account.id, outbox_id=message.id, recipient=message.recipient
            )
            return
        if outcome is SendOutcome.RECIPIENT_SOFT:
            await self._ledger(account, message, LedgerKind.SOFT_BOUNCE, now)
            soft = await self._db.call(
                self._store.list_ledger,
                account_id=account.id,
                since=now - timedelta(days=7),
                kinds=[LedgerKind.SOFT_BOUNCE],
            )
            if sum(1 for row in soft if row.recipient == message.recipient.lower()) >= 3:
                await self._db.call(
                    self._store.add_suppression,
                    message.recipient,
                    reason=SuppressionReason.SOFT_BOUNCES,
                    now=now,
                    source=f"three soft bounces in 7 days, last: {server_words}",
                    evidence=server_words.encode(),
                )
                await self._db.call(
                    self._store.record_failed,
                    message_id,
                    at=now,
                    error=server_words,
                    transcript=transcript,
                    lead_status=LeadStatus.BOUNCED,
                )
                self._publish(
                    SendEventKind.SUPPRESSED, account.id, outbox_id=message.id, recipient=message.recipient
                )
            else:
                await self._defer_for_retry(account, message, result, now, server_words, transcript)
                return
            await self._audit(account, AuditResult.FAILED, "soft bounce", message, detail=server_words)
            return
        # PERMANENT: this message only
        await self._db.call(
            self._store.record_failed, message_id, at=now, error=server_words, transcript=transcript
        )
        await self._audit(account, AuditResult.FAILED, outcome.value, message, detail=server_words)
        self._publish(SendEventKind.FAILED, account.id, outbox_id=message.id, detail=server_words)

    async def _defer_for_retry(
        self,
        account: Account,
        message: OutboxMessage,
        result: SendResult,
        now: datetime,
        server_words: str,
        transcript: str | None,
    ) -> None:
        assert message.message_id is not None
        earlier = await self._db.call(
            self._store.query_audit,
            lead_id=message.lead_id,
            results=[AuditResult.DEFERRED],
            limit=None,
        )
        mine = [e.at for e in earlier if e.reason == _SMTP_TEMPORARY and message.message_id in e.detail]
        decision = retry.next_retry(
            len(mine) + 1,
            first_failure_at=min(mine, default=now),
            now=now,
            rng=self._rng,
            retry_after_s=result.retry_after_s,
            policy=self._options.retry_policy,
        )
        if isinstance(decision, retry.GiveUp):
            error = f"{decision.reason}: {server_words}"
            await self._db.call(
                self._store.record_failed, message.message_id, at=now, error=error, transcript=transcript
            )
            await self._audit(account, AuditResult.FAILED, "gave up", message, detail=error)
            self._publish(SendEventKind.FAILED, account.id, outbox_id=message.id, detail=error)
            return
        await self._record_deferral(
            message.message_id, now, decision.not_before, DeferReason.SMTP_TEMPORARY, server_words, transcript
        )
        await self._audit(
            account,
            AuditResult.DEFERRED,
            _SMTP_TEMPORARY,
            message,
            detail=f"message_id={message.message_id} {server_words}",
        )
        self._publish(
            SendEventKind.DEFERRED,
            account.id,
            outbox_id=message.id,
            detail=server_words,
            until=decision.not_before,
        )

    async def _quota_frees(self, account: Account, now: datetime) -> datetime:
        """When the provider's rolling day frees a slot: the oldest send of the last 24 h plus 24 h."""
        sends = await self._db.call(
            self._store.list_ledger,
            account_id=account.id,
            since=now - timedelta(hours=24),
            kinds=[LedgerKind.SENT],
        )
        if not sends:
            return now + self._options.quota_fallback
        return max(now + timedelta(minutes=1), min(entry.at for entry in sends) + timedelta(hours=24))

    async def _ledger(
        self, account: Account, message: OutboxMessage, kind: LedgerKind, now: datetime
    ) -> None:
        await self._db.call(
            self._store.add_ledger_entry,
            LedgerEntry(
                account_id=account.id,
                at=now,
                recipient=message.recipient,
                kind=kind,
                subject=message.subject,
                message_id=message.message_id,
            ),
        )

    async def _audit(
        self,
        account: Account,
        result: AuditResult,
        reason: str,
        message: OutboxMessage | None = None,
        *,
        detail: str = "",
    ) -> None:
        entry = AuditEntry(
            at=self._clock.now(),
            result=result,
            account_id=account.id,
            lead_id=message.lead_id if message else None,
            sender=account.email,
            recipient=message.recipient if message else "",
            subject=message.subject if message else "",
            reason=reason,
            legal_basis=legal_basis_for(message.recipient) if message else None,
            detail=detail,
        )
        await self._db.call(self._store.append_audit, [entry])

    def _publish(
        self,
        kind: SendEventKind,
        account_id: int | None,
        *,
        outbox_id: int | None = None,
        recipient: str = "",
        detail: str = "",
        until: datetime | None = None,
    ) -> None:
        self.events.publish(
            SendEvent(
                kind=kind,
                account_id=account_id,
                at=self._clock.now(),
                outbox_id=outbox_id,
                recipient=recipient,
                detail=detail,
                until=until,
            )
        )
