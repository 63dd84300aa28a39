"""The demo sandbox: the real Runtime (store, scheduler, inbox watcher, classifier) on a throw-away data
folder, sending through an aiosmtpd server on 127.0.0.1 (port 0) to simulated recipients whose answers
land in an in-memory mailbox the real watcher reads. The account's password lives in memory only."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, Envelope, Session

from cadence.core import views as v
from cadence.core.model import (
    Account,
    AccountSettings,
    ConnectionSecurity,
    Guardrails,
    LeadStatus,
    MessageState,
    SentFolderKind,
    Step,
)
from cadence.core.ports import Mailer
from cadence.demo.clock import ScaledClock
from cadence.demo.mailbox import INBOX, SandboxMailStore, sandbox_connector
from cadence.demo.recipients import Behaviour, react
from cadence.resources import resources_dir
from cadence.services.events import SendEvent, SendEventKind

if TYPE_CHECKING:
    from cadence.app import Opened
    from cadence.services.runtime import Runtime

log = logging.getLogger(__name__)

SANDBOX_ADDRESS = "you@sandbox.example"
SANDBOX_NAME = "Sam (demo sandbox)"
SANDBOX_PASSWORD = "sandbox-only-password"  # never stored: SandboxSecrets hands it out from memory
SANDBOX_HOST = "127.0.0.1"
MARKER = ".cadence-demo"  # a data folder with this file may be wiped at the next demo start
CAMPAIGN_NAME = "Demo: late deliveries"
HELD_FOR_APPROVAL = 5  # first-touch drafts left in the approval queue for the user to try

# A week in minutes at --speed 600: no warm-up (an established mailbox), the breaker at its usual 5 % over
# at least 20 sends, which the sample list's early hard bounces trip on the first day.
DEMO_GUARDRAILS = Guardrails(
    daily_cap=50,
    hourly_cap=8,
    min_delay_s=90.0,
    jitter_s=180.0,
    hours_start_min=8 * 60,
    hours_end_min=18 * 60,
    domain_cap=5,
    warmup_enabled=False,
    bounce_breaker_rate=0.05,
    bounce_breaker_min_sample=20,
    approve_first_touch=True,
    expire_after_days=14.0,
)


class DemoSetupError(Exception):
    """The sandbox cannot start; `str(error)` says why."""


# --- data folder and sample files ------------------------------------------------------------------------


def reset_data_dir(directory: Path) -> None:
    """Empty the demo's data folder. Refuses a folder that has files but was not made by the demo (the
    user's real data must never be wiped by a mistyped --data-dir)."""
    directory = directory.expanduser()
    if directory.exists():
        if not directory.is_dir():
            raise DemoSetupError(f"{directory} is not a folder.")
        entries = list(directory.iterdir())
        if entries and not (directory / MARKER).is_file():
            raise DemoSetupError(
                f"{directory} already holds files that the demo did not make; choose an empty folder."
            )
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / MARKER).write_text("Made by `cadence demo`: wiped at each demo start.\n", encoding="utf-8")


def sample_dir() -> Path:
    folder = resources_dir()
    if folder is None or not (folder / "demo" / "leads.csv").is_file():
        raise DemoSetupError("The demo's sample files (resources/demo) are not installed.")
    return folder / "demo"


def read_step(path: Path, *, index: int) -> Step:
    """A step file: `Subject:` and `Delay-Days:` lines, a blank line, then the body."""
    head, _, body = path.read_text(encoding="utf-8").partition("\n\n")
    headers = {}
    for line in head.splitlines():
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "subject" not in headers:
        raise DemoSetupError(f"{path.name} has no Subject: line.")
    return Step(
        index=index,
        subject=headers["subject"],
        body=body.strip() + "\n",
        delay_days=float(headers.get("delay-days", "0")),
    )


# --- secrets, SMTP server, recipients ---------------------------------------------------------------------


class SandboxSecrets:
    """core.ports.SecretStore in memory: the sandbox password, nothing on disk or in the keyring."""

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        self._secrets = dict(secrets or {})

    async def get(self, account: str) -> str | None:
        return self._secrets.get(account.lower())

    async def set(self, account: str, secret: str) -> None:
        self._secrets[account.lower()] = secret

    async def delete(self, account: str) -> None:
        self._secrets.pop(account.lower(), None)


@dataclass(frozen=True, slots=True)
class Submission:
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    at: datetime
    peer: str


class _Handler:
    def __init__(self, on_message: Callable[[Submission], None], clock: ScaledClock) -> None:
        self._on_message = on_message
        self._clock = clock

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content or "").encode("utf-8")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        self._on_message(
            Submission(
                sender=str(envelope.mail_from or ""),
                recipients=tuple(str(r).lower() for r in envelope.rcpt_tos),
                raw=raw,
                at=self._clock.now(),
                peer=peer,
            )
        )
        return "250 2.0.0 Ok: queued in the demo sandbox"


class SandboxSmtpServer:
    """aiosmtpd on 127.0.0.1, port 0, served by the running event loop (no thread)."""

    def __init__(self, on_message: Callable[[Submission], None], *, clock: ScaledClock) -> None:
        self._handler = _Handler(on_message, clock)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self._handler, hostname="smtp.sandbox.example", ident="Cadence demo sandbox"),
            host=SANDBOX_HOST,
            port=0,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@dataclass
class SimulationStats:
    submissions: int = 0
    delivered_to: Counter[str] = field(default_factory=Counter)
    answers: Counter[Behaviour] = field(default_factory=Counter)  # mail put in the INBOX, by behaviour
    peers: set[str] = field(default_factory=set)


class RecipientSimulator:
    """Receives what the SMTP server accepted; each recipient's answer is put in the INBOX after its
    simulated delay (one task waits for the earliest, on the clock's scale)."""

    def __init__(self, mail: SandboxMailStore, *, clock: ScaledClock, rng: random.Random) -> None:
        self._mail = mail
        self._clock = clock
        self._rng = rng
        self._due: list[tuple[datetime, int, Behaviour, bytes]] = []
        self._sequence = itertools.count()
        self._answered: set[str] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = SimulationStats()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="demo recipients")

    def on_submission(self, submission: Submission) -> None:
        self.stats.submissions += 1
        self.stats.peers.add(submission.peer)
        for recipient in submission.recipients:
            self.stats.delivered_to[recipient] += 1
            reaction = react(
                submission.raw,
                recipient=recipient,
                our_address=submission.sender,
                at=submission.at,
                rng=self._rng,
                already_replied=recipient in self._answered,
            )
            if reaction is None:
                continue
            if reaction.kind in (Behaviour.REPLY, Behaviour.OUT_OF_OFFICE):
                self._answered.add(recipient)
            entry = (submission.at + reaction.delay, next(self._sequence), reaction.kind, reaction.raw)
            heapq.heappush(self._due, entry)
        self._changed.set()

    @property
    def waiting(self) -> int:
        return len(self._due)

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            now = self._clock.now()
            while self._due and self._due[0][0] <= now:
                _, _, kind, raw = heapq.heappop(self._due)
                self._mail.deliver(INBOX, raw)
                self.stats.answers[kind] += 1
            timeout = None
            if self._due:
                timeout = self._clock.real_seconds((self._due[0][0] - now).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=timeout)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


# --- the whole sandbox -------------------------------------------------------------------------------------


def sandbox_mailer(account: Account, secret: str | None, *, port: int) -> Mailer:
    """Whatever the account's settings say, mail goes only to the sandbox server on loopback."""
    from cadence.adapters.smtp import SmtpMailer

    return SmtpMailer(host=SANDBOX_HOST, port=port, security="none")


@dataclass
class Sandbox:
    opened: Opened
    runtime: Runtime
    clock: ScaledClock
    mail: SandboxMailStore
    smtp: SandboxSmtpServer
    recipients: RecipientSimulator
    account_id: int
    campaign_id: int
    pauses: list[tuple[datetime, str]] = field(default_factory=list)  # (simulated time, why), e.g. breaker
    _closed: bool = False

    def close_now(self) -> None:
        """Synchronous part of closing, after the runtime has stopped (the window's on_close)."""
        if self._closed:
            return
        self._closed = True
        self.recipients.cancel()
        self.smtp.close()
        self.opened.close()

    async def aclose(self) -> None:
        await self.runtime.aclose()  # stops scheduler and watcher, then close_now via on_close
        await self.recipients.aclose()
        await self.smtp.aclose()

    async def report(self) -> DemoReport:
        runtime, store = self.runtime, self.opened.store
        status = await runtime.status()
        deliverability = await runtime.deliverability(self.account_id)
        leads = await asyncio.to_thread(store.count_leads, self.campaign_id)
        messages = await asyncio.to_thread(store.count_messages, account_id=self.account_id)
        suppressions = await asyncio.to_thread(store.list_suppressions)
        return DemoReport(
            simulated=self.clock.elapsed(),
            submissions=self.recipients.stats.submissions,
            answers=dict(self.recipients.stats.answers),
            messages={state: count for state, count in messages.items() if count},
            leads={status_: count for status_, count in leads.items() if count},
            suppressed=tuple((s.value, s.reason.value) for s in suppressions),
            bounce_24h=deliverability.bounce_24h,
            bounce_7d=deliverability.bounce_7d,
            pause=deliverability.pause.reason if deliverability.pause is not None else None,
            pauses=tuple(self.pauses),
            pending_approval=status.pending_approval,
            smtp_peers=tuple(sorted(self.recipients.stats.peers)),
        )


@dataclass(frozen=True)
class DemoReport:
    simulated: timedelta
    submissions: int
    answers: dict[Behaviour, int]
    messages: dict[MessageState, int]
    leads: dict[LeadStatus, int]
    suppressed: tuple[tuple[str, str], ...]
    bounce_24h: v.RateSample
    bounce_7d: v.RateSample
    pause: str | None
    pauses: tuple[tuple[datetime, str], ...]
    pending_approval: int
    smtp_peers: tuple[str, ...]

    def lines(self) -> list[str]:
        def rate(sample: v.RateSample) -> str:
            value = sample.rate
            shown = f"{value:.1%}" if value is not None else "n/a"
            return f"{shown} ({sample.events}/{sample.sample})"

        hours = self.simulated.total_seconds() / 3600
        out = [
            f"simulated time: {hours:.1f} h",
            f"messages accepted by the sandbox server: {self.submissions}",
            "answers delivered to the inbox: "
            + (", ".join(f"{kind.value} {n}" for kind, n in sorted(self.answers.items())) or "none"),
            "outbox: " + ", ".join(f"{state.value} {n}" for state, n in sorted(self.messages.items())),
            "leads: " + ", ".join(f"{status.value} {n}" for status, n in sorted(self.leads.items())),
            f"bounce rate: 24 h {rate(self.bounce_24h)}, 7 days {rate(self.bounce_7d)}",
            f"pending approval: {self.pending_approval}",
            f"paused now: {self.pause or 'no'}",
            f"automatic pauses during the run: {len(self.pauses)}",
            *(f"  {at:%a %H:%M} {why}" for at, why in self.pauses),
            f"suppressed ({len(self.suppressed)}):",
        ]
        out.extend(f"  {value}  {reason}" for value, reason in self.suppressed)
        out.append("SMTP clients seen: " + (", ".join(self.smtp_peers) or "none"))
        return out


async def start_sandbox(opened: Opened, *, speed: float, start: datetime, seed: int | None = None) -> Sandbox:
    """Build and start everything on the running loop; the campaign exists and sending has begun."""
    from cadence.services.runtime import Runtime

    sample_dir()  # before anything starts: the sample files are there
    rng = random.Random(seed)
    clock = ScaledClock(start, speed=speed)
    mail = SandboxMailStore(clock=clock)
    recipients = RecipientSimulator(mail, clock=clock, rng=random.Random(rng.random()))
    smtp = SandboxSmtpServer(recipients.on_submission, clock=clock)
    port = await smtp.start()
    recipients.start()
    secrets = SandboxSecrets({SANDBOX_ADDRESS: SANDBOX_PASSWORD})
    settings = AccountSettings(
        email=SANDBOX_ADDRESS,
        display_name=SANDBOX_NAME,
        smtp_host=SANDBOX_HOST,
        smtp_port=port,
        smtp_security=ConnectionSecurity.NONE,
        imap_host=SANDBOX_HOST,
        imap_port=993,
        guardrails=DEMO_GUARDRAILS,
        sent_folder_kind=SentFolderKind.APP_APPENDS,
    )
    account = await asyncio.to_thread(opened.store.create_account, settings, now=clock.now())
    holder: dict[str, Sandbox] = {}

    def on_close() -> None:
        if "sandbox" in holder:
            holder["sandbox"].close_now()
        else:
            opened.close()

    async def password() -> str | None:
        return await secrets.get(SANDBOX_ADDRESS)

    runtime = Runtime(
        store=opened.store,
        secrets=secrets,
        mailer_factory=lambda acct, secret: sandbox_mailer(acct, secret, port=port),
        connector_factory=lambda acct: sandbox_connector(mail, password=password, expected=SANDBOX_PASSWORD),
        clock=clock,
        on_close=on_close,
        rng=random.Random(rng.random()),
    )
    pauses: list[tuple[datetime, str]] = []

    def on_send_event(event: SendEvent) -> None:
        if event.kind is SendEventKind.PAUSED:
            pauses.append((clock.now(), event.detail))

    runtime.send_events.subscribe(on_send_event)
    try:
        await runtime.start()
        campaign_id = await _seed_campaign(runtime, account_id=account.id)
    except BaseException:
        await runtime.aclose()
        await recipients.aclose()
        await smtp.aclose()
        raise
    sandbox = Sandbox(
        opened=opened,
        runtime=runtime,
        clock=clock,
        mail=mail,
        smtp=smtp,
        recipients=recipients,
        account_id=account.id,
        campaign_id=campaign_id,
        pauses=pauses,
    )
    holder["sandbox"] = sandbox
    log.info("demo sandbox: SMTP on %s:%d, speed %g×, starting %s", SANDBOX_HOST, port, speed, start)
    return sandbox


async def _seed_campaign(runtime: Runtime, *, account_id: int) -> int:
    folder = sample_dir()
    steps = (read_step(folder / "step1.txt", index=1), read_step(folder / "step2.txt", index=2))
    csv_bytes = (folder / "leads.csv").read_bytes()
    mapping = {"email": "email", "first_name": "first_name", "last_name": "last_name", "company": "company"}
    campaign_id = await runtime.create_campaign(
        v.NewCampaign(
            name=CAMPAIGN_NAME,
            account_id=account_id,
            steps=steps,
            csv_bytes=csv_bytes,
            mapping=mapping,
            start_now=True,
        )
    )
    pending = await runtime.list_pending_drafts(0, 1000)
    to_approve: Sequence[int] = [draft.id for draft in pending[: max(0, len(pending) - HELD_FOR_APPROVAL)]]
    await runtime.approve(to_approve)
    return campaign_id


def default_start(now: datetime | None = None) -> datetime:
    from cadence.demo.clock import demo_start

    return demo_start(now or datetime.now(UTC))


__all__ = [
    "DEMO_GUARDRAILS",
    "SANDBOX_ADDRESS",
    "DemoReport",
    "DemoSetupError",
    "Sandbox",
    "SandboxSecrets",
    "default_start",
    "reset_data_dir",
    "start_sandbox",
]
