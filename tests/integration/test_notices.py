"""Notices (tray notifications) from the real runtime over a real SQLite file and an SMTP peer, with a fake
clock: each is published once per occurrence, and not again on the next poll or after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core import pacing
from cadence.core import views as v
from cadence.core.model import (
    Account,
    AccountSettings,
    AuditResult,
    CampaignStatus,
    ConnectionSecurity,
    Lead,
    MessageState,
    Step,
)
from cadence.services.runtime import Runtime
from cadence.services.scheduler import draft_for_step
from tests.integration.smtp_peer import ScriptedSmtpPeer, smtp_ca, smtp_ca_file, smtp_peer  # noqa: F401
from tests.integration.test_scheduler_send import PASSWORD, PERMISSIVE, SENDER, DictSecrets

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass
class World:
    store: SqliteStore
    account: Account
    clock: FakeClock
    runtimes: list[Runtime] = field(default_factory=list)

    def runtime(self) -> tuple[Runtime, list[v.Notice]]:
        """A runtime over the same database (a second one is a restart); its scheduler is driven by the
        test (drain), so each poll is explicit."""
        runtime = Runtime(
            store=self.store,
            secrets=DictSecrets({SENDER: PASSWORD}),
            mailer_factory=smtp_mailer_for,
            clock=self.clock,
        )
        notices: list[v.Notice] = []
        runtime.subscribe(lambda event: notices.append(event) if isinstance(event, v.Notice) else None)
        self.runtimes.append(runtime)
        return runtime, notices

    def guardrails(self, **changes: object) -> None:
        guardrails = replace(PERMISSIVE, **changes)  # type: ignore[arg-type]
        self.account = self.store.update_account(
            self.account.id, settings=replace(self.account.settings, guardrails=guardrails)
        )

    def campaign(self, leads: int, *, name: str = "Spring", steps: tuple[Step, ...] | None = None) -> int:
        now = self.clock.now()
        steps = steps or (Step(index=1, subject="Hello {first_name}", body="Hi {first_name}, a note."),)
        campaign = self.store.create_campaign(name=name, account_id=self.account.id, steps=steps, now=now)
        self.store.add_leads(
            campaign.id,
            leads=[Lead(email=f"{name.lower()}{i}@example.com", first_name=f"P{i}") for i in range(leads)],
            now=now,
        )
        guardrails = self.store.get_account(self.account.id).settings.guardrails
        drafts = [
            draft_for_step(campaign_id=campaign.id, lead=lead, step=steps[0], guardrails=guardrails)
            for lead in self.store.list_leads(campaign.id)
        ]
        self.store.create_drafts(drafts, now=now)
        return campaign.id

    def notified(self, reason: str) -> int:
        return sum(
            1
            for e in self.store.query_audit(results=[AuditResult.NOTIFIED], limit=None)
            if e.reason == reason
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest_asyncio.fixture
async def world(store: SqliteStore, smtp_peer: ScriptedSmtpPeer, smtp_ca_file: Path) -> AsyncIterator[World]:  # noqa: F811
    clock = FakeClock(MONDAY)
    account = store.create_account(
        AccountSettings(
            email=SENDER,
            smtp_host=smtp_peer.host,
            smtp_port=smtp_peer.port,
            smtp_security=ConnectionSecurity.STARTTLS,
            ca_file=str(smtp_ca_file),
            guardrails=PERMISSIVE,
        ),
        now=clock.now(),
    )
    world = World(store, account, clock)
    try:
        yield world
    finally:
        for runtime in world.runtimes:
            await runtime.aclose()


def kinds(notices: list[v.Notice]) -> list[v.NoticeKind]:
    return [notice.kind for notice in notices]


async def poll_until(world: World, runtime: Runtime, moment: datetime) -> int:
    """Poll the scheduler every half hour of the fake clock up to `moment`; returns how many were sent."""
    sent = 0
    while world.clock.now() < moment:
        result = await runtime.scheduler.run_pass(world.account.id)
        if result.outcome is not None:
            sent += 1
        else:
            world.clock.advance(timedelta(minutes=30))
    return sent


async def poll(world: World, runtime: Runtime, *, hours: float = 2) -> int:
    return await poll_until(world, runtime, world.clock.now() + timedelta(hours=hours))


@pytest.mark.asyncio
async def test_cap_reached_is_notified_once_per_account_and_day(
    world: World,
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
) -> None:
    world.guardrails(daily_cap=2, timezone="UTC")
    world.campaign(6)
    runtime, notices = world.runtime()

    # Monday: the two sends of the day are spread out, then the cap holds the rest; polled 28 times
    assert await poll_until(world, runtime, MONDAY.replace(hour=23, minute=30)) == 2
    assert kinds(notices) == [v.NoticeKind.CAP_REACHED]
    assert notices[0].severity is v.Severity.INFO and SENDER in notices[0].message
    assert notices[0].title == "Daily cap reached"

    restarted, after_restart = world.runtime()  # a restart the same evening: not said again
    assert await poll(world, restarted, hours=0.5) == 0
    assert after_restart == [] and len(notices) == 1
    assert world.notified("cap_reached") == 1

    # Tuesday: two more go out, the cap is reached again: one more notice
    assert await poll_until(world, restarted, MONDAY + timedelta(days=1, hours=13, minutes=30)) == 2
    assert kinds(after_restart) == [v.NoticeKind.CAP_REACHED]
    assert len(notices) == 1 and world.notified("cap_reached") == 2
    assert len(smtp_peer.accepted) == 4


@pytest.mark.asyncio
async def test_campaign_finished_once_when_its_last_message_settles(
    world: World,
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
) -> None:
    two_steps = (
        Step(index=1, subject="Hello {first_name}", body="Hi."),
        Step(index=2, subject="Re: Hello {first_name}", body="Following up.", delay_days=2),
    )
    campaign_id = world.campaign(2, steps=two_steps)
    runtime, notices = world.runtime()

    assert await poll(world, runtime) == 2
    assert notices == []  # the follow-ups are still to come
    summary = next(c for c in await runtime.list_campaigns() if c.id == campaign_id)
    assert summary.status is v.CampaignStatus.RUNNING

    world.clock.advance(timedelta(days=2))
    assert await poll(world, runtime) == 2
    assert kinds(notices) == [v.NoticeKind.CAMPAIGN_FINISHED]
    assert (
        notices[0].message == "“Spring” has sent its last message." and notices[0].severity is v.Severity.INFO
    )
    summary = next(c for c in await runtime.list_campaigns() if c.id == campaign_id)
    assert summary.status is v.CampaignStatus.FINISHED

    await poll(world, runtime)
    restarted, after_restart = world.runtime()
    await poll(world, restarted)
    assert len(notices) == 1 and after_restart == []
    assert world.notified("campaign_finished") == 1
    assert len(smtp_peer.accepted) == 4


@pytest.mark.asyncio
async def test_rejecting_the_last_draft_finishes_a_campaign_that_sent(world: World) -> None:
    world.guardrails(approve_first_touch=True)
    campaign_id = world.campaign(2)
    runtime, notices = world.runtime()
    drafts = await runtime.list_pending_drafts(0, 10)
    await runtime.approve([drafts[0].id])
    assert await poll(world, runtime) == 1
    assert notices == []  # one draft still waits for approval

    await runtime.reject([drafts[1].id])
    await poll(world, runtime)
    assert kinds(notices) == [v.NoticeKind.CAMPAIGN_FINISHED]
    assert world.store.get_campaign(campaign_id).status is CampaignStatus.FINISHED

    # a campaign where nothing was ever sent (every draft rejected) does not "finish"
    untouched = world.campaign(1, name="Never")
    only = [d for d in await runtime.list_pending_drafts(0, 10) if d.campaign_id == untouched]
    await runtime.reject([only[0].id])
    await poll(world, runtime)
    assert len(notices) == 1
    assert world.store.get_campaign(untouched).status is CampaignStatus.ACTIVE


@pytest.mark.asyncio
async def test_drafts_waiting_over_24_hours_are_notified_once_each(world: World) -> None:
    world.guardrails(approve_first_touch=True)
    world.campaign(3)
    runtime, notices = world.runtime()

    assert await runtime.notify_waiting_drafts() == 0
    world.clock.advance(timedelta(hours=23))
    assert await runtime.notify_waiting_drafts() == 0
    assert notices == []

    world.clock.advance(timedelta(hours=2))
    drafts = await runtime.list_pending_drafts(0, 10)
    assert all(d.overdue for d in drafts)  # the queue tab's flag
    world.campaign(1, name="Later")  # waiting 0 h: not flagged, not in this notice
    assert await runtime.notify_waiting_drafts() == 3
    assert kinds(notices) == [v.NoticeKind.DRAFTS_WAITING]
    assert notices[0].message == "3 draft(s) have waited more than 24 hours for your approval."

    assert await runtime.notify_waiting_drafts() == 0  # the next poll
    restarted, after_restart = world.runtime()
    assert await restarted.notify_waiting_drafts() == 0  # a restart
    assert len(notices) == 1 and after_restart == []

    world.clock.advance(timedelta(hours=24, minutes=1))  # the later draft is over 24 h now; only it is new
    assert await restarted.notify_waiting_drafts() == 1
    assert after_restart[0].message.startswith("1 draft(s) have waited")
    assert world.store.count_messages().get(MessageState.PENDING_APPROVAL) == 4


@pytest.mark.asyncio
async def test_the_runtime_checks_waiting_drafts_when_it_starts(world: World) -> None:
    world.guardrails(approve_first_touch=True)
    world.campaign(2)
    world.clock.advance(timedelta(hours=30))
    runtime, notices = world.runtime()
    await runtime.start()
    for _ in range(100):
        if notices:
            break
        await asyncio.sleep(0.02)
    assert kinds(notices) == [v.NoticeKind.DRAFTS_WAITING]


@pytest.mark.asyncio
async def test_a_large_queue_is_counted_from_the_watermark_on(world: World) -> None:
    world.guardrails(approve_first_touch=True)
    world.campaign(1050, name="Early")
    world.clock.advance(timedelta(hours=2))
    world.campaign(1020, name="Later")
    runtime, notices = world.runtime()

    world.clock.advance(timedelta(hours=23))  # Early waited 25 h, Later 23 h
    assert await runtime.notify_waiting_drafts() == 1050
    world.clock.advance(timedelta(minutes=30))
    assert await runtime.notify_waiting_drafts() == 0
    world.clock.advance(timedelta(hours=1))  # Later over 24 h now
    assert await runtime.notify_waiting_drafts() == 1020
    assert [n.message.split(" ")[0] for n in notices] == ["1,050", "1,020"]


@pytest.mark.asyncio
async def test_automatic_pauses_are_told_apart(world: World) -> None:
    runtime, notices = world.runtime()
    reasons = [
        (pacing.BREAKER_PAUSE_REASON, "Paused: too many bounces"),
        ("Automatic pause: The server refused the login: 535 5.7.8 no", "Login refused"),
        ("Automatic pause: The server's TLS certificate changed: x", "Paused: certificate not accepted"),
        ("Automatic pause: the provider's sending limit was reached (550 5.4.5)", "Paused by the provider"),
        ("Paused by you", None),  # the user's own pause is no news to them
    ]
    for reason, _title in reasons:
        await runtime.scheduler.pause(world.account.id, reason=reason)
    assert [n.title for n in notices] == [title for _reason, title in reasons if title]
    assert [n.severity for n in notices] == [
        v.Severity.WARNING,
        v.Severity.ERROR,
        v.Severity.ERROR,
        v.Severity.WARNING,
    ]
