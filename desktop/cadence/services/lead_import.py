"""Create a campaign from a large leads CSV without freezing the window: the file is read and parsed on a
worker thread, then leads and their first drafts are written in chunks on the database thread, with a
progress report after each chunk and a stop request honoured between chunks.

The runtime wires this in as `create_campaign_with_progress` (core.ports.ProgressiveCampaignCreator) and
as `create_campaign` (no progress, no stop). Each chunk's drafts are rendered on a worker thread while the
database thread writes the chunk before it.

Stopping: chunks already written stay written (the store has no "delete campaign"); their drafts are
rejected with a reason and the campaign is marked finished, so nothing from a stopped import is ever sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cadence.core import policy
from cadence.core import views as v
from cadence.core.leads import LeadsFileError, decode, parse_leads_csv, sniff_delimiter
from cadence.core.model import CampaignStatus, Guardrails, HoldReason, Lead, MessageState, NewDraft, Step
from cadence.core.ports import Clock, ImportProgress, RecordNotFound, StopFlag, Store, UserFacingError
from cadence.core.risk import risk_reasons_of_parts
from cadence.core.templates import TemplateError, check_header_text, lead_values, render_parts, render_step
from cadence.services.dbworker import DbWorker

log = logging.getLogger(__name__)

IMPORT_CHUNK = 5_000
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


_collector_lock = threading.Lock()
_collector_holders = 0
_collector_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection while the block runs (in any thread; nested and concurrent uses
    compose). An import allocates ~100,000 long-lived leads and drafts, and each full collection over them
    holds the GIL for 70-160 ms: the window froze that long. Reference counting still frees everything."""
    global _collector_holders, _collector_was_enabled
    with _collector_lock:
        if _collector_holders == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_holders += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_holders -= 1
            if _collector_holders == 0 and _collector_was_enabled:
                gc.enable()


@dataclass(frozen=True, slots=True)
class PreparedDraft:
    """A lead's first-step draft before the lead has an id: everything scheduler.draft_for_step decides."""

    address: str  # as stored (stripped, lower-cased): the key to the lead id once written
    subject: str
    body: str
    hold_reasons: tuple[HoldReason, ...]


def prepare_drafts(leads: Iterable[Lead], *, step: Step, guardrails: Guardrails) -> list[PreparedDraft]:
    """scheduler.draft_for_step for leads not yet written (the same text and reasons, in the same order),
    with the risk scan keyed piece by piece so a template's literal text is scanned once, not per lead. A
    lead whose subject cannot be rendered (a line break in a merge value) is logged and left out."""
    prepared: list[PreparedDraft] = []
    for lead in leads:
        address = lead.email.strip().lower()  # what the store keeps, and what {email} shows
        if address != lead.email:
            lead = Lead(
                email=address,
                first_name=lead.first_name,
                last_name=lead.last_name,
                company=lead.company,
                timezone=lead.timezone,
                consent=lead.consent,
                fields=lead.fields,
            )
        values = lead_values(lead)
        subject_parts = render_parts(step.subject, values=values)
        body_parts = render_parts(step.body, values=values)
        try:
            subject = check_header_text("".join(subject_parts).strip(), what="the subject")
        except TemplateError:
            log.warning("a lead of the import: step %d cannot be rendered", step.index)
            continue
        holds = policy.hold_reasons(
            lead=lead, step_index=step.index, subject="", body="", guardrails=guardrails
        ) + risk_reasons_of_parts(subject_parts, body_parts)
        prepared.append(PreparedDraft(address, subject, "".join(body_parts), holds))
    return prepared


def drafts_for(
    prepared: Iterable[PreparedDraft], *, lead_ids: dict[str, int], campaign_id: int, step_index: int
) -> list[NewDraft]:
    """The drafts of the prepared leads that were written. `lead_ids` maps stored addresses to lead ids and
    is consumed, so an address gets one draft."""
    drafts: list[NewDraft] = []
    pending, approved = MessageState.PENDING_APPROVAL, MessageState.APPROVED
    for draft in prepared:
        lead_id = lead_ids.pop(draft.address, None)
        if lead_id is not None:
            drafts.append(
                NewDraft(
                    campaign_id=campaign_id,
                    lead_id=lead_id,
                    step_index=step_index,
                    subject=draft.subject,
                    body=draft.body,
                    state=pending if draft.hold_reasons else approved,
                    hold_reasons=draft.hold_reasons,
                )
            )
    return drafts


def first_step_drafts(
    leads: Iterable[Lead],
    *,
    lead_ids: dict[str, int],
    campaign_id: int,
    step: Step,
    guardrails: Guardrails,
) -> list[NewDraft]:
    """prepare_drafts and drafts_for in one go, for leads already written."""
    return drafts_for(
        prepare_drafts(leads, step=step, guardrails=guardrails),
        lead_ids=lead_ids,
        campaign_id=campaign_id,
        step_index=step.index,
    )


def _read_leads(spec: v.NewCampaign, stop: StopFlag) -> tuple[Lead, ...]:
    if stop.is_set():
        raise ImportStopped("Import stopped; nothing was saved.")
    try:
        with collector_paused():
            parsed = parse_leads_csv(remap_header(spec.csv_bytes, spec.mapping))
            # the leads live through the whole import: out of the collector's view (like app.settle_heap),
            # or every later full collection walks all of them while the window waits for the GIL
            gc.freeze()
    except LeadsFileError as exc:
        raise UserFacingError(str(exc)) from exc
    return parsed.leads


def _write_chunk(
    store: Store,
    *,
    campaign_id: int,
    step_index: int,
    leads: Sequence[Lead],
    prepared: Sequence[PreparedDraft],
    now: datetime,
) -> int:
    """Add one chunk of leads and their prepared first-step drafts; how many leads were added."""
    with collector_paused():
        added = store.add_leads(campaign_id, leads=leads, now=now)
        lead_ids = store.lead_ids_by_email(campaign_id, emails=[draft.address for draft in prepared])
        drafts = drafts_for(prepared, lead_ids=lead_ids, campaign_id=campaign_id, step_index=step_index)
        store.create_drafts_bulk(drafts, now=now)
    return added


def _prepare_quietly(leads: Sequence[Lead], *, step: Step, guardrails: Guardrails) -> list[PreparedDraft]:
    with collector_paused():
        return prepare_drafts(leads, step=step, guardrails=guardrails)


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
        account = await db.call(store.get_account, spec.account_id)
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

    def prepare(start: int) -> asyncio.Future[list[PreparedDraft]]:
        chunk = leads[start : start + chunk_size]
        guardrails = account.settings.guardrails
        return asyncio.ensure_future(
            asyncio.to_thread(_prepare_quietly, chunk, step=steps[0], guardrails=guardrails)
        )

    # a pipeline: the next chunk's drafts are rendered on a worker thread while the database thread writes
    # this one (SQLite lets go of the GIL while it works), so the two cores share the import
    upcoming = prepare(0)
    try:
        for start in range(0, total, chunk_size):
            if stop.is_set():
                raise ImportStopped(
                    f"Import stopped after {written:,} of {total:,} leads. They are kept in "
                    f"“{campaign.name}”, marked finished; none of them will be emailed."
                )
            prepared = await upcoming
            if start + chunk_size < total:
                upcoming = prepare(start + chunk_size)
            written += await db.call(
                _write_chunk,
                store,
                campaign_id=campaign.id,
                step_index=steps[0].index,
                leads=leads[start : start + chunk_size],
                prepared=prepared,
                now=now,
            )
            report(ImportProgress(done=min(start + chunk_size, total), total=total, stage="Saving leads…"))
    except BaseException:
        if not upcoming.done():
            upcoming.cancel()
        with contextlib.suppress(BaseException):
            await upcoming
        await asyncio.shield(db.call(_abandon, store, campaign_id=campaign.id, now=now))
        raise
    if spec.start_now:
        await db.call(store.set_campaign_status, campaign.id, status=CampaignStatus.ACTIVE)
    return campaign.id
