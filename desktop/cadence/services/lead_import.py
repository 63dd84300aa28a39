"""Create a campaign from a large leads CSV without freezing the window: the file is read and parsed on a
worker thread, then leads and their first drafts are written in chunks on the database thread, with a
progress report after each chunk and a stop request honoured between chunks.

Runtime.create_campaign does the same work in three big store calls with the CSV re-mapped on the event
loop (100,000 rows: a stall of about a second, no progress, no way to stop). The runtime wires this in as
`create_campaign_with_progress` (core.ports.ProgressiveCampaignCreator).

Stopping: chunks already written stay written (the store has no "delete campaign"); their drafts are
rejected with a reason and the campaign is marked finished, so nothing from a stopped import is ever sent.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from cadence.core import views as v
from cadence.core.leads import LeadsFileError, decode, parse_leads_csv, sniff_delimiter
from cadence.core.model import CampaignStatus, Lead, MessageState, NewDraft, Step
from cadence.core.ports import Clock, ImportProgress, RecordNotFound, StopFlag, Store, UserFacingError
from cadence.core.templates import TemplateError, render_step
from cadence.services.dbworker import DbWorker
from cadence.services.scheduler import draft_for_step

log = logging.getLogger(__name__)

IMPORT_CHUNK = 2_000
STOPPED_REASON = "import stopped before it finished"


class ImportStopped(UserFacingError):
    """The user stopped the import; the message says what was kept."""


def csv_header(csv_bytes: bytes) -> tuple[tuple[str, ...], str, str]:
    """The file's column names, its delimiter and the text after the header line, decoded and sniffed the
    way core.leads reads the file (BOM, UTF-8, UTF-16, Windows-1252; comma, semicolon or tab)."""
    try:
        text, _encoding = decode(csv_bytes)
    except LeadsFileError as exc:
        raise UserFacingError(str(exc)) from exc
    header_line, _newline, rest = text.partition("\n")
    header_line = header_line.rstrip("\r")
    if not header_line.strip():
        raise UserFacingError("The file is empty.")
    delimiter = sniff_delimiter(header_line)
    return tuple(next(csv.reader([header_line], delimiter=delimiter))), delimiter, rest


def remap_header(csv_bytes: bytes, mapping: Mapping[str, str]) -> bytes:
    """The file with only its header line renamed to lead fields (what core.leads understands). The rows
    are passed through untouched, so this costs one header parse, not a second pass over the file."""
    columns, delimiter, rest = csv_header(csv_bytes)
    header = [mapping.get(c, f"fields.{c}").removeprefix("fields.") or c for c in columns]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(header)
    return (out.getvalue() + rest).encode("utf-8")


def _read_leads(spec: v.NewCampaign, stop: StopFlag) -> tuple[Lead, ...]:
    if stop.is_set():
        raise ImportStopped("Import stopped; nothing was saved.")
    try:
        parsed = parse_leads_csv(remap_header(spec.csv_bytes, spec.mapping))
    except LeadsFileError as exc:
        raise UserFacingError(str(exc)) from exc
    return tuple(parsed.leads)


def _write_chunk(
    store: Store,
    *,
    campaign_id: int,
    step: Step,
    leads: Sequence[Lead],
    already_written: int,
    now: datetime,
) -> int:
    """Add one chunk of leads and their first-step drafts; how many leads were added."""
    campaign = store.get_campaign(campaign_id)
    account = store.get_account(campaign.account_id)
    added = store.add_leads(campaign_id, leads=leads, now=now)
    drafts: list[NewDraft] = []
    for lead in store.list_leads(campaign_id, limit=added, offset=already_written):
        try:
            drafts.append(
                draft_for_step(
                    campaign_id=campaign_id, lead=lead, step=step, guardrails=account.settings.guardrails
                )
            )
        except TemplateError:
            log.warning("lead %s: step 1 cannot be rendered", lead.id)
    store.create_drafts_bulk(drafts, now=now)
    return added


def _abandon(store: Store, *, campaign_id: int, now: datetime) -> None:
    """Runs on the database thread after any chunk still in flight, so it sees every draft written."""
    waiting = [
        m.id
        for m in store.list_messages(
            campaign_id=campaign_id, states=[MessageState.PENDING_APPROVAL, MessageState.APPROVED]
        )
    ]
    for start in range(0, len(waiting), IMPORT_CHUNK):
        store.reject(waiting[start : start + IMPORT_CHUNK], now=now, reason=STOPPED_REASON)
    store.set_campaign_status(campaign_id, status=CampaignStatus.FINISHED)


async def create_campaign_in_chunks(
    spec: v.NewCampaign,
    *,
    store: Store,
    db: DbWorker,
    clock: Clock,
    on_progress: Callable[[ImportProgress], None] | None = None,
    stop: StopFlag | None = None,
    chunk_size: int = IMPORT_CHUNK,
) -> int:
    """Validate `spec`, create the campaign and its leads and first drafts chunk by chunk; the new id.

    `on_progress` is called on the event loop after the file is read and after every chunk. Setting
    `stop` (from any thread) ends the import at the next chunk boundary with ImportStopped."""
    stop = stop or threading.Event()
    report = on_progress or (lambda _progress: None)
    if not spec.name.strip():
        raise UserFacingError("Give the campaign a name.")
    if not spec.steps:
        raise UserFacingError("A campaign needs at least one step.")
    report(ImportProgress(done=0, total=0, stage="Reading the file…"))
    leads = await asyncio.to_thread(_read_leads, spec, stop)
    if not leads:
        raise UserFacingError("No usable leads in the file.")
    steps = tuple(replace(step, index=number) for number, step in enumerate(spec.steps, start=1))
    for step in steps:
        try:
            render_step(step, lead=leads[0])
        except TemplateError as exc:
            raise UserFacingError(f"Step {step.index}: {exc}") from exc
    if stop.is_set():
        raise ImportStopped("Import stopped; nothing was saved.")
    now = clock.now()
    try:
        await db.call(store.get_account, spec.account_id)
    except RecordNotFound:
        raise UserFacingError("The sending account no longer exists.") from None
    # paused while it fills, so the scheduler never sends from a half-imported campaign
    campaign = await db.call(
        store.create_campaign,
        name=spec.name.strip(),
        account_id=spec.account_id,
        steps=steps,
        now=now,
        status=CampaignStatus.PAUSED,
    )
    total = len(leads)
    written = 0
    report(ImportProgress(done=0, total=total, stage="Saving leads…"))
    try:
        for start in range(0, total, chunk_size):
            if stop.is_set():
                raise ImportStopped(
                    f"Import stopped after {written:,} of {total:,} leads. They are kept in "
                    f"“{campaign.name}”, marked finished; none of them will be emailed."
                )
            written += await db.call(
                _write_chunk,
                store,
                campaign_id=campaign.id,
                step=steps[0],
                leads=leads[start : start + chunk_size],
                already_written=written,
                now=now,
            )
            report(ImportProgress(done=min(start + chunk_size, total), total=total, stage="Saving leads…"))
    except BaseException:
        await asyncio.shield(db.call(_abandon, store, campaign_id=campaign.id, now=now))
        raise
    if spec.start_now:
        await db.call(store.set_campaign_status, campaign.id, status=CampaignStatus.ACTIVE)
    return campaign.id
