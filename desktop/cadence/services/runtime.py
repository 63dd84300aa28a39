"""The real RuntimeApi: the window's one entry point, over the store (on its single worker thread), the
scheduler, the inbox watcher and the keyring. Views are built here; nothing the window sees is an ORM row."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import cast

from cadence.core import views as v
from cadence.core.classify import classify
from cadence.core.compose import ComposeError, OutgoingMessage, compose, new_message_id
from cadence.core.leads import LeadsFileError, parse_leads_csv
from cadence.core.model import (
    Account,
    AccountSettings,
    AuditEntry,
    AuditResult,
    CampaignStatus,
    ConnectionSecurity,
    DeferReason,
    InboundKind,
    Lead,
    LeadStatus,
    LedgerEntry,
    LedgerKind,
    MessageState,
    OutboxMessage,
    SendOutcome,
    Step,
    SuppressionReason,
)
from cadence.core.oauth import OAuthProvider, provider_for_method
from cadence.core.pacing import capacity_report, check_guardrails, warmup_cap, zone
from cadence.core.ports import (
    AccountSecretStore,
    CampaignCounts,
    Clock,
    DomainChecker,
    ImportProgress,
    MailboxConnector,
    RecordNotFound,
    RuntimeListener,
    SecretKind,
    SecretStore,
    SecretStoreError,
    StopFlag,
    Store,
    SystemClock,
    UserFacingError,
    real_seconds,
)
from cadence.core.risk import find_risks
from cadence.core.templates import TemplateError, missing_values, render_step
from cadence.services import notices
from cadence.services.accounts import AccountSetupFactory, AccountSetupService
from cadence.services.dbworker import DbWorker
from cadence.services.domain_guard import RecipientDomainGuard
from cadence.services.events import EventBus, SendEvent, SendEventKind
from cadence.services.finish_estimate import ESTIMATING, FinishEstimates
from cadence.services.in_doubt import InDoubtSettler, MailboxFirst
from cadence.services.inbox import InboxEvent, InboxEventKind, InboxWatcher
from cadence.services.inbox_effects import InboxEffects, SentFolderCopier
from cadence.services.lead_import import create_campaign_in_chunks, csv_header, remap_header
from cadence.services.scheduler import MailerFactory, Scheduler, follow_up_draft

log = logging.getLogger(__name__)

ConnectorFactory = Callable[[Account], MailboxConnector]

_LEAD_FIELD_GUESSES = {
    "email": "email",
    "e-mail": "email",
    "email address": "email",
    "first name": "first_name",
    "first_name": "first_name",
    "firstname": "first_name",
    "last name": "last_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "company": "company",
    "organization": "company",
    "timezone": "timezone",
    "time zone": "timezone",
    "consent": "consent",
}
_SEND_KIND_SEVERITY = {
    SendEventKind.FAILED: v.Severity.WARNING,
    SendEventKind.IN_DOUBT: v.Severity.WARNING,
    SendEventKind.PAUSED: v.Severity.WARNING,
    SendEventKind.SUPPRESSED: v.Severity.WARNING,
}
_AUDIT_SEVERITY = {
    AuditResult.FAILED: v.Severity.WARNING,
    AuditResult.IN_DOUBT: v.Severity.WARNING,
    AuditResult.PAUSED: v.Severity.WARNING,
    AuditResult.BLOCKED: v.Severity.WARNING,
    AuditResult.SUPPRESSED: v.Severity.WARNING,
}
_SEVERITY_ORDER = {v.Severity.INFO: 0, v.Severity.WARNING: 1, v.Severity.ERROR: 2}


def _guess_mapping(columns: Sequence[str]) -> dict[str, str]:
    return {c: _LEAD_FIELD_GUESSES.get(c.strip().lower(), f"fields.{c}") for c in columns if c}


def _remapped_csv(
    csv_bytes: bytes, mapping: Mapping[str, str] | None
) -> tuple[tuple[str, ...], dict[str, str], bytes]:
    """The columns, the mapping (given, or guessed from the column names) and the file with its header
    renamed to lead fields (what core.leads understands)."""
    columns, _delimiter, _rest = csv_header(csv_bytes)
    chosen = dict(mapping) if mapping is not None else _guess_mapping(columns)
    return columns, chosen, remap_header(csv_bytes, chosen)


class Runtime:
    """core.ports.RuntimeApi over the real services. `await start()` before use, `await aclose()` after."""

    def __init__(
        self,
        *,
        store: Store,
        secrets: SecretStore,
        mailer_factory: MailerFactory,
        connector_factory: ConnectorFactory | None = None,
        clock: Clock | None = None,
        on_close: Callable[[], None] | None = None,
        rng: random.Random | None = None,
        account_setup: AccountSetupFactory | None = None,
        scrub_after_erasure: Callable[[], None] | None = None,
        domain_checker: DomainChecker | None = None,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._mailer_factory = mailer_factory
        self._connector_factory = connector_factory
        self._clock: Clock = clock or SystemClock()
        self._on_close = on_close
        self._scrub_after_erasure = scrub_after_erasure  # app.scrub_freed_space: no bytes left behind
        self._db = DbWorker()
        self._events: EventBus[v.RuntimeEvent] = EventBus()
        self.send_events: EventBus[SendEvent] = EventBus()
        self.send_events.subscribe(self._on_send_event)
        self.scheduler = Scheduler(
            store=store,
            db=self._db,
            secrets=secrets,
            mailer_factory=mailer_factory,
            events=self.send_events,
            clock=self._clock,
            rng=rng,
            before_batch=self._before_batch,
        )
        self.watcher = InboxWatcher(
            sink=InboxEffects(store, events=self.send_events, clock=self._clock),
            classify=classify,
            on_event=self._on_inbox_event,
            clock=self._clock,
            sink_executor=self._db.executor,
        )
        self.account_setup = account_setup(store=store, db=self._db) if account_setup is not None else None
        self.sent_copier = SentFolderCopier(store=store, db=self._db, watcher=self.watcher)
        self.send_events.subscribe(self.sent_copier.on_event)
        self.mailbox_first = MailboxFirst(self.watcher, clock=self._clock)
        self.domain_guard = (
            RecipientDomainGuard(
                store=store, db_call=self._db.call, checker=domain_checker, clock=self._clock
            )
            if domain_checker is not None
            else None
        )
        self.in_doubt = InDoubtSettler(
            store=store,
            db=self._db,
            watcher=self.watcher,
            events=self.send_events,
            clock=self._clock,
            on_requeued=self.scheduler.wake,
        )
        self.estimates = FinishEstimates(
            store=store,
            db=self._db,
            clock=self._clock,
            on_ready=lambda campaign_id: self._emit(v.CampaignsChanged(campaign_id)),
        )
        self._activity_seq = 10**9  # ids of live activity entries (audit rows keep their own ids)
        self._closed = False
        self._waiting_drafts_task: asyncio.Task[None] | None = None

    # --- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.scheduler.start()
        for account in await self._db.call(self._store.list_accounts):
            await self._watch(account)
        self.in_doubt.start()
        self._waiting_drafts_task = asyncio.get_running_loop().create_task(
            self._watch_waiting_drafts(), name="waiting-drafts"
        )

    async def _watch_waiting_drafts(self) -> None:
        while True:
            try:
                await self.notify_waiting_drafts()
            except Exception:
                log.exception("the approval queue could not be checked for drafts waiting over 24 h")
            await asyncio.sleep(real_seconds(self._clock, WAITING_DRAFTS_CHECK_S))

    async def notify_waiting_drafts(self) -> int:
        """Tell the user (once per draft) about drafts waiting for approval more than 24 h; returns how
        many were newly over. Runs at start and every few minutes."""
        newly = await self._db.call(notices.claim_waiting_drafts_notice, self._store, now=self._clock.now())
        if newly:
            self.send_events.publish(
                SendEvent(
                    kind=SendEventKind.DRAFTS_WAITING,
                    account_id=None,
                    at=self._clock.now(),
                    detail=f"{newly:,} draft(s) have waited more than 24 hours for your approval.",
                )
            )
        return newly

    async def _before_batch(self, account_id: int) -> None:
        await self.mailbox_first(account_id)
        if self.domain_guard is not None:
            await self.domain_guard(account_id)

    async def _watch(self, account: Account) -> None:
        """(Re)start reading the account's inbox. Settings the connector cannot use (an OAuth client that is
        not configured, say) are reported in the activity log instead of stopping the app."""
        if self._connector_factory is None or not account.settings.imap_host:
            return
        try:
            connector = self._connector_factory(account)
        except Exception as exc:
            log.warning("account %d: the inbox cannot be read: %s", account.id, exc)
            self._activity_seq += 1
            self._emit(
                v.ActivityAdded(
                    v.ActivityEntry(
                        id=self._activity_seq,
                        at=self._clock.now(),
                        kind=v.ActivityKind.IMAP,
                        summary=f"The inbox of {account.email} cannot be read: {exc}",
                        severity=v.Severity.ERROR,
                    )
                )
            )
            return
        await self.watcher.start(account.id, connector)

    def subscribe(self, listener: RuntimeListener) -> Callable[[], None]:
        return self._events.subscribe(listener)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._waiting_drafts_task is not None:
            self._waiting_drafts_task.cancel()
            await asyncio.gather(self._waiting_drafts_task, return_exceptions=True)
        await self.estimates.aclose()
        await self.scheduler.stop()
        await self.in_doubt.aclose()
        await self.sent_copier.aclose()
        await self.watcher.stop()
        self._db.shutdown()
        if self._on_close is not None:
            self._on_close()

    def _emit(self, event: v.RuntimeEvent) -> None:
        self._events.publish(event)

    def _on_send_event(self, event: SendEvent) -> None:
        if event.kind is SendEventKind.IDLE:
            return
        self._activity_seq += 1
        summary = event.kind.value.replace("_", " ")
        if event.recipient:
            summary += f" — {event.recipient}"
        if event.detail:
            summary += f": {event.detail}"
        self._emit(
            v.ActivityAdded(
                v.ActivityEntry(
                    id=self._activity_seq,
                    at=event.at,
                    kind=v.ActivityKind.SMTP
                    if event.kind is not SendEventKind.INBOX
                    else v.ActivityKind.IMAP,
                    summary=summary,
                    severity=_SEND_KIND_SEVERITY.get(event.kind, v.Severity.INFO),
                )
            )
        )
        self._emit(v.DeliverabilityChanged())
        self._emit(v.CampaignsChanged())
        notice = _notice_for(event)
        if notice is not None:
            self._emit(notice)
        if event.kind in (SendEventKind.SUPPRESSED, SendEventKind.INBOX):
            self._emit(v.SuppressionsChanged())

    def _on_inbox_event(self, event: InboxEvent) -> None:
        self.mailbox_first.on_inbox_event(event)
        self.sent_copier.on_inbox_event(event)  # missing copies in Sent are caught up on each connection
        if event.kind is InboxEventKind.ERROR:
            self._activity_seq += 1
            self._emit(
                v.ActivityAdded(
                    v.ActivityEntry(
                        id=self._activity_seq,
                        at=self._clock.now(),
                        kind=v.ActivityKind.IMAP,
                        summary=event.message,
                        severity=v.Severity.ERROR if event.needs_user else v.Severity.WARNING,
                    )
                )
            )

    # --- status and deliverability ----------------------------------------------------------------------

    async def status(self) -> v.StatusView:
        return await self._db.call(self._status_sync)

    def _status_sync(self) -> v.StatusView:
        now = self._clock.now()
        accounts = self._store.list_accounts()
        pending = self._store.count_messages().get(MessageState.PENDING_APPROVAL, 0)
        if not accounts:
            return v.StatusView(
                state=v.SendingState.NO_ACCOUNT,
                sent_today=0,
                cap_today=0,
                bounce_24h=v.RateSample(0, 0),
                pending_approval=pending,
                detail="Add a sending account to start.",
            )
        sent = cap = bounces = sample = 0
        next_slot: datetime | None = None
        pause_reason: str | None = None
        capped = True
        for account in accounts:
            report = capacity_report(
                guardrails=account.settings.guardrails, snapshot=self._store.snapshot(account.id, now=now)
            )
            sent += report.daily.used
            cap += report.effective_daily_cap
            bounces += report.breaker.hard_bounces_24h
            sample += report.breaker.sends_24h
            if _is_paused(account, now):
                pause_reason = pause_reason or account.paused_reason
            if report.next_slot is not None and (next_slot is None or report.next_slot < next_slot):
                next_slot = report.next_slot
            capped = capped and report.daily.limit is not None and report.daily.used >= report.daily.limit
        due_now = False
        due_later: datetime | None = None
        for account in accounts:
            for message in self._store.list_messages(states=_CLAIMABLE, account_id=account.id):
                if message.next_attempt_at is None or message.next_attempt_at <= now:
                    due_now = True
                    break
            due = self._store.next_attempt_after(account.id, now=now)
            if due is not None and (due_later is None or due < due_later):
                due_later = due
        if not due_now and next_slot is not None:
            next_slot = max(next_slot, due_later) if due_later is not None else None
        open_count = sum(
            n
            for state, n in self._store.count_messages().items()
            if state
            in (MessageState.APPROVED, MessageState.QUEUED, MessageState.DEFERRED, MessageState.SENDING)
        )
        if pause_reason is not None and all(_is_paused(a, now) for a in accounts):
            state = v.SendingState.PAUSED
        elif capped:
            state = v.SendingState.CAP_REACHED
        elif open_count:
            state = v.SendingState.SENDING
        else:
            state = v.SendingState.IDLE
        return v.StatusView(
            state=state,
            sent_today=sent,
            cap_today=cap,
            bounce_24h=v.RateSample(bounces, sample),
            pending_approval=pending,
            next_send_at=next_slot if open_count else None,
            pause_reason=pause_reason,
            detail=f"{open_count} message(s) queued",
        )

    async def deliverability(self, account_id: int | None = None) -> v.DeliverabilityView:
        return await self._db.call(self._deliverability_sync, account_id)

    def _deliverability_sync(self, account_id: int | None) -> v.DeliverabilityView:
        now = self._clock.now()
        accounts = self._store.list_accounts()
        if not accounts:
            return v.DeliverabilityView(
                bounce_24h=v.RateSample(0, 0),
                bounce_7d=v.RateSample(0, 0),
                breaker_rate=0.05,
                breaker_min_sample=20,
                caps=(v.CapUsage("Today", 0, 0), v.CapUsage("This hour", 0, 0)),
                domain_caps=(),
                warmup=v.WarmupProgress(False, 0, 0, 0, 0),
                pause=None,
                deferred=(),
                daily=(),
                health=(),
            )
        account = next((a for a in accounts if a.id == account_id), accounts[0])
        guardrails = account.settings.guardrails
        report = capacity_report(guardrails=guardrails, snapshot=self._store.snapshot(account.id, now=now))
        week = self._store.list_ledger(account_id=account.id, since=now - timedelta(days=14))
        last_7 = [e for e in week if e.at >= now - timedelta(days=7)]
        sends_7 = sum(1 for e in last_7 if e.kind is LedgerKind.SENT and not e.manual)
        bounces_7 = sum(1 for e in last_7 if e.kind is LedgerKind.HARD_BOUNCE)
        daily = self._daily_counts(account.id, ledger=week, now=now, timezone=guardrails.timezone)
        started = account.warmup_started_at or now
        day_number = max(0, (now - started).days)
        today_cap = warmup_cap(guardrails, days_since_start=day_number) or guardrails.daily_cap
        days_total = 0
        if guardrails.warmup_enabled and guardrails.warmup_step > 0:
            steps_needed = max(
                0, -(-(guardrails.daily_cap - guardrails.warmup_start) // guardrails.warmup_step)
            )
            days_total = steps_needed * guardrails.warmup_every_days
        pause = None
        if _is_paused(account, now):
            pause = v.PauseState(
                reason=account.paused_reason or "",
                since=now,
                account_id=account.id,
                automatic=(account.paused_reason or "").startswith("Automatic"),
                cause_persists=report.breaker.tripped,
                until=account.paused_until,
            )
        deferred = tuple(
            v.DeferredMessage(
                draft_id=m.id,
                recipient=m.recipient,
                subject=m.subject,
                reason=m.defer_reason or report.next_slot_reason or _DEFAULT_DEFER,
                next_attempt=m.next_attempt_at or now,
                detail=m.last_error or "",
                attempts=m.attempts,
            )
            for m in self._store.list_messages(
                states=[MessageState.DEFERRED], account_id=account.id, limit=200
            )
        )
        return v.DeliverabilityView(
            bounce_24h=v.RateSample(report.breaker.hard_bounces_24h, report.breaker.sends_24h),
            bounce_7d=v.RateSample(bounces_7, sends_7),
            breaker_rate=guardrails.bounce_breaker_rate,
            breaker_min_sample=guardrails.bounce_breaker_min_sample,
            caps=(
                v.CapUsage("Today", report.daily.used, report.effective_daily_cap),
                v.CapUsage("This hour", report.hourly.used, report.hourly.limit or 0),
            ),
            domain_caps=tuple(
                v.CapUsage(domain, used, guardrails.domain_cap) for domain, used in report.busiest_domains
            ),
            warmup=v.WarmupProgress(
                enabled=guardrails.warmup_enabled,
                day=day_number + 1,
                days_total=days_total,
                today_cap=min(today_cap, guardrails.daily_cap),
                target_cap=guardrails.daily_cap,
            ),
            pause=pause,
            deferred=deferred,
            daily=tuple(daily),
            health=(v.HealthCheck("DNS checks", v.CheckState.UNKNOWN, "Not checked yet"),),
            account_email=account.email,
        )

    def _daily_counts(
        self, account_id: int, *, ledger: Sequence[LedgerEntry], now: datetime, timezone: str
    ) -> tuple[v.DailyCounts, ...]:
        """The chart's last CHART_DAYS local days (the account's time zone): sends and hard bounces from the
        ledger, replies and opt-outs (unsubscribe, not interested) from the inbound events."""
        tz = zone(timezone)
        today = now.astimezone(tz).date()
        first_day = today - timedelta(days=CHART_DAYS - 1)
        sent: dict[date, int] = {}
        bounced: dict[date, int] = {}
        for entry in ledger:
            day = entry.at.astimezone(tz).date()
            if entry.kind is LedgerKind.SENT and not entry.manual:
                sent[day] = sent.get(day, 0) + 1
            elif entry.kind is LedgerKind.HARD_BOUNCE:
                bounced[day] = bounced.get(day, 0) + 1
        inbound = self._store.count_inbound_by_day(
            account_id, first_day=first_day, last_day=today, timezone=timezone
        )
        days = []
        for offset in range(CHART_DAYS):
            day = first_day + timedelta(days=offset)
            kinds = inbound.get(day, {})
            days.append(
                v.DailyCounts(
                    day=day,
                    sent=sent.get(day, 0),
                    bounced=bounced.get(day, 0),
                    replied=kinds.get(InboundKind.REPLY, 0),
                    unsubscribed=sum(kinds.get(kind, 0) for kind in _OPT_OUTS),
                )
            )
        return tuple(days)

    async def pause(self, account_id: int | None, *, reason: str) -> None:
        await self._known_account(account_id)
        await self.scheduler.pause(account_id, reason=reason)
        self._emit(v.StatusChanged(await self.status()))

    async def resume(self, account_id: int | None) -> None:
        await self._known_account(account_id)
        await self.scheduler.resume(account_id)
        self._emit(v.StatusChanged(await self.status()))

    async def _known_account(self, account_id: int | None) -> None:
        if account_id is None:
            return
        try:
            await self._db.call(self._store.get_account, account_id)
        except RecordNotFound:
            raise UserFacingError(f"Account {account_id} no longer exists.") from None

    # --- campaigns --------------------------------------------------------------------------------------

    async def list_campaigns(self) -> list[v.CampaignSummary]:
        listed = await self._db.call(self._campaigns_sync)
        summaries = [self._with_estimate(summary, fingerprint) for summary, fingerprint in listed]
        pending = self.estimates.pending()
        if pending and any(summary.finish_note == ESTIMATING for summary in summaries):
            # small campaigns are planned in a blink: show their date rather than "estimating…"
            await asyncio.wait(pending, timeout=ESTIMATE_WAIT_S)
            summaries = [self._with_estimate(summary, fingerprint) for summary, fingerprint in listed]
        return summaries

    def _with_estimate(self, summary: v.CampaignSummary, fingerprint: Hashable) -> v.CampaignSummary:
        """The campaign with its finish date from core.planner (cached; planned in the background)."""
        if summary.status is not v.CampaignStatus.RUNNING:
            return summary
        estimate = self.estimates.lookup(summary.id, fingerprint=fingerprint)
        if estimate is None:
            return replace(summary, finish_note=ESTIMATING)
        return replace(summary, finish_estimate=estimate.finish, finish_note=estimate.note)

    def _campaigns_sync(self) -> list[tuple[v.CampaignSummary, Hashable]]:
        accounts = self._store.list_accounts()
        emails = {a.id: a.email for a in accounts}
        summaries: list[tuple[v.CampaignSummary, Hashable]] = []
        counts = self._store.count_by_campaign()
        campaigns = self._store.list_campaigns()
        # what the estimate depends on: the account's settings and state, everything its campaigns sent
        account_state: dict[int, Hashable] = {
            a.id: (
                a.settings.guardrails,
                a.paused_reason,
                a.paused_until,
                a.backoff_until,
                a.pace_factor,
                a.warmup_started_at,
                tuple(
                    sorted(
                        (c.id, state.value, n)
                        for c in campaigns
                        if c.account_id == a.id
                        for state, n in counts.get(c.id, _NO_COUNTS).messages.items()
                    )
                ),
            )
            for a in accounts
        }
        for campaign in campaigns:
            tally = counts.get(campaign.id, _NO_COUNTS)
            leads = tally.leads
            states = tally.messages
            fingerprint = (
                campaign.status,
                campaign.steps,
                tuple(sorted((state.value, due) for state, due in tally.latest_due.items())),
                tuple(sorted((status.value, n) for status, n in leads.items())),
                account_state.get(campaign.account_id),
            )
            status = {
                CampaignStatus.ACTIVE: v.CampaignStatus.RUNNING,
                CampaignStatus.PAUSED: v.CampaignStatus.PAUSED,
                CampaignStatus.FINISHED: v.CampaignStatus.FINISHED,
            }[campaign.status]
            if campaign.status is CampaignStatus.PAUSED and not states.get(MessageState.SENT):
                status = v.CampaignStatus.DRAFT
            summary = v.CampaignSummary(
                id=campaign.id,
                name=campaign.name,
                status=status,
                account_email=emails.get(campaign.account_id, ""),
                leads=sum(leads.values()),
                sent=states.get(MessageState.SENT, 0),
                replied=leads.get(LeadStatus.REPLIED, 0),
                bounced=leads.get(LeadStatus.BOUNCED, 0),
                unsubscribed=leads.get(LeadStatus.UNSUBSCRIBED, 0),
                held=states.get(MessageState.PENDING_APPROVAL, 0),
                created_at=campaign.created_at,
                steps=campaign.steps,
            )
            summaries.append((summary, fingerprint))
        return summaries

    async def import_leads_preview(
        self, csv_bytes: bytes, *, mapping: Mapping[str, str] | None = None
    ) -> v.ImportPreview:
        return await asyncio.to_thread(self._preview_sync, csv_bytes, mapping)

    def _preview_sync(self, csv_bytes: bytes, mapping: Mapping[str, str] | None) -> v.ImportPreview:
        columns, chosen, remapped = _remapped_csv(csv_bytes, mapping)
        warnings: list[str] = []
        if "email" not in chosen.values():
            warnings.append("No column is mapped to Email: every row would be skipped.")
            return v.ImportPreview(columns, chosen, (), 0, (), tuple(warnings))
        try:
            parsed = parse_leads_csv(remapped)
        except LeadsFileError as exc:
            raise UserFacingError(str(exc)) from exc
        rows = tuple(
            {
                "email": lead.email,
                "first_name": lead.first_name,
                "last_name": lead.last_name,
                "company": lead.company,
                **dict(lead.fields),
            }
            for lead in parsed.leads[:50]
        )
        skipped = tuple(v.SkippedRow(p.line, p.message, p.email or "") for p in parsed.problems)
        return v.ImportPreview(columns, chosen, rows, len(parsed.leads), skipped, tuple(warnings))

    async def preview(self, step: Step, lead: Lead) -> v.RenderedPreview:
        try:
            rendered = render_step(step, lead=lead)
            missing = missing_values(step.subject, lead=lead) + missing_values(step.body, lead=lead)
        except TemplateError as exc:
            raise UserFacingError(f"Step {step.index}: {exc}") from exc
        warnings = tuple(
            f"{finding.reason.value}: “{finding.evidence}”"
            for finding in find_risks(subject=rendered.subject, body=rendered.body)
        )
        return v.RenderedPreview(
            subject=rendered.subject,
            body=rendered.body,
            missing_fields=tuple(dict.fromkeys(missing)),
            warnings=warnings,
        )

    async def create_campaign_with_progress(
        self, spec: v.NewCampaign, *, on_progress: Callable[[ImportProgress], None], stop: StopFlag
    ) -> int:
        """The new-campaign dialog's path: written in batches with progress, and the user may stop it
        (core.ports.ProgressiveCampaignCreator)."""
        try:
            campaign_id = await create_campaign_in_chunks(
                spec, store=self._store, db=self._db, clock=self._clock, on_progress=on_progress, stop=stop
            )
        finally:
            self._emit(v.CampaignsChanged())
        self._emit(v.QueueChanged(await self.count_pending()))
        self.scheduler.wake(spec.account_id)
        return campaign_id

    async def create_campaign(self, spec: v.NewCampaign) -> int:
        """The same import as create_campaign_with_progress (parsed off the loop, written in chunks while
        the next chunk's drafts are rendered), without progress reports or a way to stop it. Without a
        mapping, the columns are mapped by their names."""
        if cast(Mapping[str, str] | None, spec.mapping) is None:
            columns = (await asyncio.to_thread(csv_header, spec.csv_bytes))[0]
            spec = replace(spec, mapping=_guess_mapping(columns))
        campaign_id = await create_campaign_in_chunks(spec, store=self._store, db=self._db, clock=self._clock)
        self._emit(v.CampaignsChanged(campaign_id))
        self._emit(v.QueueChanged(await self.count_pending()))
        self.scheduler.wake(spec.account_id)
        return campaign_id

    async def start_campaign(self, campaign_id: int) -> None:
        await self._set_campaign(campaign_id, CampaignStatus.ACTIVE)

    async def pause_campaign(self, campaign_id: int) -> None:
        await self._set_campaign(campaign_id, CampaignStatus.PAUSED)

    async def _set_campaign(self, campaign_id: int, status: CampaignStatus) -> None:
        try:
            campaign = await self._db.call(self._store.get_campaign, campaign_id)
        except RecordNotFound:
            raise UserFacingError(f"Campaign {campaign_id} no longer exists.") from None
        if campaign.status is CampaignStatus.FINISHED:
            raise UserFacingError(f"“{campaign.name}” has finished.")
        await self._db.call(self._store.set_campaign_status, campaign_id, status=status)
        self.scheduler.wake(campaign.account_id)
        self._emit(v.CampaignsChanged(campaign_id))

    async def send_test(self, step: Step, lead: Lead, *, account_id: int, to: str) -> None:
        try:
            account = await self._db.call(self._store.get_account, account_id)
        except RecordNotFound:
            raise UserFacingError(f"Account {account_id} no longer exists.") from None
        try:
            rendered = render_step(step, lead=lead)
            mime = compose(
                OutgoingMessage(
                    sender=account.email,
                    recipient=to,
                    subject=f"[Test] {rendered.subject}",
                    text=rendered.body,
                    message_id=new_message_id(account.email),
                    date=self._clock.now(),
                    sender_name=account.settings.display_name,
                )
            )
            secret = await self._secrets.get(account.email)
            mailer = self._mailer_factory(account, secret)
        except (TemplateError, ComposeError, SecretStoreError, ValueError) as exc:
            raise UserFacingError(f"The test message was not sent: {exc}") from exc
        try:
            result = await mailer.send(sender=account.email, recipients=(to,), message=mime)
        finally:
            await mailer.close()
        await self._db.call(
            self._store.append_audit,
            [
                AuditEntry(
                    at=self._clock.now(),
                    result=AuditResult.SENT
                    if result.outcome is SendOutcome.DELIVERED
                    else AuditResult.FAILED,
                    account_id=account.id,
                    sender=account.email,
                    recipient=to,
                    subject=f"[Test] {rendered.subject}",
                    reason="test message (outside the caps)",
                    detail=result.text,
                )
            ],
        )
        if result.outcome is not SendOutcome.DELIVERED:
            raise UserFacingError(
                f"The test message was not accepted: {result.code or ''} {result.text}".strip()
            )

    # --- approval queue ---------------------------------------------------------------------------------

    async def count_pending(self) -> int:
        counts = await self._db.call(self._store.count_messages)
        return counts.get(MessageState.PENDING_APPROVAL, 0)

    async def list_pending_drafts(self, offset: int, limit: int) -> list[v.PendingDraft]:
        return await self._db.call(self._pending_sync, offset, limit)

    def _pending_sync(self, offset: int, limit: int) -> list[v.PendingDraft]:
        now = self._clock.now()
        names = {c.id: c.name for c in self._store.list_campaigns()}
        drafts = []
        messages = self._store.list_messages(
            states=[MessageState.PENDING_APPROVAL], limit=limit, offset=offset
        )
        leads = self._store.get_leads(message.lead_id for message in messages)  # one query, not one each
        for message in messages:
            enrolled = leads.get(message.lead_id)
            if enrolled is None:  # erased since the page was read
                continue
            lead = enrolled.lead
            drafts.append(
                v.PendingDraft(
                    id=message.id,
                    campaign_id=message.campaign_id,
                    campaign_name=names.get(message.campaign_id, ""),
                    lead_name=" ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email,
                    recipient=message.recipient,
                    subject=message.subject,
                    body=message.body,
                    hold_reasons=message.hold_reasons,
                    waiting_since=message.state_changed_at,
                    step_index=message.step_index,
                    overdue=now - message.state_changed_at > timedelta(hours=24),
                )
            )
        return drafts

    async def approve(self, draft_ids: Sequence[int]) -> v.BulkResult:
        outcome = await self._db.call(self._store.approve, list(draft_ids), now=self._clock.now())
        await self._audit_ids(outcome.changed, AuditResult.APPROVED, "approved")
        self.scheduler.wake()
        self._emit(v.QueueChanged(await self.count_pending()))
        return v.BulkResult(
            done=len(outcome.changed),
            failed=tuple(v.ActionFailure(i, "no longer waiting for approval") for i in outcome.skipped),
        )

    async def reject(self, draft_ids: Sequence[int]) -> v.BulkResult:
        outcome = await self._db.call(
            self._store.reject, list(draft_ids), now=self._clock.now(), reason="rejected"
        )
        await self._audit_ids(outcome.changed, AuditResult.REJECTED, "rejected")
        if outcome.changed:  # rejecting a running campaign's last draft finishes it
            for account in await self._db.call(self._store.list_accounts):
                await self.scheduler.finish_settled_campaigns(account.id)
        self._emit(v.QueueChanged(await self.count_pending()))
        return v.BulkResult(
            done=len(outcome.changed),
            failed=tuple(v.ActionFailure(i, "no longer waiting for approval") for i in outcome.skipped),
        )

    async def act_on_pending(
        self,
        selection: v.DraftSelection,
        *,
        approve: bool,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> v.BulkResult:
        """core.ports.BulkQueueActor: the queue's "select all" over every matching draft, not the loaded
        page. Each batch is one transaction on the database thread; the loop turns between batches."""
        drafts = await self._db.call(self._pending_matching, selection)
        total = len(drafts)
        done = 0
        failed: list[v.ActionFailure] = []
        ids = list(drafts)
        for start in range(0, total, BULK_BATCH):
            batch = ids[start : start + BULK_BATCH]
            now = self._clock.now()
            if approve:
                outcome = await self._db.call(self._store.approve, batch, now=now)
            else:
                outcome = await self._db.call(self._store.reject, batch, now=now, reason="rejected")
            result = AuditResult.APPROVED if approve else AuditResult.REJECTED
            entries = [
                replace(drafts[i], at=now, result=result, reason=result.value) for i in outcome.changed
            ]
            if entries:
                await self._db.call(self._store.append_audit, entries)
            done += len(outcome.changed)
            failed.extend(v.ActionFailure(i, "no longer waiting for approval") for i in outcome.skipped)
            if on_progress is not None:
                on_progress(start + len(batch), total)
        if approve and done:
            self.scheduler.wake()
        elif done:
            for account_id in {entry.account_id for entry in drafts.values() if entry.account_id is not None}:
                await self.scheduler.finish_settled_campaigns(account_id)
        self._emit(v.QueueChanged(await self.count_pending()))
        return v.BulkResult(done=done, failed=tuple(failed))

    def _pending_matching(self, selection: v.DraftSelection) -> dict[int, AuditEntry]:
        """Draft id → the audit entry its approval or rejection will write (filled in per batch)."""
        found: dict[int, AuditEntry] = {}
        offset = 0
        while True:
            page = self._store.list_messages(
                states=[MessageState.PENDING_APPROVAL],
                campaign_id=selection.campaign_id,
                limit=BULK_BATCH * 4,
                offset=offset,
            )
            for message in page:
                if selection.through_id is not None and message.id > selection.through_id:
                    return found  # ordered by id: the rest arrived after the user selected
                found[message.id] = AuditEntry(
                    at=message.state_changed_at,
                    result=AuditResult.APPROVED,
                    account_id=message.account_id,
                    lead_id=message.lead_id,
                    recipient=message.recipient,
                    subject=message.subject,
                )
            if len(page) < BULK_BATCH * 4:
                return found
            offset += len(page)

    async def edit_and_approve(self, draft_id: int, *, subject: str, body: str) -> None:
        if not subject.strip():
            raise UserFacingError("The subject is empty.")
        try:
            await self._db.call(
                self._store.edit_draft, draft_id, subject=subject, body=body, now=self._clock.now()
            )
        except RecordNotFound:
            raise UserFacingError("That draft no longer exists.") from None
        result = await self.approve([draft_id])
        if result.done != 1:
            raise UserFacingError("That draft is no longer waiting for approval.")

    async def _audit_ids(self, ids: Sequence[int], result: AuditResult, reason: str) -> None:
        def build() -> list[AuditEntry]:
            now = self._clock.now()
            entries = []
            for message in (self._store.get_message(i) for i in ids):
                entries.append(
                    AuditEntry(
                        at=now,
                        result=result,
                        account_id=message.account_id,
                        lead_id=message.lead_id,
                        recipient=message.recipient,
                        subject=message.subject,
                        reason=reason,
                    )
                )
            self._store.append_audit(entries)
            return entries

        if ids:
            await self._db.call(build)

    # --- messages in doubt ----------------------------------------------------------------------------------

    async def list_in_doubt(self) -> list[v.InDoubtView]:
        return await self._db.call(self._in_doubt_sync)

    def _in_doubt_sync(self) -> list[v.InDoubtView]:
        found: list[v.InDoubtView] = []
        for account in self._store.list_accounts():
            rows = sorted(self._store.list_in_doubt(account.id), key=lambda m: (m.state_changed_at, m.id))
            if self._sending_now(account.id) and rows:
                rows = rows[:-1]  # the newest is the one being handed over right now
            found.extend(
                v.InDoubtView(
                    id=m.id,
                    recipient=m.recipient,
                    subject=m.subject,
                    message_id=m.message_id or "",
                    since=m.state_changed_at,
                    account_email=account.email,
                )
                for m in rows
            )
        return sorted(found, key=lambda view: (view.since, view.id))

    def _sending_now(self, account_id: int) -> bool:
        # TODO(scheduler): a public Scheduler.is_sending(account_id) would replace this peek
        return account_id in self.scheduler._busy

    async def settle_in_doubt(self, message_id: int, *, sent: bool) -> None:
        message = await self._db.call(self._settle_sync, message_id, sent)
        if not sent:
            self.scheduler.wake(message.account_id)
        else:
            self.sent_copier.request_catch_up(message.account_id)  # its copy in Sent, if Cadence files it
        self._emit(v.DeliverabilityChanged())
        self._emit(v.CampaignsChanged(message.campaign_id))
        self._emit(v.StatusChanged(await self.status()))

    def _settle_sync(self, message_id: int, sent: bool) -> OutboxMessage:
        try:
            message = self._store.get_message(message_id)
        except RecordNotFound:
            raise UserFacingError("That message no longer exists.") from None
        if message.state is not MessageState.SENDING or message.message_id is None:
            raise UserFacingError(f"The message to {message.recipient} is no longer in doubt.")
        if self._sending_now(message.account_id):
            raise UserFacingError(
                f"{message.recipient}: this account is sending a message right now; try again in a moment."
            )
        now = self._clock.now()
        if sent:
            guardrails = self._store.get_account(message.account_id).settings.guardrails
            self._store.record_delivered_with_follow_up(
                message.message_id,
                at=now,
                follow_up=functools.partial(follow_up_draft, guardrails=guardrails),
            )
            result, reason = AuditResult.SENT, "in doubt: the user says it arrived"
        else:
            self._store.requeue_in_doubt(message.message_id, at=now)
            result, reason = AuditResult.APPROVED, "in doubt: the user asked to send it again"
        self._store.append_audit(
            [
                AuditEntry(
                    at=now,
                    result=result,
                    account_id=message.account_id,
                    lead_id=message.lead_id,
                    recipient=message.recipient,
                    subject=message.subject,
                    reason=reason,
                    detail=f"message_id={message.message_id}",
                )
            ]
        )
        return message

    # --- suppression ------------------------------------------------------------------------------------

    async def list_suppressions(self, query: str, offset: int, limit: int) -> list[v.SuppressionEntry]:
        rows = await self._db.call(
            self._store.list_suppressions, search=query or None, limit=limit, offset=offset
        )
        return [
            v.SuppressionEntry(
                value=f"erased:{s.value.removeprefix('sha256:')[:12]}" if s.hashed else s.value,
                reason=s.reason,
                added_at=s.created_at,
                is_domain=s.is_domain,
                detail=s.source,
                evidence_id=s.evidence_id,
            )
            for s in rows
        ]

    async def suppression_evidence(self, evidence_id: int) -> str:
        """core.ports.SuppressionEvidenceReader: the raw message or transcript, as text."""
        try:
            raw = await self._db.call(self._store.get_evidence, evidence_id)
        except RecordNotFound:
            raise UserFacingError(
                "That evidence is no longer kept (the person may have been erased)."
            ) from None
        return raw.decode("utf-8", errors="replace")

    async def count_suppressions(self, query: str) -> int:
        return len(await self._db.call(self._store.list_suppressions, search=query or None))

    @staticmethod
    def _suppression_value(value: str) -> str:
        value = value.strip().lower()
        if "@" not in value and "." in value:
            return "@" + value
        return value

    async def add_suppression(self, value: str, *, reason: SuppressionReason) -> None:
        key = self._suppression_value(value)
        now = self._clock.now()
        try:
            await self._db.call(
                self._store.add_suppression, key, reason=reason, now=now, source="added by hand"
            )
        except ValueError as exc:
            raise UserFacingError(str(exc)) from exc
        if not key.startswith("@"):
            await self._db.call(
                self._store.stop_address,
                key,
                status=LeadStatus.SUPPRESSED,
                now=now,
                reason="suppressed by hand",
            )
        self._emit(v.SuppressionsChanged())

    async def import_suppressions(self, values: Sequence[str], *, reason: SuppressionReason) -> v.BulkResult:
        done = 0
        failed: list[v.ActionFailure] = []
        for number, value in enumerate(values, start=1):
            try:
                await self._db.call(
                    self._store.add_suppression,
                    self._suppression_value(value),
                    reason=reason,
                    now=self._clock.now(),
                    source="imported",
                )
                done += 1
            except ValueError as exc:
                failed.append(v.ActionFailure(number, str(exc)))
        self._emit(v.SuppressionsChanged())
        return v.BulkResult(done=done, failed=tuple(failed))

    async def remove_suppression(self, value: str) -> None:
        try:
            removed = await self._db.call(self._store.remove_suppression, self._suppression_value(value))
        except ValueError as exc:
            raise UserFacingError(str(exc)) from exc
        if not removed:
            raise UserFacingError(f"{value} is not on the suppression list.")
        self._emit(v.SuppressionsChanged())

    async def forget_person(self, address: str) -> None:
        """GDPR erasure (store.erase_person): leads, messages and evidence go, ledger and audit rows are
        anonymised, and only a salted hash stays on the suppression list."""
        key = address.strip().lower()
        if "@" not in key or key.startswith("@"):
            raise UserFacingError(f"{address!r} is not a person's email address.")
        try:
            outcome = await self._db.call(self._store.erase_person, key, now=self._clock.now())
        except ValueError as exc:
            raise UserFacingError(f"{address} was not erased: {exc}") from exc
        log.info(
            "erased a person: %d lead(s), %d message(s) removed",
            outcome.leads_removed,
            outcome.messages_removed,
        )
        self._emit(v.SuppressionsChanged())
        self._emit(v.CampaignsChanged())
        self._emit(v.QueueChanged(await self.count_pending()))
        if self._scrub_after_erasure is not None:
            try:
                await self._db.call(self._scrub_after_erasure)
            except Exception as exc:  # the erasure itself is committed; only the wipe of free space failed
                log.warning("the space freed by an erasure could not be wiped: %s", exc)
                raise UserFacingError(
                    f"{address} was erased, but the database file could not be compacted ({exc}); "
                    "old copies may stay in its free space until the next erasure."
                ) from exc

    # --- activity -----------------------------------------------------------------------------------------

    async def _activity(self, activity_filter: v.ActivityFilter) -> list[v.ActivityEntry]:
        rows = await self._db.call(self._store.query_audit, limit=5000)
        needle = activity_filter.text.strip().lower()
        floor = _SEVERITY_ORDER[activity_filter.min_severity]
        entries = []
        if v.ActivityKind.AUDIT not in activity_filter.kinds:
            return []
        for row in rows:
            severity = _AUDIT_SEVERITY.get(row.result, v.Severity.INFO)
            if _SEVERITY_ORDER[severity] < floor:
                continue
            summary = f"{row.result.value}: {row.recipient or row.sender} — {row.reason}".strip()
            detail = " ".join(p for p in (row.subject, row.detail) if p)
            if needle and needle not in f"{summary}\n{detail}\n{row.sender}".lower():
                continue
            entries.append(
                v.ActivityEntry(
                    id=row.id or 0,
                    at=row.at,
                    kind=v.ActivityKind.AUDIT,
                    summary=summary,
                    severity=severity,
                    account_email=row.sender,
                    detail=detail,
                )
            )
        return entries

    async def list_activity(
        self, activity_filter: v.ActivityFilter, offset: int, limit: int
    ) -> list[v.ActivityEntry]:
        return (await self._activity(activity_filter))[offset : offset + limit]

    async def count_activity(self, activity_filter: v.ActivityFilter) -> int:
        return len(await self._activity(activity_filter))

    # --- accounts -------------------------------------------------------------------------------------------

    async def list_accounts(self) -> list[v.AccountView]:
        accounts = await self._db.call(self._store.list_accounts)
        result = []
        for account in accounts:
            result.append(
                v.AccountView(
                    id=account.id,
                    email=account.email,
                    display_name=account.settings.display_name,
                    paused_reason=account.paused_reason if _is_paused(account, self._clock.now()) else None,
                    has_password=await self._has_password(account.email),
                )
            )
        return result

    async def _has_password(self, email: str) -> bool:
        try:
            return bool(await self._secrets.get(email))
        except SecretStoreError:
            return False

    async def get_account_settings(self, account_id: int) -> v.AccountSettings:
        try:
            account = await self._db.call(self._store.get_account, account_id)
        except RecordNotFound:
            raise UserFacingError(f"Account {account_id} no longer exists.") from None
        s = account.settings
        return v.AccountSettings(
            email=s.email,
            display_name=s.display_name,
            smtp_host=s.smtp_host,
            smtp_port=s.smtp_port,
            smtp_tls=v.TlsMode.IMPLICIT if s.smtp_security is ConnectionSecurity.TLS else v.TlsMode.STARTTLS,
            imap_host=s.imap_host,
            imap_port=s.imap_port,
            username=s.email,
            guardrails=s.guardrails,
            account_id=account.id,
            has_password=await self._has_password(s.email),
            provider_key=s.provider_key,
            auth_method=s.auth_method,
            ca_file=s.ca_file,
            has_oauth_sign_in=await self._has_oauth_sign_in(s),
        )

    async def _has_oauth_sign_in(self, settings: AccountSettings) -> bool:
        if provider_for_method(settings.auth_method) is None:
            return False
        # OAuth accounts exist only with a keyring that keeps several kinds of secret (app.py wires one)
        secrets = cast(AccountSecretStore, self._secrets)
        try:
            return bool(await secrets.get(settings.email, kind=SecretKind.OAUTH_REFRESH_TOKEN))
        except SecretStoreError:
            return False

    async def save_account_settings(self, settings: v.AccountSettings, *, password: str | None = None) -> int:
        email = settings.email.strip().lower()
        if "@" not in email:
            raise UserFacingError(f"{settings.email!r} is not an email address.")
        if not settings.smtp_host.strip():
            raise UserFacingError("The SMTP server is missing.")
        try:
            check_guardrails(settings.guardrails)
        except ValueError as exc:
            raise UserFacingError(f"Guardrails: {exc}") from exc
        model_settings = AccountSettings(
            email=email,
            display_name=settings.display_name,
            smtp_host=settings.smtp_host.strip(),
            smtp_port=settings.smtp_port,
            smtp_security=ConnectionSecurity.TLS
            if settings.smtp_tls is v.TlsMode.IMPLICIT
            else ConnectionSecurity.STARTTLS,
            imap_host=settings.imap_host.strip(),
            imap_port=settings.imap_port,
            ca_file=(settings.ca_file or "").strip() or None,
            provider_key=settings.provider_key,
            auth_method=settings.auth_method,
            guardrails=replace(
                settings.guardrails, provider_host=settings.guardrails.provider_host or settings.smtp_host
            ),
        )
        if password is not None:
            try:
                await self._secrets.set(email, password)
            except SecretStoreError as exc:
                raise UserFacingError(str(exc)) from exc
        if settings.account_id is None:
            existing = [a for a in await self._db.call(self._store.list_accounts) if a.email == email]
            if existing:
                raise UserFacingError(f"An account {email} exists already.")
            account = await self._db.call(self._store.create_account, model_settings, now=self._clock.now())
        else:
            try:
                current = await self._db.call(self._store.get_account, settings.account_id)
            except RecordNotFound:
                raise UserFacingError("That account no longer exists.") from None
            model_settings = replace(
                model_settings,
                # None: a caller that does not know the CA file keeps it; "" clears it
                ca_file=model_settings.ca_file if settings.ca_file is not None else current.settings.ca_file,
                sent_folder_kind=current.settings.sent_folder_kind,
            )
            account = await self._db.call(
                self._store.update_account, settings.account_id, settings=model_settings
            )
        await self.scheduler.forget_account(account.id)
        self.scheduler.ensure_account(account.id)
        await self._watch(account)
        self._emit(v.StatusChanged(await self.status()))
        return account.id

    # --- connecting a mailbox (services.accounts.AccountSetupService, built by the composition root) --------

    def _setup(self) -> AccountSetupService:
        if self.account_setup is None:
            raise UserFacingError("Setting up accounts is not available in this session.")
        return self.account_setup

    async def propose_account(self, email: str) -> v.AccountProposal:
        return await self._setup().propose_account(email)

    async def test_connection(
        self,
        settings: v.AccountSettings,
        *,
        password: str | None = None,
        on_step: Callable[[v.ConnectionStepView], None] | None = None,
    ) -> v.ConnectionTestView:
        return await self._setup().test_connection(settings, password=password, on_step=on_step)

    async def sign_in_oauth(self, email: str, provider: OAuthProvider) -> None:
        await self._setup().sign_in_oauth(email, provider)
        for account in await self._db.call(self._store.list_accounts):
            if account.email == email.strip().lower():
                await self.scheduler.forget_account(account.id)
                self.scheduler.ensure_account(account.id)
                await self._watch(account)

    async def remove_account(self, account_id: int) -> None:
        await self.scheduler.remove_account(account_id)
        await self.watcher.stop(account_id)
        await self._setup().remove_account(account_id)
        self._emit(v.StatusChanged(await self.status()))
        self._emit(v.CampaignsChanged())

    async def domain_health(self, email: str) -> list[v.HealthCheck]:
        return await self._setup().domain_health(email)


_DEFAULT_DEFER = DeferReason.SMTP_TEMPORARY
WAITING_DRAFTS_CHECK_S = 600.0
CHART_DAYS = 14
_OPT_OUTS = (InboundKind.UNSUBSCRIBE, InboundKind.NOT_INTERESTED)
ESTIMATE_WAIT_S = 0.25  # list_campaigns waits this long for finish estimates before saying "estimating…"
BULK_BATCH = 500  # drafts approved or rejected per transaction by act_on_pending


def _notice_for(event: SendEvent) -> v.Notice | None:
    """The tray notification a send event deserves, if any (each such event is published once)."""
    if event.kind is SendEventKind.PAUSED and event.detail.startswith("Automatic pause"):
        if "login" in event.detail:
            return v.Notice(v.NoticeKind.AUTH_FAILURE, "Login refused", event.detail, v.Severity.ERROR)
        if "bounce breaker" in event.detail:
            return v.Notice(v.NoticeKind.BREAKER_PAUSE, "Paused: too many bounces", event.detail)
        if "certificate" in event.detail:  # the server's TLS certificate changed: the user must look
            title = "Paused: certificate not accepted"
            return v.Notice(v.NoticeKind.PROVIDER_BLOCK, title, event.detail, v.Severity.ERROR)
        return v.Notice(v.NoticeKind.PROVIDER_BLOCK, "Paused by the provider", event.detail)
    if event.kind is SendEventKind.CAP_REACHED:
        return v.Notice(v.NoticeKind.CAP_REACHED, "Daily cap reached", event.detail, v.Severity.INFO)
    if event.kind is SendEventKind.CAMPAIGN_FINISHED:
        return v.Notice(
            v.NoticeKind.CAMPAIGN_FINISHED,
            "Campaign finished",
            f"“{event.detail}” has sent its last message.",
            v.Severity.INFO,
        )
    if event.kind is SendEventKind.DRAFTS_WAITING:
        return v.Notice(
            v.NoticeKind.DRAFTS_WAITING, "Drafts waiting for approval", event.detail, v.Severity.INFO
        )
    return None


_CLAIMABLE = (MessageState.APPROVED, MessageState.QUEUED, MessageState.DEFERRED)
_NO_COUNTS = CampaignCounts(messages={}, leads={}, latest_due={})


def _is_paused(account: Account, now: datetime) -> bool:
    return account.paused_reason is not None and (account.paused_until is None or account.paused_until > now)
