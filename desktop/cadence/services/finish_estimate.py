"""When a running campaign's last step goes out: the `cadence plan` engine (core.planner) fed from the store.

Inputs: the campaign's unsent messages (each lead's next step and when it is due), its steps' delays, the
account's guardrails, warm-up start, pace factor and pause, and the ledger of the last 24 h (what was
already sent counts against the rolling caps). Like `cadence plan`, it assumes drafts held for risk or
first touch get approved and every send succeeds; leads held for consent stay held.

Reading runs on the database worker; planning (up to a second for 10,000 leads × 3 steps) on a thread of
its own, never on the event loop. Results are cached per campaign and recomputed when the campaign's or its
account's tallies change (a send, an approval, a deferral, settings, a pause) or after MAX_AGE.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from cadence.core.model import DeferReason, Guardrails, Lead, MessageState, SentRecord
from cadence.core.pacing import FOREVER, account_hold
from cadence.core.planner import LeadProgress, PlanResult, plan_campaign
from cadence.core.ports import Clock, Store
from cadence.services.dbworker import DbWorker

log = logging.getLogger(__name__)

MAX_AGE = timedelta(minutes=5)
HORIZON_DAYS = 3650.0
PLAN_SEED = 0  # the jitter's seed: the same inputs give the same estimate
ESTIMATING = "estimating…"
# messages that will still go out (held drafts included: the plan assumes the user approves them)
OPEN_STATES = (
    MessageState.DRAFT,
    MessageState.PENDING_APPROVAL,
    MessageState.APPROVED,
    MessageState.QUEUED,
    MessageState.DEFERRED,
    MessageState.SENDING,
)


@dataclass(frozen=True, slots=True)
class EstimateInputs:
    """Everything the planner is given for one campaign (also what a test hands core.planner directly)."""

    leads: tuple[Lead, ...]
    progress: tuple[LeadProgress, ...]
    step_delays_days: tuple[float, ...]
    guardrails: Guardrails
    start: datetime
    history: tuple[SentRecord, ...]
    warmup_started_at: datetime | None
    pace_factor: float
    paused_reason: str | None = None  # the account is paused (without an end in sight): no date


@dataclass(frozen=True, slots=True)
class FinishEstimate:
    finish: datetime | None  # None: see `note` (or nothing left to send)
    note: str = ""  # "estimating…", "account paused (…)", "more than 10 years away"
    sends: int = 0  # sends still planned


def read_inputs(store: Store, campaign_id: int, *, now: datetime) -> EstimateInputs:
    """The planner's inputs for one campaign, read from the store (call on the database worker)."""
    campaign = store.get_campaign(campaign_id)
    account = store.get_account(campaign.account_id)
    snapshot = store.snapshot(account.id, now=now)
    guardrails = account.settings.guardrails
    steps = sorted(campaign.steps, key=lambda step: step.index)
    # a running campaign's first touches are due now; later steps count from the previous send
    delays = (0.0, *(step.delay_days for step in steps[1:])) if steps else ()
    start = now
    paused_reason: str | None = None
    hold = account_hold(guardrails=guardrails, snapshot=snapshot, cold=True)
    if hold is not None:
        until, reason = hold
        if reason is DeferReason.PAUSED:
            paused_reason = snapshot.paused_reason or "paused"
        elif until < FOREVER:  # backing off, or the bounce breaker: sending resumes by itself
            start = max(start, until)
    leads: list[Lead] = []
    progress: list[LeadProgress] = []
    seen: set[int] = set()
    for open_step in store.list_open_steps(campaign_id, states=OPEN_STATES):
        lead_id = open_step.lead.id
        if lead_id is not None:
            if lead_id in seen:  # a lead has one open step at a time; keep the earliest
                continue
            seen.add(lead_id)
        step, due = open_step.step_index, open_step.next_attempt_at
        if open_step.state is MessageState.SENDING:  # going out now: its next step is what is left
            step += 1
            if step > len(delays):
                continue
            due = now + timedelta(days=delays[step - 1])
        if not 1 <= step <= len(delays):
            continue
        if open_step.resume_at is not None and (due is None or open_step.resume_at > due):
            due = open_step.resume_at
        if due is not None and due <= start:
            due = None if step == 1 else start
        leads.append(open_step.lead)
        progress.append(LeadProgress(next_step=step, due=due))
    return EstimateInputs(
        leads=tuple(leads),
        progress=tuple(progress),
        step_delays_days=delays,
        guardrails=guardrails,
        start=start,
        history=snapshot.sends,
        warmup_started_at=snapshot.warmup_started_at,
        pace_factor=snapshot.pace_factor,
        paused_reason=paused_reason,
    )


def plan_inputs(inputs: EstimateInputs) -> PlanResult:
    """core.planner over the inputs (pure; seconds at most, so run it off the event loop)."""
    return plan_campaign(
        inputs.leads,
        step_delays_days=inputs.step_delays_days or (0.0,),
        guardrails=inputs.guardrails,
        start=inputs.start,
        horizon_days=HORIZON_DAYS,
        rng=random.Random(PLAN_SEED),
        progress=inputs.progress,
        history=inputs.history,
        warmup_started_at=inputs.warmup_started_at,
        pace_factor=inputs.pace_factor,
    )


def estimate_from(inputs: EstimateInputs) -> FinishEstimate:
    if inputs.paused_reason is not None:
        return FinishEstimate(None, note=f"account paused ({inputs.paused_reason})")
    if not inputs.leads:
        return FinishEstimate(None)
    result = plan_inputs(inputs)
    if result.unscheduled:
        years = f"{HORIZON_DAYS / 365:.0f}"
        return FinishEstimate(None, note=f"more than {years} years away", sends=len(result.sends))
    return FinishEstimate(result.finish, sends=len(result.sends))


@dataclass(slots=True)
class _Entry:
    estimate: FinishEstimate
    fingerprint: Hashable
    computed_at: datetime


class FinishEstimates:
    """Per-campaign cache of finish estimates, recomputed in the background.

    `lookup` never blocks: it answers from the cache (or None: not estimated yet) and starts a refresh when
    the entry is missing, older than MAX_AGE or its fingerprint (the campaign's and account's tallies)
    changed; `on_ready(campaign_id)` is called on the event loop when a refresh lands with a different
    estimate."""

    def __init__(
        self,
        *,
        store: Store,
        db: DbWorker,
        clock: Clock,
        on_ready: Callable[[int], None],
        max_age: timedelta = MAX_AGE,
    ) -> None:
        self._store = store
        self._db = db
        self._clock = clock
        self._on_ready = on_ready
        self._max_age = max_age
        self._cache: dict[int, _Entry] = {}
        self._tasks: dict[int, asyncio.Task[FinishEstimate]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cadence-estimate")
        self._closed = False

    def lookup(self, campaign_id: int, *, fingerprint: Hashable) -> FinishEstimate | None:
        entry = self._cache.get(campaign_id)
        fresh = (
            entry is not None
            and entry.fingerprint == fingerprint
            and self._clock.now() - entry.computed_at < self._max_age
        )
        if not fresh:
            self._start(campaign_id, fingerprint)
        return entry.estimate if entry is not None else None

    def pending(self) -> list[asyncio.Task[FinishEstimate]]:
        return list(self._tasks.values())

    async def refresh(self, campaign_id: int, *, fingerprint: Hashable = None) -> FinishEstimate:
        """Compute now (or join the refresh in progress) and cache the result."""
        task = self._start(campaign_id, fingerprint)
        return await asyncio.shield(task)

    def forget(self, campaign_id: int) -> None:
        self._cache.pop(campaign_id, None)

    def _start(self, campaign_id: int, fingerprint: Hashable) -> asyncio.Task[FinishEstimate]:
        task = self._tasks.get(campaign_id)
        if task is None and not self._closed:
            task = asyncio.get_running_loop().create_task(
                self._compute(campaign_id, fingerprint), name=f"finish-estimate-{campaign_id}"
            )
            self._tasks[campaign_id] = task
        if task is None:
            raise RuntimeError("the finish estimates are shut down")
        return task

    async def _compute(self, campaign_id: int, fingerprint: Hashable) -> FinishEstimate:
        previous = self._cache.get(campaign_id)
        try:
            now = self._clock.now()
            inputs = await self._db.call(read_inputs, self._store, campaign_id, now=now)
            loop = asyncio.get_running_loop()
            estimate = await loop.run_in_executor(self._executor, estimate_from, inputs)
            self._cache[campaign_id] = _Entry(estimate, fingerprint, now)
        except Exception:
            log.exception("campaign %d: the finish date could not be estimated", campaign_id)
            estimate = FinishEstimate(None)
            self._cache[campaign_id] = _Entry(estimate, fingerprint, self._clock.now())
        finally:
            self._tasks.pop(campaign_id, None)
        if not self._closed and (previous is None or previous.estimate != estimate):
            self._on_ready(campaign_id)
        return estimate

    async def aclose(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
