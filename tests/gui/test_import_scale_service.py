"""services.lead_import over a real SQLite file: the header-only remap reads the same leads as the
runtime's full rewrite, a stop before saving keeps nothing, and every batch is reported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.core import views as v
from cadence.core.leads import parse_leads_csv
from cadence.core.model import AccountSettings, CampaignStatus, MessageState, Step
from cadence.core.ports import ImportProgress, SystemClock, UserFacingError
from cadence.services.dbworker import DbWorker
from cadence.services.lead_import import ImportStopped, create_campaign_in_chunks, remap_header
from cadence.services.runtime import _remapped_csv

TRICKY = (
    b"\xef\xbb\xbfE-mail,Given,Org,Notes\r\n"
    b'ada@lovelace.example,Ada,"Lovelace, Engines","line one\r\nline two"\r\n'
    b"bob@bobco.example,Bob,Bobco,\r\n"
    b"not-an-address,Cy,Cyco,x\r\n"
)
MAPPING = {"E-mail": "email", "Given": "first_name", "Org": "company", "Notes": "fields.Notes"}
STEP = Step(index=1, subject="Hello {first_name|there}", body="Hi {first_name|there}.\n")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest.fixture
def db() -> Iterator[DbWorker]:
    worker = DbWorker()
    yield worker
    worker.shutdown()


def _spec(store: SqliteStore, csv_bytes: bytes, *, start_now: bool = False) -> v.NewCampaign:
    settings = AccountSettings(email="sales@example.test", display_name="Sam", smtp_host="smtp.example.test")
    account = store.create_account(settings, now=datetime.now(UTC))
    mapping = {"Email": "email", "First name": "first_name"}
    return v.NewCampaign("Fleet", account.id, (STEP,), csv_bytes, mapping, start_now=start_now)


def _csv(count: int) -> bytes:
    return ("Email,First name\n" + "".join(f"p{i}@x.example,P{i}\n" for i in range(count))).encode()


def test_header_only_remap_reads_the_same_leads_as_the_full_rewrite() -> None:
    ours = parse_leads_csv(remap_header(TRICKY, MAPPING))
    runtime_way = parse_leads_csv(_remapped_csv(TRICKY, MAPPING)[2])
    assert ours.leads == runtime_way.leads
    assert [lead.email for lead in ours.leads] == ["ada@lovelace.example", "bob@bobco.example"]
    assert ours.leads[0].company == "Lovelace, Engines"
    assert dict(ours.leads[0].fields)["Notes"] == "line one\r\nline two"
    assert [p.line for p in ours.problems] == [p.line for p in runtime_way.problems] == [5]


@pytest.mark.asyncio
async def test_every_batch_is_reported_and_the_campaign_starts_only_when_full(
    store: SqliteStore, db: DbWorker
) -> None:
    spec = _spec(store, _csv(250), start_now=True)
    reports: list[ImportProgress] = []
    statuses: list[CampaignStatus] = []

    def on_progress(progress: ImportProgress) -> None:
        reports.append(progress)
        statuses.extend(c.status for c in store.list_campaigns())

    campaign_id = await create_campaign_in_chunks(
        spec, store=store, db=db, clock=SystemClock(), on_progress=on_progress, chunk_size=100
    )
    assert [(r.done, r.total) for r in reports] == [(0, 0), (0, 250), (100, 250), (200, 250), (250, 250)]
    assert set(statuses) == {CampaignStatus.PAUSED}
    assert store.get_campaign(campaign_id).status is CampaignStatus.ACTIVE
    assert store.count_messages() == {MessageState.PENDING_APPROVAL: 250}


@pytest.mark.asyncio
async def test_a_stop_before_saving_keeps_nothing(store: SqliteStore, db: DbWorker) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(ImportStopped, match="nothing was saved"):
        await create_campaign_in_chunks(
            _spec(store, _csv(10)), store=store, db=db, clock=SystemClock(), stop=stop
        )
    assert store.list_campaigns() == ()


@pytest.mark.asyncio
async def test_a_stop_between_batches_rejects_what_was_written(store: SqliteStore, db: DbWorker) -> None:
    stop = threading.Event()

    def on_progress(progress: ImportProgress) -> None:
        if progress.done >= 100:
            stop.set()

    with pytest.raises(ImportStopped, match="after 100 of 300 leads"):
        await create_campaign_in_chunks(
            _spec(store, _csv(300)),
            store=store,
            db=db,
            clock=SystemClock(),
            on_progress=on_progress,
            stop=stop,
            chunk_size=100,
        )
    (campaign,) = store.list_campaigns()
    assert campaign.status is CampaignStatus.FINISHED
    assert store.count_messages() == {MessageState.REJECTED: 100}


@pytest.mark.asyncio
async def test_a_file_without_usable_leads_or_account_is_refused_with_a_sentence(
    store: SqliteStore, db: DbWorker
) -> None:
    spec = _spec(store, b"Email,First name\nnope,No\n")
    with pytest.raises(UserFacingError, match="No usable leads"):
        await create_campaign_in_chunks(spec, store=store, db=db, clock=SystemClock())
    gone = v.NewCampaign("Fleet", 999, (STEP,), _csv(3), spec.mapping)
    with pytest.raises(UserFacingError, match="account no longer exists"):
        await create_campaign_in_chunks(gone, store=store, db=db, clock=SystemClock())
    assert store.list_campaigns() == ()
