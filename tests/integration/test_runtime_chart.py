"""The Deliverability chart over a real SQLite file: replies and opt-outs per local day of the account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core.model import (
    Account,
    AccountSettings,
    FolderRole,
    Guardrails,
    InboundAction,
    InboundEffect,
    InboundItem,
    InboundKind,
    LedgerEntry,
    LedgerKind,
    Verdict,
)
from cadence.services.runtime import Runtime
from tests.integration.test_scheduler_send import DictSecrets

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday; 07:00 in New York


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


@pytest_asyncio.fixture
async def runtime(store: SqliteStore) -> AsyncIterator[Runtime]:
    rt = Runtime(store=store, secrets=DictSecrets({}), mailer_factory=smtp_mailer_for, clock=FakeClock(NOW))
    try:
        yield rt
    finally:
        await rt.aclose()


def _account(store: SqliteStore, email: str, timezone: str) -> Account:
    return store.create_account(
        AccountSettings(email=email, smtp_host="smtp.example.test", guardrails=Guardrails(timezone=timezone)),
        now=NOW - timedelta(days=30),
    )


_uids = iter(range(1, 10_000))


def _inbound(store: SqliteStore, account: Account, kind: InboundKind, at: datetime) -> None:
    uid = next(_uids)
    item = InboundItem(
        folder="INBOX",
        role=FolderRole.INBOX,
        uid=uid,
        raw=b"Subject: x\r\n\r\nbody\r\n",
        message_id=f"<in{uid}@x.test>",
        verdict=Verdict(kind=kind),
    )
    store.apply_inbound_batch(
        account_id=account.id,
        folder="INBOX",
        uidvalidity=1,
        last_uid=uid,
        effects=[InboundEffect(item=item, action=InboundAction.NONE)],
        now=at,
        follow_up=lambda *_: None,
    )


def _sent(store: SqliteStore, account: Account, at: datetime) -> None:
    store.add_ledger_entry(
        LedgerEntry(
            account_id=account.id, at=at, recipient=f"x{at.timestamp()}@lead.test", kind=LedgerKind.SENT
        )
    )


@pytest.mark.asyncio
async def test_replies_and_opt_outs_land_on_the_accounts_local_days(
    runtime: Runtime, store: SqliteStore
) -> None:
    account = _account(store, "ny@example.test", "America/New_York")  # UTC-5 in November
    other = _account(store, "other@example.test", "America/New_York")
    # 03:30 UTC on the 25th is still the 24th in New York
    _inbound(store, account, InboundKind.REPLY, datetime(2026, 11, 25, 3, 30, tzinfo=UTC))
    _sent(store, account, datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
    _inbound(store, account, InboundKind.UNSUBSCRIBE, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    _inbound(store, account, InboundKind.NOT_INTERESTED, datetime(2026, 11, 26, 4, 59, tzinfo=UTC))
    _inbound(store, account, InboundKind.REPLY, datetime(2026, 11, 26, 5, 0, tzinfo=UTC))  # midnight local
    _inbound(store, account, InboundKind.HARD_BOUNCE, datetime(2026, 11, 26, 6, 0, tzinfo=UTC))
    _inbound(store, account, InboundKind.AUTO_REPLY, datetime(2026, 11, 26, 6, 0, tzinfo=UTC))
    _inbound(store, account, InboundKind.REPLY, NOW - timedelta(days=20))  # before the chart's range
    _inbound(store, other, InboundKind.REPLY, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))  # another account

    view = await runtime.deliverability(account.id)

    by_day = {point.day: point for point in view.daily}
    assert len(view.daily) == 14 and view.daily[-1].day == date(2026, 11, 27)
    assert view.daily[0].day == date(2026, 11, 14)
    assert [(d.day, d.replied, d.unsubscribed) for d in view.daily if d.replied or d.unsubscribed] == [
        (date(2026, 11, 24), 1, 0),
        (date(2026, 11, 25), 0, 2),
        (date(2026, 11, 26), 1, 0),
    ]
    assert by_day[date(2026, 11, 24)].sent == 1 and by_day[date(2026, 11, 25)].sent == 0


def test_store_counts_each_local_day_across_a_dst_change_and_a_half_hour_zone(store: SqliteStore) -> None:
    berlin = _account(store, "berlin@example.test", "Europe/Berlin")
    # 25 Oct 2026: clocks go back in Berlin, the day has 25 hours (00:00 local = 22:00 UTC the day before)
    _inbound(store, berlin, InboundKind.REPLY, datetime(2026, 10, 24, 22, 0, tzinfo=UTC))  # 25th 00:00 CEST
    _inbound(store, berlin, InboundKind.REPLY, datetime(2026, 10, 24, 21, 59, tzinfo=UTC))  # 24th 23:59
    _inbound(
        store, berlin, InboundKind.UNSUBSCRIBE, datetime(2026, 10, 25, 22, 59, tzinfo=UTC)
    )  # 25th 23:59 CET
    _inbound(store, berlin, InboundKind.UNSUBSCRIBE, datetime(2026, 10, 25, 23, 0, tzinfo=UTC))  # 26th 00:00

    counts = store.count_inbound_by_day(
        berlin.id, first_day=date(2026, 10, 24), last_day=date(2026, 10, 26), timezone="Europe/Berlin"
    )
    assert counts == {
        date(2026, 10, 24): {InboundKind.REPLY: 1},
        date(2026, 10, 25): {InboundKind.REPLY: 1, InboundKind.UNSUBSCRIBE: 1},
        date(2026, 10, 26): {InboundKind.UNSUBSCRIBE: 1},
    }
    # the same events seen from India (UTC+5:30): the day boundary falls at 18:30 UTC
    india = store.count_inbound_by_day(
        berlin.id, first_day=date(2026, 10, 25), last_day=date(2026, 10, 26), timezone="Asia/Kolkata"
    )
    assert india == {
        date(2026, 10, 25): {InboundKind.REPLY: 2},
        date(2026, 10, 26): {InboundKind.UNSUBSCRIBE: 2},
    }
    assert (
        store.count_inbound_by_day(
            berlin.id, first_day=date(2026, 10, 27), last_day=date(2026, 10, 26), timezone="Europe/Berlin"
        )
        == {}
    )
