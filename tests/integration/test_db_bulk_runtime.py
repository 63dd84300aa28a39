"""Runtime.create_campaign's bulk path writes the messages the per-lead path wrote, on real SQLite files."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cadence.adapters.db.engine import open_database
from cadence.adapters.db.store import SqliteStore
from cadence.app import smtp_mailer_for
from cadence.core import views as v
from cadence.core.leads import parse_leads_csv
from cadence.core.model import AccountSettings, CampaignStatus, LeadStatus, MessageState, Step
from cadence.core.templates import TemplateError
from cadence.services.demo_runtime import DemoSecrets
from cadence.services.runtime import Runtime, _remapped_csv
from cadence.services.scheduler import draft_for_step

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
# a repeated address in another case, a lead whose {plan} is empty, a link that holds for approval
CSV = (
    b"Email,First name,Company,Plan\n"
    b"Ann@Example.com,Ann,Acme,Gold\n"
    b"bob@example.com,Bob,Beta,\n"
    b"ann@example.com,Annie,Other,Silver\n"
    b"cy@example.org,Cy,Gamma,Bronze\n"
)
STEPS = (
    Step(index=1, subject="Hi {first_name} at {company}", body="Sent to {email}: {plan|the basic plan}"),
    Step(index=2, subject="Again", body="See https://example.com/{first_name}", delay_days=3),
)


class FixedClock:
    def now(self) -> datetime:
        return NOW


def _settings() -> AccountSettings:
    return AccountSettings(email="sales@example.test", display_name="Sam", smtp_host="smtp.example.test")


def _rows(path: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(path)
    try:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM messages ORDER BY lead_id, step_index").fetchall()
    finally:
        conn.close()
    return [{key: value for key, value in zip(row.keys(), row, strict=True) if key != "id"} for row in rows]


def _the_per_lead_way(path: Path) -> None:
    """What _create_campaign_sync did before the bulk path: list the leads back, one draft each."""
    database = open_database(path)
    try:
        store = SqliteStore(database)
        account = store.create_account(_settings(), now=NOW)
        campaign = store.create_campaign(
            name="Bulk", account_id=account.id, steps=STEPS, now=NOW, status=CampaignStatus.PAUSED
        )
        _, _, remapped = _remapped_csv(CSV, None)
        store.add_leads(campaign.id, leads=parse_leads_csv(remapped).leads, now=NOW)
        drafts = []
        for lead in store.list_leads(campaign.id):
            with contextlib.suppress(TemplateError):
                drafts.append(
                    draft_for_step(
                        campaign_id=campaign.id,
                        lead=lead,
                        step=STEPS[0],
                        guardrails=account.settings.guardrails,
                    )
                )
        store.create_drafts(drafts, now=NOW)
    finally:
        database.close()


@pytest.mark.asyncio
async def test_create_campaign_writes_what_the_per_lead_path_wrote(tmp_path: Path) -> None:
    bulk_path, per_lead_path = tmp_path / "bulk.sqlite3", tmp_path / "per_lead.sqlite3"
    _the_per_lead_way(per_lead_path)
    database = open_database(bulk_path)
    store = SqliteStore(database)
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for, clock=FixedClock())
    try:
        account = store.create_account(_settings(), now=NOW)
        spec = v.NewCampaign(
            name="Bulk", account_id=account.id, steps=STEPS, csv_bytes=CSV, mapping=None, start_now=False
        )
        campaign_id = await runtime.create_campaign(spec)
        [summary] = await runtime.list_campaigns()
    finally:
        await runtime.aclose()
        database.close()
    rows = _rows(bulk_path)
    assert rows == _rows(per_lead_path)
    assert [row["subject"] for row in rows] == ["Hi Ann at Acme", "Hi Bob at Beta", "Hi Cy at Gamma"]
    assert rows[0]["body"] == "Sent to ann@example.com: Gold"
    assert rows[1]["body"] == "Sent to bob@example.com: the basic plan"
    held = sum(1 for row in rows if row["state"] == MessageState.PENDING_APPROVAL.value)
    assert (summary.id, summary.leads, summary.held, summary.sent) == (campaign_id, 3, held, 0)
    assert summary.status is v.CampaignStatus.DRAFT


@pytest.mark.asyncio
async def test_list_campaigns_counts_per_campaign(tmp_path: Path) -> None:
    database = open_database(tmp_path / "cadence.sqlite3")
    store = SqliteStore(database)
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for, clock=FixedClock())
    try:
        account = store.create_account(_settings(), now=NOW)
        first = await runtime.create_campaign(
            v.NewCampaign(
                name="One", account_id=account.id, steps=STEPS, csv_bytes=CSV, mapping=None, start_now=True
            )
        )
        await runtime.create_campaign(
            v.NewCampaign(
                name="Two",
                account_id=account.id,
                steps=STEPS,
                csv_bytes=CSV.replace(b"@", b"@two."),
                mapping=None,
            )
        )
        leads = store.list_leads(first)
        store.set_lead_status(leads[0].id, status=LeadStatus.REPLIED, now=NOW, reason="replied")
        store.set_lead_status(leads[1].id, status=LeadStatus.BOUNCED, now=NOW, reason="bounced")
        summaries = {summary.name: summary for summary in await runtime.list_campaigns()}
    finally:
        await runtime.aclose()
        database.close()
    one, two = summaries["One"], summaries["Two"]
    assert (one.leads, one.replied, one.bounced, one.unsubscribed) == (3, 1, 1, 0)
    assert one.held == 1 and two.held == 3  # the stopped leads' messages were cancelled
    assert (two.leads, two.replied, two.bounced) == (3, 0, 0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("encoding", "delimiter"), [("utf-16", ";"), ("cp1252", ";"), ("utf-8-sig", "\t"), ("utf-8", ",")]
)
async def test_the_import_reads_what_core_leads_reads_whatever_the_encoding_and_delimiter(
    tmp_path: Path, encoding: str, delimiter: str
) -> None:
    text = delimiter.join(["E-mail", "Vorname", "Firma"]) + "\r\n"
    text += delimiter.join(["renée@café.example", "Renée", "Café Müller"]) + "\r\n"
    text = text.replace("renée@café.example", "renee@cafe.example")
    csv_bytes = text.encode(encoding)
    database = open_database(tmp_path / "c.sqlite3")
    store = SqliteStore(database)
    runtime = Runtime(store=store, secrets=DemoSecrets(), mailer_factory=smtp_mailer_for, clock=FixedClock())
    try:
        mapping = {"E-mail": "email", "Vorname": "first_name", "Firma": "company"}
        preview = await runtime.import_leads_preview(csv_bytes, mapping=mapping)
        assert preview.columns == ("E-mail", "Vorname", "Firma")
        assert preview.accepted == 1 and not preview.skipped
        account = store.create_account(_settings(), now=NOW)
        campaign_id = await runtime.create_campaign(
            v.NewCampaign(
                name="Umlaut", account_id=account.id, steps=STEPS, csv_bytes=csv_bytes, mapping=mapping,
                start_now=False,
            )
        )
        [enrolled] = store.list_leads(campaign_id)
        assert (enrolled.lead.email, enrolled.lead.first_name, enrolled.lead.company) == (
            "renee@cafe.example",
            "Renée",
            "Café Müller",
        )
    finally:
        await runtime.aclose()
        database.close()
