"""The Campaigns tab's finish date over a real SQLite file: core.planner fed from the store, fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core import views as v
from cadence.core.model import (
    Account,
    AccountSettings,
    Campaign,
    Guardrails,
    Lead,
    LedgerEntry,
    LedgerKind,
    MessageState,
    NewDraft,
    SentRecord,
    Step,
)
from cadence.core.planner import LeadProgress, plan_campaign
from cadence.services import finish_estimate
from cadence.services import runtime as runtime_module
from cadence.services.runtime import Runtime
from tests.integration.test_scheduler_send import DictSecrets

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FRIDAY_9AM = datetime(2026, 11, 27, 9, 0, tzinfo=BERLIN)
STEADY = Guardrails(
    daily_cap=5,
    hourly_cap=5,
    min_delay_s=60,
    jitter_s=0,
    domain_cap=100,
    warmup_enabled=False,
    timezone="Europe/Berlin",
    approve_first_touch=False,
)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest_asyncio.fixture
async def runtime(store: SqliteStore, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(store=store, secrets=DictSecrets({}), mailer_factory=smtp_mailer_for, clock=clock)
    try:
        yield rt
    finally:
        await rt.aclose()


def _account(store: SqliteStore, guardrails: Guardrails, *, email: str = "sales@example.test") -> Account:
    settings = AccountSettings(email=email, smtp_host="smtp.example.test", guardrails=guardrails)
    return store.create_account(settings, now=MONDAY - timedelta(days=30))


def _campaign(
    store: SqliteStore,
    account: Account,
    *,
    delays: Sequence[float],
    emails: Sequence[str],
    now: datetime,
    name: str = "Autumn",
) -> Campaign:
    campaign = store.create_campaign(
        name=name,
        account_id=account.id,
        steps=[Step(i, f"Step {i}", "Hello", delay_days=d) for i, d in enumerate(delays, start=1)],
        now=now,
    )
    store.add_leads(campaign.id, leads=[Lead(e) for e in emails], now=now)
    ids = store.lead_ids_by_email(campaign.id)
    store.create_drafts(
        [NewDraft(campaign.id, ids[e], 1, "Step 1", "Hello", state=MessageState.APPROVED) for e in emails],
        now=now,
    )
    return campaign


async def _settled(runtime: Runtime) -> dict[int, v.CampaignSummary]:
    """The campaigns once every finish estimate in progress has landed."""
    await runtime.list_campaigns()
    while pending := runtime.estimates.pending():
        await asyncio.gather(*pending)
    return {summary.id: summary for summary in await runtime.list_campaigns()}


@pytest.mark.asyncio
async def test_estimate_is_what_core_planner_gives_for_the_stores_inputs(
    runtime: Runtime, store: SqliteStore
) -> None:
    guardrails = Guardrails(daily_cap=8, hourly_cap=3, jitter_s=120, timezone="UTC", domain_cap=3)
    account = _account(store, guardrails)
    warmup_start = MONDAY - timedelta(days=3)
    store.set_warmup_started(account.id, at=warmup_start)
    fresh = [f"lead{n}@{'big' if n % 2 else f'co{n}'}.example.com" for n in range(10)]
    campaign = _campaign(store, account, delays=(0, 2, 4), emails=fresh, now=MONDAY - timedelta(hours=1))
    # two leads had step 1 this morning: their step 2 is due in two days
    contacted = ["early1@example.org", "early2@example.org"]
    store.add_leads(campaign.id, leads=[Lead(e) for e in contacted], now=MONDAY)
    ids = store.lead_ids_by_email(campaign.id)
    history = []
    for number, email in enumerate(contacted):
        sent_at = MONDAY - timedelta(hours=3 - number)
        store.add_ledger_entry(
            LedgerEntry(
                account_id=account.id, at=sent_at, recipient=email, kind=LedgerKind.SENT, subject="Step 1"
            )
        )
        history.append(SentRecord(at=sent_at, recipient=email, subject="Step 1"))
        store.create_drafts(
            [
                NewDraft(
                    campaign.id,
                    ids[email],
                    2,
                    "Step 2",
                    "Hello",
                    state=MessageState.APPROVED,
                    next_attempt_at=sent_at + timedelta(days=2),
                )
            ],
            now=MONDAY,
        )

    summary = (await _settled(runtime))[campaign.id]

    expected = plan_campaign(
        [Lead(e) for e in fresh + contacted],
        step_delays_days=(0, 2, 4),
        guardrails=guardrails,
        start=MONDAY,
        horizon_days=finish_estimate.HORIZON_DAYS,
        rng=random.Random(finish_estimate.PLAN_SEED),
        progress=[LeadProgress()] * len(fresh)
        + [LeadProgress(2, MONDAY - timedelta(hours=3 - n) + timedelta(days=2)) for n in range(2)],
        history=history,
        warmup_started_at=warmup_start,
    )
    assert len(expected.sends) == 10 * 3 + 2 * 2 and not expected.unscheduled
    assert expected.finish is not None and expected.finish > MONDAY + timedelta(days=6)
    assert summary.status is v.CampaignStatus.RUNNING
    assert summary.finish_estimate == expected.finish and summary.finish_note == ""


@pytest.mark.asyncio
async def test_a_follow_up_step_moves_the_estimate_later(runtime: Runtime, store: SqliteStore) -> None:
    account = _account(store, STEADY)
    emails = [f"p{n}@example.com" for n in range(4)]
    one = _campaign(store, account, delays=(0,), emails=emails, now=MONDAY, name="One step")
    two = _campaign(store, account, delays=(0, 3), emails=emails, now=MONDAY, name="Two steps")

    summaries = await _settled(runtime)

    first, second = summaries[one.id].finish_estimate, summaries[two.id].finish_estimate
    assert first is not None and second is not None
    assert first.date() == MONDAY.date()  # four sends fit Monday's cap of five
    # the follow-ups go three days after each first touch: Thursday
    assert second.astimezone(BERLIN).date() == (MONDAY + timedelta(days=3)).date()


@pytest.mark.asyncio
async def test_filling_fridays_cap_finishes_on_monday_not_saturday(
    runtime: Runtime, store: SqliteStore, clock: FakeClock
) -> None:
    clock.moment = FRIDAY_9AM.astimezone(UTC)
    account = _account(store, STEADY)
    campaign = _campaign(
        store, account, delays=(0,), emails=[f"f{n}@example.com" for n in range(6)], now=clock.moment
    )

    finish = (await _settled(runtime))[campaign.id].finish_estimate

    assert finish is not None
    local = finish.astimezone(BERLIN)
    assert (local.date(), local.weekday()) == (datetime(2026, 11, 30).date(), 0)
    assert 8 <= local.hour < 18  # inside Monday's business hours


@pytest.mark.asyncio
async def test_sent_in_the_last_24_hours_counts_against_todays_cap(
    runtime: Runtime, store: SqliteStore, clock: FakeClock
) -> None:
    clock.moment = FRIDAY_9AM.astimezone(UTC)
    account = _account(store, STEADY)
    campaign = _campaign(
        store, account, delays=(0,), emails=["a@example.com", "b@example.com"], now=clock.moment
    )
    assert (await _settled(runtime))[campaign.id].finish_estimate.date() == clock.moment.date()  # type: ignore[union-attr]

    for n in range(5):  # another campaign used Friday's cap already this morning
        store.add_ledger_entry(
            LedgerEntry(
                account_id=account.id,
                at=clock.moment - timedelta(minutes=10 * (n + 1)),
                recipient=f"x{n}@other.example",
                kind=LedgerKind.SENT,
            )
        )
    clock.moment += timedelta(minutes=6)  # older than the cache's few minutes: planned again

    finish = (await _settled(runtime))[campaign.id].finish_estimate
    assert finish is not None and finish.astimezone(BERLIN).weekday() == 0


@pytest.mark.asyncio
async def test_paused_account_says_so_instead_of_a_date(runtime: Runtime, store: SqliteStore) -> None:
    account = _account(store, STEADY)
    campaign = _campaign(store, account, delays=(0, 2), emails=["a@example.com"], now=MONDAY)
    assert (await _settled(runtime))[campaign.id].finish_estimate is not None

    store.set_account_pause(account.id, reason="Paused by you")
    summary = (await _settled(runtime))[campaign.id]

    assert summary.finish_estimate is None
    assert summary.finish_note == "account paused (Paused by you)"


@pytest.mark.asyncio
async def test_cached_until_something_changes_and_estimating_meanwhile(
    runtime: Runtime, store: SqliteStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = _account(store, STEADY)
    campaign = _campaign(store, account, delays=(0, 2), emails=["a@example.com", "b@example.com"], now=MONDAY)
    events: list[v.RuntimeEvent] = []
    runtime.subscribe(events.append)
    monkeypatch.setattr(runtime_module, "ESTIMATE_WAIT_S", 0.0)

    [first] = await runtime.list_campaigns()
    assert first.finish_estimate is None and first.finish_note == finish_estimate.ESTIMATING
    summary = (await _settled(runtime))[campaign.id]
    assert summary.finish_estimate is not None
    assert v.CampaignsChanged(campaign.id) in events  # the window re-reads when the estimate lands

    await runtime.list_campaigns()
    assert runtime.estimates.pending() == []  # nothing changed: the cached estimate is used

    before = summary.finish_estimate
    ids = store.lead_ids_by_email(campaign.id)
    store.add_leads(campaign.id, leads=[Lead(f"more{n}@example.com") for n in range(8)], now=MONDAY)
    ids = store.lead_ids_by_email(campaign.id)
    store.create_drafts(
        [
            NewDraft(campaign.id, lead_id, 1, "Step 1", "Hello", state=MessageState.APPROVED)
            for email, lead_id in ids.items()
            if email.startswith("more")
        ],
        now=MONDAY,
    )
    [stale] = await runtime.list_campaigns()
    assert stale.finish_estimate == before  # the last estimate is shown while the new one is planned
    assert runtime.estimates.pending() != []
    after = (await _settled(runtime))[campaign.id].finish_estimate
    assert after is not None and after > before
