"""The real RuntimeApi (what the window calls) over a real SQLite file, the scheduler and the SMTP peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core import views as v
from cadence.core.model import AccountSettings, ConnectionSecurity, Lead, Step, SuppressionReason
from cadence.core.ports import RuntimeApi, UserFacingError
from cadence.services.runtime import Runtime
from tests.integration.smtp_peer import ScriptedSmtpPeer, smtp_ca, smtp_ca_file, smtp_peer  # noqa: F401
from tests.integration.test_scheduler_send import PASSWORD, PERMISSIVE, SENDER, DictSecrets

CSV = (
    b"Email,First name,Company,Plan\n"
    b"ann@example.com,Ann,Acme,Gold\nbob@example.com,Bob,Beta,\nnot-an-address,X,Y,Z\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    database = open_database(tmp_path / "cadence.sqlite3")
    try:
        yield SqliteStore(database)
    finally:
        database.close()


@pytest_asyncio.fixture
async def runtime(store: SqliteStore) -> AsyncIterator[Runtime]:
    rt = Runtime(store=store, secrets=DictSecrets({SENDER: PASSWORD}), mailer_factory=smtp_mailer_for)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.aclose()
        await rt.aclose()  # idempotent


def test_runtime_satisfies_the_protocol(store: SqliteStore) -> None:
    rt: RuntimeApi = Runtime(store=store, secrets=DictSecrets({}), mailer_factory=smtp_mailer_for)
    assert rt is not None


@pytest.mark.asyncio
async def test_empty_database_has_empty_states(runtime: Runtime) -> None:
    status = await runtime.status()
    assert status.state is v.SendingState.NO_ACCOUNT and status.pending_approval == 0
    assert await runtime.list_campaigns() == []
    assert await runtime.list_accounts() == []
    assert (await runtime.deliverability()).caps[0].used == 0
    assert await runtime.count_activity(v.ActivityFilter()) == 0


@pytest.mark.asyncio
async def test_campaign_from_the_window_path_sends_after_approval(
    runtime: Runtime,
    store: SqliteStore,
    smtp_peer: ScriptedSmtpPeer,  # noqa: F811
    smtp_ca_file: Path,  # noqa: F811
) -> None:
    account = store.create_account(
        AccountSettings(
            email=SENDER,
            smtp_host=smtp_peer.host,
            smtp_port=smtp_peer.port,
            smtp_security=ConnectionSecurity.STARTTLS,
            ca_file=str(smtp_ca_file),
            guardrails=replace(PERMISSIVE, approve_first_touch=True),
        ),
        now=datetime.now(UTC),
    )
    runtime.scheduler.ensure_account(account.id)
    events: list[v.RuntimeEvent] = []
    unsubscribe = runtime.subscribe(events.append)

    preview = await runtime.import_leads_preview(CSV)
    assert preview.mapping["Email"] == "email" and preview.mapping["Plan"] == "fields.Plan"
    assert preview.accepted == 2 and len(preview.skipped) == 1 and preview.skipped[0].line == 4

    rendered = await runtime.preview(
        Step(1, "Hi {first_name}", "About {company}"), Lead("a@b.com", "Ann", company="Acme")
    )
    assert (rendered.subject, rendered.body) == ("Hi Ann", "About Acme")

    with pytest.raises(UserFacingError):
        await runtime.create_campaign(
            v.NewCampaign(name=" ", account_id=account.id, steps=(), csv_bytes=CSV, mapping=preview.mapping)
        )
    campaign_id = await runtime.create_campaign(
        v.NewCampaign(
            name="Autumn",
            account_id=account.id,
            steps=(Step(1, "Hi {first_name}", "Hello {first_name} at {company}"),),
            csv_bytes=CSV,
            mapping=preview.mapping,
            start_now=True,
        )
    )
    assert await runtime.count_pending() == 2
    drafts = await runtime.list_pending_drafts(0, 10)
    assert {d.recipient for d in drafts} == {"ann@example.com", "bob@example.com"}
    assert drafts[0].body.startswith("Hello ")
    await asyncio.sleep(0.3)
    assert smtp_peer.received == []  # held for approval

    result = await runtime.approve([d.id for d in drafts] + [999])
    assert result.done == 2 and [f.id for f in result.failed] == [999]
    for _ in range(200):
        if len(smtp_peer.accepted) == 2:
            break
        await asyncio.sleep(0.05)
    assert sorted(r for m in smtp_peer.accepted for r in m.recipients) == [
        "ann@example.com",
        "bob@example.com",
    ]
    await asyncio.sleep(0.2)
    summary = next(c for c in await runtime.list_campaigns() if c.id == campaign_id)
    # a one-step campaign whose messages all went out has finished (and said so once)
    assert summary.sent == 2 and summary.status is v.CampaignStatus.FINISHED and summary.held == 0
    assert [e.kind for e in events if isinstance(e, v.Notice)] == [v.NoticeKind.CAMPAIGN_FINISHED]
    assert any(isinstance(e, v.ActivityAdded) and "sent" in e.entry.summary for e in events)
    assert any(isinstance(e, v.QueueChanged) for e in events)
    status = await runtime.status()
    assert status.sent_today == 2 and status.pending_approval == 0
    assert await runtime.count_activity(v.ActivityFilter(text="ann@example.com")) >= 2

    await runtime.pause(None, reason="lunch")
    assert (await runtime.status()).state is v.SendingState.PAUSED
    assert (await runtime.list_accounts())[0].paused_reason == "lunch"
    await runtime.resume(None)
    assert (await runtime.status()).state is not v.SendingState.PAUSED
    unsubscribe()


@pytest.mark.asyncio
async def test_suppressions_through_the_runtime(runtime: Runtime) -> None:
    await runtime.add_suppression("Someone@Example.com", reason=SuppressionReason.MANUAL)
    await runtime.add_suppression("spam.example", reason=SuppressionReason.MANUAL)
    assert await runtime.count_suppressions("") == 2
    entries = await runtime.list_suppressions("example", 0, 10)
    assert {e.value for e in entries} == {"someone@example.com", "@spam.example"}
    with pytest.raises(UserFacingError):
        await runtime.add_suppression("not an address", reason=SuppressionReason.MANUAL)
    await runtime.remove_suppression("someone@example.com")
    with pytest.raises(UserFacingError):
        await runtime.remove_suppression("someone@example.com")
    await runtime.forget_person("gone@example.com")
    values = [e.value for e in await runtime.list_suppressions("", 0, 10)]
    assert "gone@example.com" not in values and any(value.startswith("erased:") for value in values)
