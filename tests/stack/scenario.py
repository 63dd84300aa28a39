"""Issue 7, point 1: a 100-lead, two-step campaign driven through Cadence's real services against the stack.

The account and the campaign are made with the `cadence` CLI (password in a private gnome-keyring); then the
scheduler, the inbox watcher, the inbox effects and the Sent-folder copier run in this process, wired as
`commands/run.py` wires them, over the real SQLite store, the keyring and the SMTP / IMAP adapters. Only the
clock is simulated: a `SimClock` that the driver moves to the scheduler's next slot, so a week of business
days takes seconds. The mail is real: Postfix relays to the scripted internet, dead recipients come back as
Postfix DSNs in Dovecot's INBOX, and the prospects' replies are APPENDed to INBOX with In-Reply-To and
References naming the Message-ID Cadence sent.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import functools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import StrEnum
from pathlib import Path

from keyring.backends.SecretService import Keyring as SecretServiceKeyring

from cadence.adapters.db.engine import Database, open_database
from cadence.adapters.db.store import SqliteStore
from cadence.adapters.imap import ImapMailbox
from cadence.adapters.secrets import KeyringSecretStore
from cadence.app import imap_connector_for, smtp_mailer_for
from cadence.core.classify import classify
from cadence.core.model import Account, InboundKind, MessageState
from cadence.services.dbworker import DbWorker
from cadence.services.events import EventBus, SendEvent, SendEventKind
from cadence.services.inbox import InboxWatcher, WatchOptions
from cadence.services.inbox_effects import InboxEffects, SentFolderCopier
from cadence.services.scheduler import Scheduler
from tests.integration.cli_harness import run_cadence
from tests.stack.mail import imap_connector
from tests.stack.stack import MailStack

LEADS = 100
FOLLOW_UP_DAYS = 2
OUT_OF_OFFICE_DAYS = 7  # the auto-reply says "back on" the first touch's date plus this
REPLY_AFTER = timedelta(minutes=20)  # a prospect answers this long after the first touch reaches them
DAILY_CAP = 40
# a Monday mid-morning: the user starts the campaign an hour after the business window opened, so the
# first day's sends all still lie within 24 hours when the next business day opens
BUSINESS_START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
GUARDRAILS = {
    "daily_cap": DAILY_CAP,
    "hourly_cap": 100,
    "domain_cap": 1000,  # every prospect lives at example.com (a placeholder: no company-wide stop)
    "min_delay_s": 60,
    "jitter_s": 0,
    "hours_start_min": 9 * 60,
    "hours_end_min": 17 * 60,
    "timezone": "UTC",
    "bounce_breaker_rate": 0.05,
    "bounce_breaker_min_sample": 20,
    "expire_after_days": 60,
}


class Role(StrEnum):
    SILENT = "silent"
    DEAD = "dead"
    UNSUBSCRIBE = "unsubscribe"
    NOT_INTERESTED = "not_interested"
    OUT_OF_OFFICE = "out_of_office"
    INTERESTED = "interested"


# 1-based positions in the leads file (= the order the queue sends them). Six dead among the first 20 sends
# trip the breaker as soon as the sample reaches 20; the other two come much later, each far from the other.
CAST: Mapping[Role, tuple[int, ...]] = {
    Role.DEAD: (2, 5, 8, 11, 14, 17, 40, 100),
    Role.UNSUBSCRIBE: (3, 25, 60),
    Role.NOT_INTERESTED: (7, 50),
    Role.OUT_OF_OFFICE: (4, 10, 30, 70, 95),
    Role.INTERESTED: (6, 12, 45, 90),
}
STOPPING_ROLES = (Role.UNSUBSCRIBE, Role.NOT_INTERESTED, Role.INTERESTED)
REPLYING_ROLES = (*STOPPING_ROLES, Role.OUT_OF_OFFICE)
EXPECTED_KIND = {
    Role.UNSUBSCRIBE: InboundKind.UNSUBSCRIBE,
    Role.NOT_INTERESTED: InboundKind.NOT_INTERESTED,
    Role.OUT_OF_OFFICE: InboundKind.AUTO_REPLY,
    Role.INTERESTED: InboundKind.REPLY,
}


@dataclass(frozen=True)
class Prospect:
    position: int
    role: Role
    email: str
    first_name: str


def cast(tag: str) -> list[Prospect]:
    """The 100 prospects. The internet acts on the local part before `+`: `dead` answers 550 5.1.1."""
    role_at = {position: role for role, positions in CAST.items() for position in positions}
    prospects = []
    for position in range(1, LEADS + 1):
        role = role_at.get(position, Role.SILENT)
        behaviour = "dead" if role is Role.DEAD else "ok"
        prospects.append(
            Prospect(
                position=position,
                role=role,
                email=f"{behaviour}+{role.value.replace('_', '')}{position:03d}-{tag}@example.com",
                first_name=f"Pat{position:03d}",
            )
        )
    return prospects


def reply_bytes(
    prospect: Prospect, *, to: str, subject: str, in_reply_to: str, at: datetime
) -> tuple[bytes, date | None]:
    """The prospect's answer to Cadence's message, and (out of office) the return date it announces."""
    message = EmailMessage()
    message["From"] = f"{prospect.first_name} Prospect <{prospect.email}>"
    message["To"] = to
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(domain="example.com")
    message["In-Reply-To"] = in_reply_to
    message["References"] = in_reply_to
    back: date | None = None
    if prospect.role is Role.OUT_OF_OFFICE:
        back = (at + timedelta(days=OUT_OF_OFFICE_DAYS)).date()
        message["Subject"] = f"Automatic reply: {subject}"
        message["Auto-Submitted"] = "auto-replied"
        message["X-Autoreply"] = "yes"
        message.set_content(
            "Thank you for your message. I am out of the office with no access to email until "
            f"{back.day} {calendar.month_name[back.month]} {back.year}. I will reply when I am back.\n"
        )
    else:
        message["Subject"] = f"Re: {subject}"
        text = {
            Role.UNSUBSCRIBE: "Please unsubscribe me and do not email me again.",
            Role.NOT_INTERESTED: "Thanks for reaching out, but we are not interested.",
            Role.INTERESTED: "Hi Sam,\n\nthat sounds useful. Could we talk on Thursday afternoon?\n\nBest,",
        }[prospect.role]
        message.set_content(f"{text}\n{prospect.first_name}\n")
    return message.as_bytes(), back


class SimClock:
    """The simulated wall clock every service reads; only the driver moves it, and only forward."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def move_to(self, moment: datetime) -> None:
        self.current = max(self.current, moment)


def set_up_with_cli(
    stack: MailStack, *, data: Path, workdir: Path, env: Mapping[str, str], prospects: list[Prospect]
) -> None:
    """`cadence account add` (password into the keyring) and `cadence campaign add`, as a user would."""
    added = run_cadence(
        data, "account", "add", "--email", stack.user, "--name", "Sam Seller",
        "--smtp", f"{stack.host}:{stack.submission_port}", "--imap", f"{stack.host}:{stack.imaps_port}",
        "--security", "starttls", "--ca-file", str(stack.ca_file), "--guardrails", json.dumps(GUARDRAILS),
        "--no-warmup", "--no-first-touch-approval", "--password-stdin",
        env=env, input_text=stack.password + "\n",
    )  # fmt: skip
    if added.returncode != 0:
        raise AssertionError(f"account add failed: {added.stderr}")
    leads = workdir / "leads.csv"
    leads.write_text(
        "email,first_name\n" + "".join(f"{p.email},{p.first_name}\n" for p in prospects), encoding="utf-8"
    )
    first = workdir / "step1.txt"
    first.write_text(
        "Hello {first_name},\n\nwould a short call next week make sense?\n\nSam\n", encoding="utf-8"
    )
    second = workdir / "step2.txt"
    second.write_text(
        "Hello {first_name},\n\na quick nudge on my note from earlier.\n\nSam\n", encoding="utf-8"
    )
    created = run_cadence(
        data, "campaign", "add", "--name", "hundred", "--leads", str(leads),
        "--step", f"Call next week, {{first_name}}?|{first}|0",
        "--step", f"Re: call next week, {{first_name}}?|{second}|{FOLLOW_UP_DAYS}",
        env=env,
    )  # fmt: skip
    if created.returncode != 0:
        raise AssertionError(f"campaign add failed: {created.stderr}")
    queued = json.loads(created.stdout)
    if queued["leads"] != LEADS or queued["approved"] != LEADS:
        raise AssertionError(f"the campaign did not queue {LEADS} first touches: {queued}")


@contextlib.contextmanager
def session_environment(env: Mapping[str, str]) -> Iterator[None]:
    """The keyring session's D-Bus address for this process (the Secret Service backend reads it per call)."""
    names = ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "XDG_DATA_HOME")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: env[name] for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Sent:
    at: datetime
    recipient: str
    outbox_id: int
    step: int
    message_id: str


@dataclass
class Scenario:
    """The services of `cadence run`, in this process, over one data directory and a simulated clock."""

    stack: MailStack
    data: Path
    prospects: list[Prospect]
    clock: SimClock = field(default_factory=lambda: SimClock(BUSINESS_START))
    sends: list[Sent] = field(default_factory=list)
    pauses: list[SendEvent] = field(default_factory=list)
    # each reply: when it was put into INBOX, whose it is, and the return date an auto-reply announced
    replies: list[tuple[datetime, Prospect, date | None]] = field(default_factory=list)
    dsn_waits_s: list[float] = field(default_factory=list)
    passes: int = 0
    _pending_replies: list[tuple[datetime, Prospect, Sent]] = field(default_factory=list)
    _by_email: dict[str, Prospect] = field(default_factory=dict)

    async def run(self, *, until: datetime, max_passes: int = 5000) -> None:
        self._by_email = {p.email: p for p in self.prospects}
        self.database: Database = open_database(self.data / "cadence.sqlite3")
        self.store = SqliteStore(self.database)
        self.db = DbWorker()
        bus: EventBus[SendEvent] = EventBus()
        bus.subscribe(self._on_event)
        secrets = KeyringSecretStore(backend=SecretServiceKeyring())  # type: ignore[no-untyped-call]
        self.scheduler = Scheduler(
            store=self.store,
            db=self.db,
            secrets=secrets,
            mailer_factory=functools.partial(smtp_mailer_for, oauth=None),
            events=bus,
            clock=self.clock,
        )
        self.watcher = InboxWatcher(
            sink=InboxEffects(self.store, events=bus, clock=self.clock),
            classify=classify,
            options=WatchOptions(idle=False, poll_interval_s=3600.0),
            clock=self.clock,
            sink_executor=self.db.executor,
        )
        copier = SentFolderCopier(store=self.store, db=self.db, watcher=self.watcher)
        bus.subscribe(copier.on_event)
        self._replier: ImapMailbox = await imap_connector(self.stack)()
        try:
            (account,) = await self.db.call(self.store.list_accounts)
            self.account: Account = account
            await self.watcher.start(account.id, imap_connector_for(account, secrets, oauth=None))
            await self._sync()
            await self._drive(until=until, max_passes=max_passes)
        finally:
            await self.scheduler.stop()
            await copier.aclose()
            await self.watcher.stop()
            await self._replier.close()
            self.db.shutdown()
            self.database.close()

    def _on_event(self, event: SendEvent) -> None:
        if event.kind is SendEventKind.PAUSED:
            self.pauses.append(event)

    async def _drive(self, *, until: datetime, max_passes: int) -> None:
        account_id = self.account.id
        while self.clock.now() < until:
            self.passes += 1
            if self.passes > max_passes:
                raise AssertionError(f"the campaign did not finish in {max_passes} scheduler passes")
            await self._deliver_due_replies()
            result = await self.scheduler.run_pass(account_id)
            if result.outcome is not None:
                await self._after_send()
                continue
            moments = [moment for moment, _, _ in self._pending_replies]
            if result.wait_until is not None:
                moments.append(result.wait_until)
            if not moments:
                return  # nothing queued, nobody left to answer: the campaign is over
            self.clock.move_to(max(min(moments), self.clock.now() + timedelta(seconds=1)))

    async def _after_send(self) -> None:
        latest = await self._latest_sent()
        prospect = self._by_email[latest.recipient]
        self.sends.append(latest)
        if prospect.role is Role.DEAD:
            await self._wait_for_bounce(prospect)
        elif prospect.role in REPLYING_ROLES and latest.step == 1:
            self._pending_replies.append((latest.at + REPLY_AFTER, prospect, latest))

    async def _latest_sent(self) -> Sent:
        known = {sent.outbox_id for sent in self.sends}
        sent_rows = await self.db.call(
            functools.partial(
                self.store.list_messages, account_id=self.account.id, states=[MessageState.SENT]
            )
        )
        fresh = [row for row in sent_rows if row.id not in known]
        if len(fresh) != 1 or fresh[0].message_id is None:
            raise AssertionError(f"expected one newly sent message, found {[row.id for row in fresh]}")
        row = fresh[0]
        assert row.message_id is not None
        return Sent(
            at=row.state_changed_at,
            recipient=row.recipient,
            outbox_id=row.id,
            step=row.step_index,
            message_id=row.message_id,
        )

    async def _wait_for_bounce(self, prospect: Prospect, *, timeout_s: float = 60.0) -> None:
        """The DSN Postfix files into INBOX, read by the watcher, before the next send is decided (with a
        minute or more between sends a real bounce is back long before)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while await self.db.call(self.store.find_suppression, prospect.email) is None:
            if loop.time() - started > timeout_s:
                raise AssertionError(f"no bounce for {prospect.email} within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)
            await self._sync()
        self.dsn_waits_s.append(loop.time() - started)

    async def _deliver_due_replies(self) -> None:
        due = [entry for entry in self._pending_replies if entry[0] <= self.clock.now()]
        if not due:
            return
        self._pending_replies = [entry for entry in self._pending_replies if entry[0] > self.clock.now()]
        for _, prospect, sent in due:
            raw, back = reply_bytes(
                prospect,
                to=self.account.email,
                subject=(await self.db.call(self.store.get_message, sent.outbox_id)).subject,
                in_reply_to=sent.message_id,
                at=self.clock.now(),
            )
            verdict = classify(raw)
            if verdict.kind is not EXPECTED_KIND[prospect.role]:
                raise AssertionError(f"the {prospect.role} reply reads as {verdict.kind}: {verdict}")
            await self._replier.append("INBOX", raw, seen=False)
            self.replies.append((self.clock.now(), prospect, back))
        await self._sync()

    async def _sync(self) -> None:
        (report,) = await self.watcher.sync_now(self.account.id, timeout_s=60)
        if report.error is not None:
            raise AssertionError(f"the inbox watcher could not read the mailbox: {report.error}")
