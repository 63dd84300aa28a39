"""DEMO DATA: an in-memory RuntimeApi for screenshots, GUI tests and trying the window without a mailbox.

Every person, company and domain here is invented (all domains end in `.example`, reserved by RFC 2606).
Nothing is stored and nothing is sent; the numbers are generated from a fixed seed so that screenshots and
tests are repeatable. The real runtime (services.runtime) implements the same protocol over SQLite and the
scheduler.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cadence.core import templates
from cadence.core import views as v
from cadence.core.connection_advice import LoginInfo, ProbeFailure, Problem, TestCredentials, TlsInfo
from cadence.core.domain_health import CheckStatus, HealthItem, HealthReport
from cadence.core.model import (
    AccountSettings,
    DeferReason,
    Guardrails,
    HoldReason,
    Lead,
    Step,
    SuppressionReason,
)
from cadence.core.oauth import AccessToken, OAuthProvider, TokenGrant
from cadence.core.ports import Clock, RuntimeListener, SecretKind, UserFacingError
from cadence.core.risk import find_risks
from cadence.services.accounts import AccountSetupService

DEMO_NOW = datetime(2026, 11, 24, 10, 42, tzinfo=UTC)  # a Tuesday morning

_FIRST = (
    "Amara",
    "Jonas",
    "Priya",
    "Mateo",
    "Hannah",
    "Kenji",
    "Sofia",
    "Liam",
    "Zanele",
    "Noah",
    "Ines",
    "Oskar",
    "Leila",
    "Tomás",
    "Greta",
    "Ravi",
    "Chloé",
    "Emeka",
    "Freya",
    "Diego",
    "Mei",
    "Arjun",
    "Elif",
    "Samuel",
    "Yara",
    "Bastian",
    "Nadia",
    "Lucas",
    "Aoife",
    "Kwame",
)
_LAST = (
    "Okafor",
    "Lindqvist",
    "Raman",
    "Alvarez",
    "Becker",
    "Tanaka",
    "Marchetti",
    "O'Brien",
    "Dlamini",
    "Fischer",
    "Duarte",
    "Nyberg",
    "Haddad",
    "Ruiz",
    "Vogel",
    "Iyer",
    "Moreau",
    "Eze",
    "Sørensen",
    "Castillo",
    "Zhang",
    "Mehta",
    "Yilmaz",
    "Adeyemi",
    "Khoury",
    "Brandt",
    "Petrova",
    "Silva",
    "Kelly",
    "Mensah",
)
_COMPANIES = (
    ("Harbor Freight Lines", "harborfreight-lines.example"),
    ("Copperleaf Logistics", "copperleaf.example"),
    ("Northgate Cold Chain", "northgate-coldchain.example"),
    ("Bluefin Couriers", "bluefin-couriers.example"),
    ("Tallpine Warehousing", "tallpine.example"),
    ("Meridian Parcel", "meridianparcel.example"),
    ("Oakridge Distribution", "oakridge-dist.example"),
    ("Saltmarsh Shipping", "saltmarsh.example"),
    ("Kestrel Fleet Services", "kestrelfleet.example"),
    ("Ironbridge Supply", "ironbridge-supply.example"),
)
_SENDER = "maya.lindgren@fieldnote-analytics.example"

_ADDRESS = re.compile(r"^[^@\s<>(),;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_HEADER_GUESSES: Mapping[str, str] = {
    "email": "email",
    "e-mail": "email",
    "email address": "email",
    "mail": "email",
    "first name": "first_name",
    "firstname": "first_name",
    "first": "first_name",
    "given name": "first_name",
    "last name": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family name": "last_name",
    "company": "company",
    "organisation": "company",
    "organization": "company",
    "account": "company",
    "timezone": "timezone",
    "time zone": "timezone",
    "tz": "timezone",
    "consent": "consent",
}
_RISK_TEXT: Mapping[HoldReason, str] = {
    HoldReason.LINK: "Contains a link: first touches with links land in spam more often, and are held",
    HoldReason.ATTACHMENT: "Mentions an attachment: held for approval",
    HoldReason.PRICE: "Mentions a price: held for approval",
    HoldReason.CONTRACT: "Mentions a contract: held for approval",
    HoldReason.MEETING: "Asks for a meeting: held for approval",
}
_RISKY_WORDS = ("free", "guarantee", "act now", "limited time", "no obligation", "winner", "100%")

STEP_ONE = Step(
    index=1,
    subject="{company} and late deliveries",
    body=(
        "Hi {first_name|there},\n\n"
        "I noticed {company} runs a sizeable regional fleet. We help logistics teams spot late deliveries "
        "two days before they happen, using the telematics data you already collect.\n\n"
        "Would a 15-minute call next week be useful?\n\n"
        "Best,\nMaya Lindgren\nFieldnote Analytics\n\n"
        'If you\'d rather not hear from me again, just reply "no thanks".'
    ),
)
STEP_TWO = Step(
    index=2,
    subject="Re: {company} and late deliveries",
    body=(
        "Hi {first_name|there},\n\nJust floating this back up. Happy to send a two-page summary instead "
        "if a call is too much.\n\nMaya"
    ),
    delay_days=3,
)
STEP_THREE = Step(
    index=3,
    subject="Closing the loop",
    body="Hi {first_name|there},\n\nI'll stop here. If timing changes, my door is open.\n\nMaya",
    delay_days=5,
)


# --- demo mailbox network: nothing leaves the process ---------------------------------------------------

DEMO_PASSWORD = "demo-app-password"  # the demo account's stored password (an in-memory "keyring")
DEMO_WRONG_PASSWORD = "wrong"  # typing this makes the demo server refuse the login
_DEMO_MX: Mapping[str, tuple[str, ...]] = {
    "fieldnote-analytics.example": ("mx1.fieldnote-analytics.example",),
    "northwind.example": ("northwind-example.mail.protection.outlook.com",),
    "harbor-labs.example": ("aspmx.l.google.com", "alt1.aspmx.l.google.com"),
}


class DemoSecrets:
    """An in-memory AccountSecretStore (demo only; the real one is the OS keyring)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, SecretKind], str] = {}

    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None:
        return self.entries.get((account.lower(), kind))

    async def set(self, account: str, secret: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.entries[(account.lower(), kind)] = secret

    async def delete(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.entries.pop((account.lower(), kind), None)

    async def delete_account(self, account: str) -> None:
        for kind in SecretKind:
            self.entries.pop((account.lower(), kind), None)


class _DemoImapSession:
    def __init__(self, sent: str) -> None:
        self._sent = sent

    async def sent_folder(self) -> str | None:
        return self._sent

    async def close(self) -> None:
        return None


class DemoProbe:
    """A ConnectionProbe over an invented network: every host resolves except names under `.invalid`
    (RFC 2606), every certificate is fine, and the login fails only for the password "wrong"."""

    def __init__(self, *, step_delay_s: float = 0.0) -> None:
        self.step_delay_s = step_delay_s

    async def _pause(self) -> None:
        await asyncio.sleep(self.step_delay_s)

    async def resolve(self, host: str, port: int) -> tuple[str, ...]:
        await self._pause()
        if host.rstrip(".").lower().endswith(".invalid") or "." not in host:
            raise ProbeFailure(Problem.HOST_NOT_FOUND, "Name or service not known")
        return (f"192.0.2.{sum(host.encode()) % 250 + 1}",)  # TEST-NET-1 (RFC 5737)

    async def connect(self, address: str, port: int) -> None:
        await self._pause()

    async def tls(
        self, *, host: str, address: str, port: int, starttls: bool, ca_file: str | None
    ) -> TlsInfo:
        await self._pause()
        return TlsInfo(version="TLSv1.3", subject=host, expires="2027-03-01")

    def _check(self, credentials: TestCredentials, password: str | None) -> None:
        if credentials.token_provider is None and not password:
            raise ProbeFailure(Problem.MISSING_SECRET)
        if password == DEMO_WRONG_PASSWORD:
            raise ProbeFailure(Problem.WRONG_PASSWORD, "535 5.7.8 Username and Password not accepted")

    async def smtp_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> LoginInfo:
        await self._pause()
        self._check(credentials, credentials.password)
        return LoginInfo(mechanism="XOAUTH2" if credentials.oauth else "PLAIN")

    async def imap_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> _DemoImapSession:
        await self._pause()
        self._check(credentials, credentials.imap_password or credentials.password)
        return _DemoImapSession("[Gmail]/Sent Mail" if "gmail" in settings.imap_host else "Sent")


async def _demo_mx(domain: str) -> tuple[str, ...]:
    return _DEMO_MX.get(domain.lower(), ())


async def _demo_health(email_or_domain: str, *, provider_key: str | None = None) -> HealthReport:
    domain = email_or_domain.rpartition("@")[2].lower()
    return HealthReport(
        domain=domain,
        items=(
            HealthItem(
                "SPF", CheckStatus.OK, f"{domain} lists its sending servers (SPF).", record="v=spf1 …"
            ),
            HealthItem(
                "DKIM",
                CheckStatus.WARNING,
                "No DKIM signature key was found for the usual selectors.",
                fix="Turn on DKIM signing in your mail provider's admin console.",
            ),
            HealthItem("DMARC", CheckStatus.OK, "A DMARC policy is published (p=quarantine)."),
        ),
    )


@dataclass(frozen=True, slots=True)
class _DemoSignIn:
    username: str
    grant: TokenGrant


class _FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


@dataclass
class _Campaign:
    summary: v.CampaignSummary


class DemoRuntime:
    """DEMO DATA ONLY. Implements cadence.core.ports.RuntimeApi in memory."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        pending: int = 37,
        paused: bool = False,
        latency_s: float = 0.0,
        seed: int = 7,
    ) -> None:
        self._clock: Clock = clock or _FixedClock(DEMO_NOW)
        self.now = self._clock.now
        self._latency_s = latency_s
        self._random = random.Random(seed)
        self._listeners: list[RuntimeListener] = []
        self._closed = False
        self._next_id = 1_000_000
        self.guardrails = Guardrails()
        self.account = v.AccountSettings(
            email=_SENDER,
            display_name="Maya Lindgren",
            smtp_host="smtp.fieldnote-analytics.example",
            imap_host="imap.fieldnote-analytics.example",
            guardrails=self.guardrails,
            account_id=1,
            has_password=True,
        )
        now = self._clock.now()
        self._pause: v.PauseState | None = None
        if paused:
            self._pause = v.PauseState(
                reason="Bounce rate 6.1 % over the last 24 h (breaker at 5 %, 33 sends)",
                since=now - timedelta(minutes=38),
                account_id=1,
                automatic=True,
                cause_persists=True,
                cause_detail="The 24 h bounce rate is still 6.1 %.",
            )
        self._rendered: dict[tuple[str, str, str, int], tuple[str, str]] = {}
        self._campaigns = self._make_campaigns(now)
        self._drafts: list[v.PendingDraft] = [self._make_draft(i, now) for i in range(pending)]
        self._suppressions: list[v.SuppressionEntry] = self._make_suppressions(now)
        self._activity: list[v.ActivityEntry] = self._make_activity(now)
        self.calls: list[str] = []  # names of mutating calls, newest last (for tests and the demo log)
        self.secrets = DemoSecrets()
        self.secrets.entries[(_SENDER, SecretKind.PASSWORD)] = DEMO_PASSWORD
        self.probe = DemoProbe(step_delay_s=latency_s / 4)
        self.account_setup = AccountSetupService(
            secrets=self.secrets,
            mx_hosts=_demo_mx,
            probe=self.probe,
            domain_health_lookup=_demo_health,
            sign_in=self._demo_sign_in,
            clock=self._clock,
        )
        self._account_removed = False
        self._in_doubt: list[v.InDoubtView] = self._make_in_doubt(now)

    # --- events ---------------------------------------------------------------------------------------

    def subscribe(self, listener: RuntimeListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: v.RuntimeEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    async def aclose(self) -> None:
        self._closed = True
        self._listeners.clear()

    async def _io(self) -> None:
        if self._closed:
            raise UserFacingError("Cadence is shutting down")
        await asyncio.sleep(self._latency_s)

    # --- demo controls (not part of RuntimeApi) -------------------------------------------------------

    def add_pending(self, count: int) -> None:
        now = self._clock.now()
        start = len(self._drafts)
        self._drafts.extend(self._make_draft(start + i, now, waiting=timedelta(0)) for i in range(count))
        self.emit(v.QueueChanged(pending=len(self._drafts)))

    def trip_breaker(self, *, persists: bool = True) -> None:
        now = self._clock.now()
        self._pause = v.PauseState(
            reason="Bounce rate 6.1 % over the last 24 h (breaker at 5 %, 33 sends)",
            since=now,
            account_id=1,
            automatic=True,
            cause_persists=persists,
            cause_detail="The 24 h bounce rate is still 6.1 %." if persists else "",
        )
        self.emit(v.Notice(v.NoticeKind.BREAKER_PAUSE, "Sending paused", self._pause.reason))
        self.emit(v.DeliverabilityChanged())
        self._emit_status()

    # --- status and deliverability --------------------------------------------------------------------

    def _status(self) -> v.StatusView:
        now = self._clock.now()
        cap = self._effective_cap()
        sent = 14
        bounce = v.RateSample(1, 31)
        if self._pause is not None:
            return v.StatusView(
                state=v.SendingState.PAUSED,
                sent_today=sent,
                cap_today=cap,
                bounce_24h=v.RateSample(2, 33),
                pending_approval=len(self._drafts),
                breaker_rate=self.guardrails.bounce_breaker_rate,
                pause_reason=self._pause.reason,
            )
        return v.StatusView(
            state=v.SendingState.SENDING,
            sent_today=sent,
            cap_today=cap,
            bounce_24h=bounce,
            pending_approval=len(self._drafts),
            breaker_rate=self.guardrails.bounce_breaker_rate,
            next_send_at=now + timedelta(minutes=4, seconds=20),
            detail="Warm-up day 6 of 14",
        )

    def _emit_status(self) -> None:
        self.emit(v.StatusChanged(self._status()))

    def _effective_cap(self) -> int:
        return min(self.guardrails.daily_cap, self.guardrails.warmup_start + 2 * self.guardrails.warmup_step)

    async def status(self) -> v.StatusView:
        await self._io()
        return self._status()

    async def deliverability(self, account_id: int | None = None) -> v.DeliverabilityView:
        await self._io()
        now = self._clock.now()
        rng = random.Random(11)
        daily: list[v.DailyCounts] = []
        for back in range(13, -1, -1):
            day = (now - timedelta(days=back)).date()
            weekend = day.weekday() >= 5
            sent = 0 if weekend else min(10 + (13 - back) * 1, 25) - rng.randint(0, 3)
            daily.append(
                v.DailyCounts(
                    day=day,
                    sent=sent,
                    bounced=0 if weekend else rng.choice((0, 0, 0, 1)),
                    replied=0 if weekend else rng.randint(0, 3),
                    unsubscribed=0 if weekend else rng.choice((0, 0, 1)),
                )
            )
        status = self._status()
        cap = self._effective_cap()
        deferred = (
            v.DeferredMessage(
                draft_id=5012,
                recipient="tomas.ruiz@meridianparcel.example",
                subject="Meridian Parcel and late deliveries",
                reason=DeferReason.SMTP_TEMPORARY,
                next_attempt=now + timedelta(minutes=17),
                detail="451 4.7.500 Server busy, try again later",
                attempts=2,
            ),
            v.DeferredMessage(
                draft_id=5019,
                recipient="greta.vogel@copperleaf.example",
                subject="Re: Copperleaf Logistics and late deliveries",
                reason=DeferReason.DOMAIN_CAP,
                next_attempt=now + timedelta(hours=1, minutes=5),
                detail="3 of 3 to copperleaf.example this hour",
            ),
            v.DeferredMessage(
                draft_id=5023,
                recipient="kenji.tanaka@saltmarsh.example",
                subject="Saltmarsh Shipping and late deliveries",
                reason=DeferReason.OUTSIDE_HOURS,
                next_attempt=now.replace(hour=8, minute=0) + timedelta(days=1),
                detail="Recipient's local time is 19:42 (Asia/Tokyo)",
            ),
        )
        return v.DeliverabilityView(
            bounce_24h=status.bounce_24h,
            bounce_7d=v.RateSample(4, 142),
            breaker_rate=self.guardrails.bounce_breaker_rate,
            breaker_min_sample=self.guardrails.bounce_breaker_min_sample,
            caps=(
                v.CapUsage(
                    "Today", status.sent_today, cap, f"warm-up day 6 · set cap {self.guardrails.daily_cap}"
                ),
                v.CapUsage("This hour", 3, self.guardrails.hourly_cap, "hourly cap"),
            ),
            domain_caps=(
                v.CapUsage("copperleaf.example", 3, 3, "per-domain cap per day"),
                v.CapUsage("harborfreight-lines.example", 2, 3),
                v.CapUsage("meridianparcel.example", 1, 3),
            ),
            warmup=v.WarmupProgress(
                enabled=self.guardrails.warmup_enabled,
                day=6,
                days_total=14,
                today_cap=cap,
                target_cap=self.guardrails.daily_cap,
            ),
            pause=self._pause,
            deferred=deferred,
            daily=tuple(daily),
            health=(
                v.HealthCheck("SPF", v.CheckState.PASS, "include:_spf.fieldnote-analytics.example"),
                v.HealthCheck("DKIM", v.CheckState.PASS, "selector s1 found"),
                v.HealthCheck("DMARC", v.CheckState.WARN, "p=none: reports only, no enforcement"),
                v.HealthCheck("MX", v.CheckState.PASS, "2 records"),
                v.HealthCheck("Opt-out line in every step", v.CheckState.PASS, "all 3 steps"),
                v.HealthCheck("Sent folder sync", v.CheckState.UNKNOWN, "not checked yet today"),
            ),
            account_email=_SENDER,
        )

    async def pause(self, account_id: int | None, *, reason: str) -> None:
        await self._io()
        self.calls.append("pause")
        self._pause = v.PauseState(
            reason=reason or "Paused by you",
            since=self._clock.now(),
            scope=v.PauseScope.ALL if account_id is None else v.PauseScope.ACCOUNT,
            account_id=account_id,
        )
        self.emit(v.DeliverabilityChanged())
        self._emit_status()

    async def resume(self, account_id: int | None) -> None:
        await self._io()
        self.calls.append("resume")
        self._pause = None
        self.emit(v.DeliverabilityChanged())
        self._emit_status()

    # --- campaigns ------------------------------------------------------------------------------------

    async def list_campaigns(self) -> list[v.CampaignSummary]:
        await self._io()
        return [c.summary for c in self._campaigns.values()]

    async def import_leads_preview(
        self, csv_bytes: bytes, *, mapping: Mapping[str, str] | None = None
    ) -> v.ImportPreview:
        await self._io()
        try:
            text = csv_bytes.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = csv_bytes.decode("latin-1")
        reader = csv.reader(io.StringIO(text))
        rows = list(reader)
        if not rows:
            raise UserFacingError("The file is empty.")
        columns = tuple(c.strip() for c in rows[0])
        if mapping is None:
            mapping = {c: _HEADER_GUESSES.get(c.lower(), f"fields.{c}") for c in columns if c}
        warnings: list[str] = []
        email_cols = [c for c, f in mapping.items() if f == "email"]
        if not email_cols:
            warnings.append("No column is mapped to Email: every row would be skipped.")
        seen: dict[str, int] = {}
        suppressed = {s.value for s in self._suppressions if not s.is_domain}
        accepted: list[Mapping[str, str]] = []
        accepted_count = 0
        skipped: list[v.SkippedRow] = []
        for line, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            raw = ",".join(row)
            if len(row) != len(columns):
                skipped.append(v.SkippedRow(line, f"{len(row)} values for {len(columns)} columns", raw))
                continue
            record: dict[str, str] = {}
            for column, cell in zip(columns, row, strict=True):
                target = mapping.get(column, "")
                if target:
                    record[target.removeprefix("fields.")] = cell.strip()
            address = record.get("email", "")
            if not address:
                skipped.append(v.SkippedRow(line, "no email address", raw))
                continue
            if not _ADDRESS.match(address):
                skipped.append(v.SkippedRow(line, f"not a valid address: {address!r}", raw))
                continue
            key = address.lower()
            if key in seen:
                skipped.append(v.SkippedRow(line, f"duplicate of line {seen[key]}", raw))
                continue
            if key in suppressed:
                skipped.append(v.SkippedRow(line, "on the suppression list", raw))
                continue
            seen[key] = line
            accepted_count += 1
            if len(accepted) < 50:
                accepted.append(record)
        cap = self._effective_cap()
        if accepted_count:
            days = -(-accepted_count // cap)
            span = "one day" if days == 1 else f"about {days} days"
            warnings.append(f"{accepted_count} leads at {cap}/day: the first step alone takes {span}.")
        return v.ImportPreview(
            columns=columns,
            mapping=dict(mapping),
            rows=tuple(accepted),
            accepted=accepted_count,
            skipped=tuple(skipped),
            warnings=tuple(warnings),
        )

    async def preview(self, step: Step, lead: Lead) -> v.RenderedPreview:
        await self._io()
        try:
            rendered = templates.render_step(step, lead=lead)
            missing = templates.missing_values(step.subject, lead=lead) + templates.missing_values(
                step.body, lead=lead
            )
        except templates.TemplateError as exc:
            raise UserFacingError(f"Step {step.index}: {exc}") from exc
        subject, body = rendered.subject, rendered.body
        warnings = [
            _RISK_TEXT.get(f.reason, f.reason.value) + f" (“{f.evidence}”)"
            for f in find_risks(subject=subject, body=body)
        ]
        lowered = f"{subject}\n{body}".lower()
        if any(word in lowered for word in _RISKY_WORDS):
            warnings.append("Spam-like wording (e.g. “free”, “guarantee”).")
        if not any(word in lowered for word in ("unsubscribe", "no thanks", "not interested", "opt out")):
            warnings.append("No opt-out line: add one sentence telling people how to stop these emails.")
        if len(subject) > 78:
            warnings.append("Subject longer than 78 characters.")
        return v.RenderedPreview(
            subject=subject,
            body=body,
            missing_fields=tuple(dict.fromkeys(missing)),
            warnings=tuple(warnings),
        )

    async def create_campaign(self, spec: v.NewCampaign) -> int:
        preview = await self.import_leads_preview(spec.csv_bytes, mapping=spec.mapping)
        if not spec.name.strip():
            raise UserFacingError("Give the campaign a name.")
        if not spec.steps:
            raise UserFacingError("A campaign needs at least one step.")
        if preview.accepted == 0:
            raise UserFacingError("No usable leads in the file.")
        self.calls.append("create_campaign")
        campaign_id = max(self._campaigns) + 1
        self._campaigns[campaign_id] = _Campaign(
            v.CampaignSummary(
                id=campaign_id,
                name=spec.name.strip(),
                status=v.CampaignStatus.RUNNING if spec.start_now else v.CampaignStatus.DRAFT,
                account_email=_SENDER,
                leads=preview.accepted,
                sent=0,
                replied=0,
                bounced=0,
                unsubscribed=0,
                held=0,
                created_at=self._clock.now(),
                steps=spec.steps,
            )
        )
        self.emit(v.CampaignsChanged(campaign_id))
        return campaign_id

    def _set_campaign_status(self, campaign_id: int, status: v.CampaignStatus) -> None:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise UserFacingError(f"Campaign {campaign_id} no longer exists.")
        if campaign.summary.status is v.CampaignStatus.FINISHED:
            raise UserFacingError(f"“{campaign.summary.name}” has finished; copy it to send again.")
        estimate = self._clock.now() + timedelta(days=9) if status is v.CampaignStatus.RUNNING else None
        campaign.summary = replace(
            campaign.summary, status=status, finish_estimate=estimate, paused_reason=None
        )
        self.emit(v.CampaignsChanged(campaign_id))

    async def start_campaign(self, campaign_id: int) -> None:
        await self._io()
        self.calls.append("start_campaign")
        self._set_campaign_status(campaign_id, v.CampaignStatus.RUNNING)

    async def pause_campaign(self, campaign_id: int) -> None:
        await self._io()
        self.calls.append("pause_campaign")
        self._set_campaign_status(campaign_id, v.CampaignStatus.PAUSED)

    async def send_test(self, step: Step, lead: Lead, *, account_id: int, to: str) -> None:
        await self._io()
        if not _ADDRESS.match(to):
            raise UserFacingError(f"{to!r} is not an email address.")
        self.calls.append("send_test")
        self._log(
            v.ActivityKind.SMTP, f"Test of step {step.index} sent to {to}", detail="250 2.0.0 OK (demo)"
        )

    # --- approval queue -------------------------------------------------------------------------------

    async def count_pending(self) -> int:
        await self._io()
        return len(self._drafts)

    async def list_pending_drafts(self, offset: int, limit: int) -> list[v.PendingDraft]:
        await self._io()
        return self._drafts[offset : offset + limit]

    def _take(self, draft_ids: Sequence[int]) -> tuple[list[v.PendingDraft], list[v.ActionFailure]]:
        wanted = set(draft_ids)
        taken = [d for d in self._drafts if d.id in wanted]
        found = {d.id for d in taken}
        failures = [v.ActionFailure(i, "no longer waiting for approval") for i in draft_ids if i not in found]
        self._drafts = [d for d in self._drafts if d.id not in wanted]
        return taken, failures

    def _after_queue_change(self, verb: str, drafts: Sequence[v.PendingDraft]) -> None:
        if len(drafts) == 1:
            self._log(v.ActivityKind.AUDIT, f"{verb} draft to {drafts[0].recipient}")
        elif drafts:
            self._log(v.ActivityKind.AUDIT, f"{verb} {len(drafts)} drafts")
        self.emit(v.QueueChanged(pending=len(self._drafts)))
        self.emit(v.CampaignsChanged(None))
        self._emit_status()

    async def approve(self, draft_ids: Sequence[int]) -> v.BulkResult:
        await self._io()
        self.calls.append("approve")
        taken, failures = self._take(draft_ids)
        self._after_queue_change("Approved", taken)
        return v.BulkResult(done=len(taken), failed=tuple(failures))

    async def reject(self, draft_ids: Sequence[int]) -> v.BulkResult:
        await self._io()
        self.calls.append("reject")
        taken, failures = self._take(draft_ids)
        self._after_queue_change("Rejected", taken)
        return v.BulkResult(done=len(taken), failed=tuple(failures))

    async def edit_and_approve(self, draft_id: int, *, subject: str, body: str) -> None:
        await self._io()
        if not subject.strip() or "\n" in subject or "\r" in subject:
            raise UserFacingError("The subject must be one non-empty line.")
        if not body.strip():
            raise UserFacingError("The message body is empty.")
        self.calls.append("edit_and_approve")
        taken, failures = self._take([draft_id])
        if failures:
            raise UserFacingError("That draft is no longer waiting for approval.")
        self._after_queue_change("Edited and approved", [replace(taken[0], subject=subject, body=body)])

    # --- suppression ----------------------------------------------------------------------------------

    def _matching_suppressions(self, query: str) -> list[v.SuppressionEntry]:
        needle = query.strip().lower()
        if not needle:
            return self._suppressions
        return [s for s in self._suppressions if needle in s.value.lower() or needle in s.reason.value]

    async def list_suppressions(self, query: str, offset: int, limit: int) -> list[v.SuppressionEntry]:
        await self._io()
        return self._matching_suppressions(query)[offset : offset + limit]

    async def count_suppressions(self, query: str) -> int:
        await self._io()
        return len(self._matching_suppressions(query))

    @staticmethod
    def _normalise(value: str) -> tuple[str, bool]:
        text = value.strip().lower()
        if "@" in text and not text.startswith("@"):
            if not _ADDRESS.match(text):
                raise UserFacingError(f"{value.strip()!r} is not an email address.")
            return text, False
        domain = text.removeprefix("@")
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
            raise UserFacingError(f"{value.strip()!r} is neither an address nor a domain.")
        return domain, True

    def _suppress(self, value: str, reason: SuppressionReason) -> bool:
        normalised, is_domain = self._normalise(value)
        if any(s.value == normalised for s in self._suppressions):
            return False
        entry = v.SuppressionEntry(
            normalised, reason, self._clock.now(), is_domain=is_domain, detail="added by you"
        )
        self._suppressions.insert(0, entry)
        return True

    async def add_suppression(self, value: str, *, reason: SuppressionReason) -> None:
        await self._io()
        self.calls.append("add_suppression")
        if not self._suppress(value, reason):
            raise UserFacingError(f"{value.strip()} is already suppressed.")
        self._log(v.ActivityKind.AUDIT, f"Suppressed {value.strip()} ({reason.value})")
        self.emit(v.SuppressionsChanged())

    async def import_suppressions(self, values: Sequence[str], *, reason: SuppressionReason) -> v.BulkResult:
        await self._io()
        self.calls.append("import_suppressions")
        done = 0
        failures: list[v.ActionFailure] = []
        for line, value in enumerate(values, start=1):
            try:
                if self._suppress(value, reason):
                    done += 1
                else:
                    failures.append(v.ActionFailure(line, f"{value.strip()}: already suppressed"))
            except UserFacingError as exc:
                failures.append(v.ActionFailure(line, str(exc)))
        self._log(v.ActivityKind.AUDIT, f"Imported {done} suppressions")
        self.emit(v.SuppressionsChanged())
        return v.BulkResult(done=done, failed=tuple(failures))

    async def remove_suppression(self, value: str) -> None:
        await self._io()
        self.calls.append("remove_suppression")
        before = len(self._suppressions)
        self._suppressions = [s for s in self._suppressions if s.value != value]
        if len(self._suppressions) == before:
            raise UserFacingError(f"{value} is not on the suppression list.")
        self._log(v.ActivityKind.AUDIT, f"Removed {value} from the suppression list")
        self.emit(v.SuppressionsChanged())

    # --- messages in doubt -----------------------------------------------------------------------------

    def _make_in_doubt(self, now: datetime) -> list[v.InDoubtView]:
        return [
            v.InDoubtView(
                id=900_001,
                recipient="jonas.weber@kestrel-logistics.example",
                subject="Quick question about your Q1 freight reporting",
                message_id="<demo-1a2b3c@fieldnote-analytics.example>",
                since=now - timedelta(hours=2, minutes=14),
                account_email=_SENDER,
            ),
            v.InDoubtView(
                id=900_002,
                recipient="amara.okafor@brightline-health.example",
                subject="Following up: dashboards for clinic managers",
                message_id="<demo-4d5e6f@fieldnote-analytics.example>",
                since=now - timedelta(minutes=41),
                account_email=_SENDER,
            ),
        ]

    async def list_in_doubt(self) -> list[v.InDoubtView]:
        await self._io()
        return list(self._in_doubt)

    async def settle_in_doubt(self, message_id: int, *, sent: bool) -> None:
        await self._io()
        found = next((m for m in self._in_doubt if m.id == message_id), None)
        if found is None:
            raise UserFacingError("That message is no longer in doubt.")
        self.calls.append("settle_in_doubt:sent" if sent else "settle_in_doubt:resend")
        self._in_doubt.remove(found)
        what = "marked as sent" if sent else "queued again with the same Message-ID"
        self._log(v.ActivityKind.AUDIT, f"In doubt: the message to {found.recipient} was {what}")
        self.emit(v.DeliverabilityChanged())
        self._emit_status()

    async def forget_person(self, address: str) -> None:
        await self._io()
        normalised, is_domain = self._normalise(address)
        if is_domain:
            raise UserFacingError("Forget works on one person's address, not a domain.")
        self.calls.append("forget_person")
        self._suppressions = [s for s in self._suppressions if s.value != normalised]
        digest = f"{abs(hash(normalised)) % 16**10:010x}"
        self._suppressions.insert(
            0,
            v.SuppressionEntry(
                f"erased:{digest}", SuppressionReason.ERASED, self._clock.now(), detail="erased"
            ),
        )
        self._drafts = [d for d in self._drafts if d.recipient != normalised]
        self._log(v.ActivityKind.AUDIT, "Erased one person's data on request (address not kept)")
        self.emit(v.SuppressionsChanged())
        self.emit(v.QueueChanged(pending=len(self._drafts)))

    # --- activity -------------------------------------------------------------------------------------

    def _matching_activity(self, activity_filter: v.ActivityFilter) -> list[v.ActivityEntry]:
        order = list(v.Severity)
        floor = order.index(activity_filter.min_severity)
        needle = activity_filter.text.strip().lower()
        return [
            e
            for e in self._activity
            if e.kind in activity_filter.kinds
            and order.index(e.severity) >= floor
            and (not needle or needle in f"{e.summary} {e.detail} {e.account_email}".lower())
        ]

    async def list_activity(
        self, activity_filter: v.ActivityFilter, offset: int, limit: int
    ) -> list[v.ActivityEntry]:
        await self._io()
        return self._matching_activity(activity_filter)[offset : offset + limit]

    async def count_activity(self, activity_filter: v.ActivityFilter) -> int:
        await self._io()
        return len(self._matching_activity(activity_filter))

    def _log(self, kind: v.ActivityKind, summary: str, *, detail: str = "") -> None:
        self._next_id += 1
        entry = v.ActivityEntry(
            self._next_id, self._clock.now(), kind, summary, account_email=_SENDER, detail=detail
        )
        self._activity.insert(0, entry)
        self.emit(v.ActivityAdded(entry))

    # --- accounts -------------------------------------------------------------------------------------

    async def list_accounts(self) -> list[v.AccountView]:
        await self._io()
        if self._account_removed:
            return []
        return [
            v.AccountView(
                id=1,
                email=self.account.email,
                display_name=self.account.display_name,
                paused_reason=self._pause.reason if self._pause else None,
                has_password=True,
            )
        ]

    async def get_account_settings(self, account_id: int) -> v.AccountSettings:
        await self._io()
        if account_id != 1 or self._account_removed:
            raise UserFacingError(f"Account {account_id} does not exist.")
        return replace(
            self.account,
            has_password=await self.secrets.get(self.account.email) is not None,
            has_oauth_sign_in=await self.secrets.get(self.account.email, kind=SecretKind.OAUTH_REFRESH_TOKEN)
            is not None,
        )

    async def save_account_settings(self, settings: v.AccountSettings, *, password: str | None = None) -> int:
        await self._io()
        if not _ADDRESS.match(settings.email):
            raise UserFacingError(f"{settings.email!r} is not an email address.")
        if not settings.smtp_host.strip():
            raise UserFacingError("The SMTP server is required.")
        self.calls.append("save_account_settings")
        email = settings.email.strip().lower()
        if password:
            await self.secrets.set(email, password)
        self.account = replace(
            settings, email=email, account_id=1, has_password=await self.secrets.get(email) is not None
        )
        self._account_removed = False
        self.guardrails = settings.guardrails
        self._log(v.ActivityKind.AUDIT, "Account settings saved")
        self._emit_status()
        self.emit(v.DeliverabilityChanged())
        return 1

    # --- connecting a mailbox (the real AccountSetupService over the demo network) ------------------------

    async def propose_account(self, email: str) -> v.AccountProposal:
        await self._io()
        return await self.account_setup.propose_account(email)

    async def test_connection(
        self,
        settings: v.AccountSettings,
        *,
        password: str | None = None,
        on_step: Callable[[v.ConnectionStepView], None] | None = None,
    ) -> v.ConnectionTestView:
        await self._io()
        self.calls.append("test_connection")
        return await self.account_setup.test_connection(settings, password=password, on_step=on_step)

    async def sign_in_oauth(self, email: str, provider: OAuthProvider) -> None:
        await self._io()
        self.calls.append("sign_in_oauth")
        await self.account_setup.sign_in_oauth(email, provider)

    async def _demo_sign_in(self, provider: OAuthProvider, email: str) -> _DemoSignIn:
        expires = self._clock.now() + timedelta(hours=1)
        token = f"demo-{provider.value}-{self._random.getrandbits(64):016x}"
        return _DemoSignIn(
            username=email,
            grant=TokenGrant(AccessToken(token + "-access", expires), refresh_token=token + "-refresh"),
        )

    async def remove_account(self, account_id: int) -> None:
        await self._io()
        if account_id != 1 or self._account_removed:
            raise UserFacingError(f"Account {account_id} no longer exists.")
        if any(c.summary.status is v.CampaignStatus.RUNNING for c in self._campaigns.values()):
            raise UserFacingError(f"{self.account.email} still sends running campaigns: pause them first.")
        self.calls.append("remove_account")
        await self.secrets.delete_account(self.account.email)
        self._account_removed = True
        self._log(v.ActivityKind.AUDIT, f"Account {self.account.email} removed with its keyring entries")
        self._emit_status()

    async def domain_health(self, email: str) -> list[v.HealthCheck]:
        await self._io()
        return await self.account_setup.domain_health(email)

    # --- generated demo data --------------------------------------------------------------------------

    def _make_campaigns(self, now: datetime) -> dict[int, _Campaign]:
        steps = (STEP_ONE, STEP_TWO, STEP_THREE)
        specs = [
            (
                1,
                "Regional fleets — Q4",
                v.CampaignStatus.RUNNING,
                312,
                148,
                17,
                4,
                6,
                12,
                now + timedelta(days=11),
            ),
            (2, "Logistics Expo follow-up", v.CampaignStatus.PAUSED, 86, 61, 9, 1, 2, 3, None),
            (3, "Cold chain operators", v.CampaignStatus.FINISHED, 120, 120, 14, 3, 4, 0, None),
            (4, "Warehouse managers pilot", v.CampaignStatus.DRAFT, 45, 0, 0, 0, 0, 0, None),
        ]
        campaigns: dict[int, _Campaign] = {}
        for cid, name, status, leads, sent, replied, bounced, unsub, held, finish in specs:
            campaigns[cid] = _Campaign(
                v.CampaignSummary(
                    id=cid,
                    name=name,
                    status=status,
                    account_email=_SENDER,
                    leads=leads,
                    sent=sent,
                    replied=replied,
                    bounced=bounced,
                    unsubscribed=unsub,
                    held=held,
                    created_at=now - timedelta(days=30 - cid * 6),
                    finish_estimate=finish,
                    steps=steps if cid != 4 else steps[:2],
                    paused_reason="Paused by you on 20 Nov" if status is v.CampaignStatus.PAUSED else None,
                )
            )
        return campaigns

    def _person(self, index: int) -> tuple[str, str, str, str]:
        first = _FIRST[index % len(_FIRST)]
        last = _LAST[(index * 7 + index // len(_FIRST)) % len(_LAST)]
        company, domain = _COMPANIES[(index * 3) % len(_COMPANIES)]
        local = (
            f"{first}.{last}".lower().replace("'", "").replace("ø", "o").replace("á", "a").replace("é", "e")
        )
        suffix = "" if index < 900 else str(index)
        return first, last, company, f"{local}{suffix}@{domain}"

    def _make_draft(self, index: int, now: datetime, *, waiting: timedelta | None = None) -> v.PendingDraft:
        first, last, company, address = self._person(index)
        step = (STEP_ONE, STEP_TWO, STEP_THREE)[0 if index % 4 else 1]
        key = (first, last, company, step.index)
        cached = self._rendered.get(key)
        if cached is None:
            message = templates.render_step(
                step, lead=Lead(email=address, first_name=first, last_name=last, company=company)
            )
            cached = self._rendered[key] = (message.subject, message.body)
        subject, body = cached
        reasons: tuple[HoldReason, ...] = (
            (HoldReason.FIRST_TOUCH,) if step.index == 1 else (HoldReason.MEETING,)
        )
        if index % 9 == 4:
            reasons = (*reasons, HoldReason.LINK)
        age = (
            waiting
            if waiting is not None
            else timedelta(minutes=13 * index + 5 if index > 2 else 26 * 60 + index)
        )
        since = now - age
        return v.PendingDraft(
            id=10_000 + index,
            campaign_id=1 if step.index == 1 else 2,
            campaign_name="Regional fleets — Q4" if step.index == 1 else "Logistics Expo follow-up",
            lead_name=f"{first} {last}",
            recipient=address,
            subject=subject,
            body=body,
            hold_reasons=reasons,
            waiting_since=since,
            step_index=step.index,
            overdue=now - since > timedelta(hours=24),
        )

    def _make_suppressions(self, now: datetime) -> list[v.SuppressionEntry]:
        rng = self._random
        reasons = (
            (SuppressionReason.HARD_BOUNCE, "5.1.1 user unknown"),
            (SuppressionReason.UNSUBSCRIBE, "replied “please remove me”"),
            (SuppressionReason.NOT_INTERESTED, "replied “not interested”"),
            (SuppressionReason.SOFT_BOUNCES, "3 × 5.2.2 mailbox full in 7 days"),
            (SuppressionReason.SMTP_REJECTED, "550 5.1.1 at RCPT"),
            (SuppressionReason.MANUAL, "added by you"),
        )
        entries = [
            v.SuppressionEntry(
                "competitor-freight.example",
                SuppressionReason.MANUAL,
                now - timedelta(days=40),
                is_domain=True,
                detail="whole domain: existing customer",
            ),
            v.SuppressionEntry(
                "erased:9f2c41d0e7",
                SuppressionReason.ERASED,
                now - timedelta(days=12),
                detail="erasure request",
            ),
        ]
        for i in range(46):
            _, _, _, address = self._person(200 + i * 7)
            reason, detail = reasons[rng.randrange(len(reasons))]
            entries.append(
                v.SuppressionEntry(address, reason, now - timedelta(hours=rng.randint(2, 900)), detail=detail)
            )
        entries.sort(key=lambda e: e.added_at, reverse=True)
        return entries

    def _make_activity(self, now: datetime) -> list[v.ActivityEntry]:
        rng = self._random
        entries: list[v.ActivityEntry] = []
        at = now
        templates: tuple[tuple[v.ActivityKind, v.Severity, str, str], ...] = (
            (v.ActivityKind.SMTP, v.Severity.INFO, "Sent step 1 to {addr}", "250 2.0.0 OK queued as {q}"),
            (v.ActivityKind.SMTP, v.Severity.INFO, "Sent step 2 to {addr}", "250 2.0.0 OK queued as {q}"),
            (
                v.ActivityKind.IMAP,
                v.Severity.INFO,
                "Reply from {addr}",
                "lead stopped; later steps cancelled",
            ),
            (
                v.ActivityKind.IMAP,
                v.Severity.WARNING,
                "Hard bounce for {addr}",
                "5.1.1 user unknown · suppressed",
            ),
            (v.ActivityKind.AUDIT, v.Severity.INFO, "Approved draft to {addr}", "first touch"),
            (v.ActivityKind.AUDIT, v.Severity.INFO, "Held draft to {addr}", "contains a link"),
            (
                v.ActivityKind.SMTP,
                v.Severity.WARNING,
                "Deferred {addr}",
                "451 4.7.500 Server busy; retry in 10 min",
            ),
            (v.ActivityKind.IMAP, v.Severity.INFO, "Inbox checked", "{n} new messages, {m} classified"),
            (v.ActivityKind.AUDIT, v.Severity.INFO, "Blocked draft to {addr}", "on the suppression list"),
            (
                v.ActivityKind.ERROR,
                v.Severity.ERROR,
                "IMAP connection dropped",
                "timeout after 60 s; reconnected",
            ),
        )
        for i in range(240):
            at -= timedelta(minutes=rng.randint(3, 47))
            kind, severity, summary, detail = templates[
                rng.choice((0, 0, 0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9))
            ]
            _, _, _, address = self._person(i * 11 + 3)
            fill = {"addr": address, "q": f"{rng.getrandbits(40):010X}", "n": str(rng.randint(1, 6))}
            fill["m"] = fill["n"]
            entries.append(
                v.ActivityEntry(
                    id=i + 1,
                    at=at,
                    kind=kind,
                    severity=severity,
                    summary=summary.format(**fill),
                    detail=detail.format(**fill),
                    account_email=_SENDER,
                )
            )
        return entries


if TYPE_CHECKING:  # the demo must keep satisfying the window's contract
    from cadence.core.ports import RuntimeApi

    _contract: RuntimeApi = DemoRuntime()
