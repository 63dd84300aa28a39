"""A dry run of a campaign through the pacing engine, on a simulated clock.

Assumes every send succeeds and the user approves every draft held only for risk or first touch; leads
held for consent stay held. The planner keeps the ledger incrementally (sorted windows with a moving
head), so each send costs a few binary searches, not a rescan of everything sent so far.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cadence.core.leads import normalize_address
from cadence.core.legal import legal_basis_for, needs_consent_hold
from cadence.core.model import BlockReason, Guardrails, HoldReason, Lead, LegalBasis, SentRecord
from cadence.core.pacing import (
    DAY_US,
    FOREVER_US,
    LedgerIndex,
    PacingRules,
    earliest_us,
    from_us,
    to_us,
    zone,
)
from cadence.core.policy import is_suppressed

HORIZON = "horizon"


@dataclass(frozen=True, slots=True)
class PlannedSend:
    at: datetime
    to: str
    step: int
    legal_basis: LegalBasis


@dataclass(frozen=True, slots=True)
class PlanBlocked:
    to: str
    reason: BlockReason


@dataclass(frozen=True, slots=True)
class PlanHeld:
    to: str
    reason: HoldReason


@dataclass(frozen=True, slots=True)
class PlanUnscheduled:
    to: str
    step: int
    reason: str = HORIZON


@dataclass(frozen=True, slots=True)
class LeadProgress:
    """Where a lead of a running campaign stands: the next step it waits for, and when that step is due
    (None: as soon as the rules allow). A fresh lead is `LeadProgress()`."""

    next_step: int = 1
    due: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanResult:
    sends: tuple[PlannedSend, ...]  # in time order
    blocked: tuple[PlanBlocked, ...]
    held: tuple[PlanHeld, ...]
    unscheduled: tuple[PlanUnscheduled, ...]

    @property
    def finish(self) -> datetime | None:
        """When the last step of the last lead goes; None if nothing goes or the horizon cut the plan."""
        if not self.sends or self.unscheduled:
            return None
        return self.sends[-1].at


class _LeadState:
    __slots__ = ("domain", "email", "legal_basis", "next_step", "order")

    def __init__(self, email: str, order: int, legal_basis: LegalBasis) -> None:
        self.email = email
        self.domain = email.rpartition("@")[2].lower()
        self.order = order
        self.next_step = 1
        self.legal_basis = legal_basis


class _Pool:
    """Candidates whose business window is in one time zone: due follow-ups first, then first touches in
    file order; a domain at its cap is set aside until its window frees up."""

    def __init__(self, tz: ZoneInfo, first_due: int) -> None:
        self.tz = tz
        self.first_due = first_due
        self.followups: list[tuple[int, int, _LeadState]] = []
        self.waiting_followups: dict[str, list[tuple[int, int, _LeadState]]] = {}
        self.first_by_domain: dict[str, deque[_LeadState]] = {}
        self.first_ready: list[tuple[int, str]] = []
        self.in_ready: set[str] = set()
        self.capped: list[tuple[int, str]] = []
        self.capped_domains: set[str] = set()

    def add_first(self, state: _LeadState) -> None:
        queue = self.first_by_domain.get(state.domain)
        if queue is None:
            queue = self.first_by_domain[state.domain] = deque()
        queue.append(state)
        self._make_ready(state.domain)

    def _make_ready(self, domain: str) -> None:
        queue = self.first_by_domain.get(domain)
        if queue and domain not in self.in_ready and domain not in self.capped_domains:
            self.in_ready.add(domain)
            heapq.heappush(self.first_ready, (queue[0].order, domain))

    def add_followup(self, due: int, state: _LeadState) -> None:
        heapq.heappush(self.followups, (due, state.order, state))

    def _next_available(self) -> int | None:
        times = []
        if self.followups:
            times.append(self.followups[0][0])
        if self.first_ready:
            times.append(self.first_due)
        if self.capped:
            times.append(self.capped[0][0])
        return min(times) if times else None

    def _release(self, moment: int) -> None:
        while self.capped and self.capped[0][0] <= moment:
            _, domain = heapq.heappop(self.capped)
            self.capped_domains.discard(domain)
            self._make_ready(domain)
            for entry in self.waiting_followups.pop(domain, ()):
                heapq.heappush(self.followups, entry)

    def _set_aside(self, domain: str, release: int) -> None:
        if domain not in self.capped_domains:
            self.capped_domains.add(domain)
            heapq.heappush(self.capped, (release, domain))

    def _pick(self, moment: int, index: LedgerIndex, domain_cap: int) -> tuple[bool, _LeadState] | None:
        def release_of(domain: str) -> int | None:
            if domain_cap <= 0:
                return FOREVER_US
            window = index.domains.get(domain)
            return None if window is None else window.release_time(at=moment, span=DAY_US, cap=domain_cap)

        while self.followups and self.followups[0][0] <= moment:
            state = self.followups[0][2]
            if state.domain in self.capped_domains:
                self.waiting_followups.setdefault(state.domain, []).append(heapq.heappop(self.followups))
                continue
            release = release_of(state.domain)
            if release is None:
                return True, state
            self.waiting_followups.setdefault(state.domain, []).append(heapq.heappop(self.followups))
            self._set_aside(state.domain, release)
        if self.first_due <= moment:
            while self.first_ready:
                _, domain = self.first_ready[0]
                release = release_of(domain)
                if release is None:
                    return False, self.first_by_domain[domain][0]
                heapq.heappop(self.first_ready)
                self.in_ready.discard(domain)
                self._set_aside(domain, release)
        return None

    def peek(
        self, *, now: int, index: LedgerIndex, rules: PacingRules, rng: random.Random, horizon_end: int
    ) -> tuple[int, bool, _LeadState] | None:
        """The earliest send this pool can make at or after `now` (before the horizon), without taking it."""
        moment = now
        while True:
            available = self._next_available()
            if available is None:
                return None
            moment = max(moment, available)
            if moment >= horizon_end:
                return None
            self._release(moment)
            moment, _ = earliest_us(
                index, rules, start=moment, domain=None, window_tz=self.tz, jitter_u=rng.random()
            )
            if moment >= horizon_end:
                return None
            self._release(moment)
            picked = self._pick(moment, index, rules.domain_cap)
            if picked is not None:
                return moment, picked[0], picked[1]

    def take(self, is_followup: bool) -> None:
        if is_followup:
            heapq.heappop(self.followups)
            return
        _, domain = heapq.heappop(self.first_ready)
        self.in_ready.discard(domain)
        queue = self.first_by_domain[domain]
        queue.popleft()
        if queue:
            self._make_ready(domain)
        else:
            del self.first_by_domain[domain]

    def pending(self) -> list[_LeadState]:
        states = [entry[2] for entry in self.followups]
        states.extend(entry[2] for entries in self.waiting_followups.values() for entry in entries)
        states.extend(state for queue in self.first_by_domain.values() for state in queue)
        return states


def plan_campaign(
    leads: Sequence[Lead],
    *,
    step_delays_days: Sequence[float],
    guardrails: Guardrails,
    start: datetime,
    horizon_days: float,
    rng: random.Random,
    suppressed_addresses: frozenset[str] = frozenset(),
    suppressed_domains: frozenset[str] = frozenset(),
    workspace: bool = False,
    progress: Sequence[LeadProgress] | None = None,
    history: Sequence[SentRecord] = (),
    warmup_started_at: datetime | None = None,
    pace_factor: float = 1.0,
) -> PlanResult:
    """Plan every step for every lead from `start` until `start + horizon_days`.

    `step_delays_days[i]`: days to wait after the previous step (for the first: after `start`).
    Leads are taken in the given order; a repeated address is blocked as a duplicate.

    For a campaign already running: `progress[i]` says where `leads[i]` stands (its remaining steps are
    planned, due follow-ups before first touches), `history` is the ledger already sent (it counts against
    the rolling caps), `warmup_started_at` and `pace_factor` are the account's.
    """
    if progress is not None and len(progress) != len(leads):
        raise ValueError("progress must give one entry per lead")
    if progress is not None and any(not 1 <= entry.next_step <= len(step_delays_days) for entry in progress):
        raise ValueError("a lead's next step must be one of the campaign's steps")
    if not step_delays_days:
        raise ValueError("a campaign needs at least one step")
    if any(not math.isfinite(delay) or delay < 0 for delay in step_delays_days):
        raise ValueError("step delays must be non-negative numbers of days")
    if not (math.isfinite(horizon_days) and horizon_days > 0):
        raise ValueError("the horizon must be a positive number of days")
    if horizon_days > 3660:
        raise ValueError("the horizon is limited to ten years")
    rules = PacingRules(
        guardrails,
        warmup_started_at=start if warmup_started_at is None else warmup_started_at,
        pace_factor=pace_factor,
        workspace=workspace,
    )
    start_us = to_us(start)
    horizon_end = start_us + round(horizon_days * DAY_US)
    delays_us = [round(delay * DAY_US) for delay in step_delays_days]
    sender_tz = zone(guardrails.timezone)
    pools: dict[str, _Pool] = {}

    blocked: list[PlanBlocked] = []
    held: list[PlanHeld] = []
    states: list[_LeadState] = []
    seen: set[str] = set()
    lowered_addresses = frozenset(a.strip().lower() for a in suppressed_addresses)
    lowered_domains = frozenset(d.strip().lower() for d in suppressed_domains)
    for order, lead in enumerate(leads):
        if is_suppressed(lead.email, addresses=lowered_addresses, domains=lowered_domains):
            blocked.append(PlanBlocked(lead.email, BlockReason.SUPPRESSED))
            continue
        try:
            email = normalize_address(lead.email)
        except ValueError:
            blocked.append(PlanBlocked(lead.email, BlockReason.INVALID_ADDRESS))
            continue
        if email.lower() in seen:
            blocked.append(PlanBlocked(lead.email, BlockReason.DUPLICATE))
            continue
        seen.add(email.lower())
        if needs_consent_hold(address=email, consent=lead.consent):
            held.append(PlanHeld(email, HoldReason.CONSENT_REQUIRED))
            continue
        state = _LeadState(email, order, legal_basis_for(email))
        standing = progress[order] if progress is not None else None
        states.append(state)
        tz_name = (
            lead.timezone if guardrails.use_recipient_timezone and lead.timezone else guardrails.timezone
        )
        pool = pools.get(tz_name)
        if pool is None:
            tz = sender_tz if tz_name == guardrails.timezone else zone(tz_name)
            pool = pools[tz_name] = _Pool(tz, start_us + delays_us[0])
        if standing is None or (standing.next_step == 1 and standing.due is None):
            pool.add_first(state)
        else:
            state.next_step = standing.next_step
            due = start_us if standing.due is None else max(start_us, to_us(standing.due))
            pool.add_followup(due, state)

    index = LedgerIndex.from_records(history) if history else LedgerIndex()
    sends: list[PlannedSend] = []
    ordered_pools = [pools[name] for name in sorted(pools)]
    now = start_us
    while True:
        best: tuple[int, bool, _LeadState, _Pool] | None = None
        for pool in ordered_pools:
            found = pool.peek(now=now, index=index, rules=rules, rng=rng, horizon_end=horizon_end)
            if found is not None and (best is None or found[0] < best[0]):
                best = (*found, pool)
        if best is None:
            break
        moment, is_followup, state, pool = best
        pool.take(is_followup)
        index.record(at=moment, domain=state.domain)
        sends.append(PlannedSend(from_us(moment), state.email, state.next_step, state.legal_basis))
        state.next_step += 1
        if state.next_step <= len(delays_us):
            pool.add_followup(moment + delays_us[state.next_step - 1], state)
        now = moment
        if len(sends) % 4096 == 0:
            index.prune(moment - 2 * DAY_US)

    unscheduled = sorted(
        (state for pool in ordered_pools for state in pool.pending()), key=lambda state: state.order
    )
    return PlanResult(
        sends=tuple(sends),
        blocked=tuple(blocked),
        held=tuple(held),
        unscheduled=tuple(PlanUnscheduled(state.email, state.next_step) for state in unscheduled),
    )


def parse_steps(text: str) -> tuple[float, ...]:
    """`0,3,7` → (0.0, 3.0, 7.0): days to wait before each step."""
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--steps must be comma-separated numbers of days, not {text!r}") from None
    if any(not math.isfinite(delay) or delay < 0 for delay in delays):
        raise ValueError("step delays must be non-negative numbers of days")
    return delays
