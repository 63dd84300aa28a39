"""`cadence plan`: a dry run of a campaign through the guardrail engine, one JSON object per line."""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import re
import sys
from dataclasses import replace
from datetime import datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path

from cadence.cli import ArgumentError
from cadence.core.leads import LeadsFileError, ProblemKind, parse_leads_csv
from cadence.core.model import Guardrails, Lead
from cadence.core.pacing import check_guardrails, is_valid_timezone, zone
from cadence.core.planner import PlanResult, parse_steps, plan_campaign
from cadence.core.policy import cap_raise_advice

NAME = "plan"
HELP = "dry-run a campaign: when each step of each lead would go, under the guardrails"

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_DEFAULTS = Guardrails()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leads", required=True, type=Path, help="leads CSV (needs an email column)")
    parser.add_argument("--start", required=True, help="simulated start, ISO 8601 with offset")
    parser.add_argument("--horizon-days", type=float, default=30.0, help="how far to plan (default 30)")
    parser.add_argument("--daily-cap", type=int, default=_DEFAULTS.daily_cap, help="cold sends per 24 h")
    parser.add_argument("--hourly-cap", type=int, default=_DEFAULTS.hourly_cap, help="cold sends per 60 min")
    parser.add_argument(
        "--min-delay", type=float, default=_DEFAULTS.min_delay_s, help="seconds between sends"
    )
    parser.add_argument("--jitter", type=float, default=_DEFAULTS.jitter_s, help="random extra seconds (max)")
    parser.add_argument(
        "--domain-cap", type=int, default=_DEFAULTS.domain_cap, help="per recipient domain / 24 h"
    )
    parser.add_argument("--hours", default="08:00-18:00", help="business hours, HH:MM-HH:MM")
    parser.add_argument("--days", default="Mon-Fri", help="business days, e.g. Mon-Fri or Mon,Wed,Fri")
    parser.add_argument("--tz", default=_DEFAULTS.timezone, help="sender's time zone (IANA name)")
    parser.add_argument(
        "--recipient-tz", action="store_true", help="use each lead's own time zone for business hours"
    )
    warmup = parser.add_mutually_exclusive_group()
    warmup.add_argument("--warmup", metavar="START:STEP:EVERY_DAYS", help="warm-up ramp (default 10:5:2)")
    warmup.add_argument("--no-warmup", action="store_true", help="no warm-up ramp")
    parser.add_argument("--steps", default="0,3,7", help="days to wait before each step (default 0,3,7)")
    parser.add_argument("--suppress", type=Path, help="file of addresses or @domains, one per line")
    parser.add_argument("--provider-host", help="SMTP host, for the provider's sending limits")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the jitter (default 0)")


def _parse_start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentError(f"--start is not an ISO 8601 time: {text!r}") from None
    if start.tzinfo is None:
        raise ArgumentError("--start needs a UTC offset, e.g. 2026-12-01T00:00:00+01:00")
    return start


def _parse_hours(text: str) -> tuple[int, int]:
    match = _HOURS.fullmatch(text.strip())
    if not match:
        raise ArgumentError(f"--hours must look like 08:00-18:00, not {text!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or start >= end:
        raise ArgumentError(f"--hours {text!r}: the window must start before it ends, within one day")
    return start, end


def _day(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in _DAY_NAMES:
        raise ArgumentError(f"--days: unknown day {name.strip()!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
    return _DAY_NAMES.index(key)


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first_name, _, last_name = part.partition("-")
            first, last = _day(first_name), _day(last_name)
            days.update((first + offset) % 7 for offset in range((last - first) % 7 + 1))
        elif part.strip():
            days.add(_day(part))
    if not days:
        raise ArgumentError("--days names no day")
    return frozenset(days)


def _parse_warmup(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    try:
        start, step, every = (int(part) for part in parts)
    except ValueError:
        raise ArgumentError(f"--warmup must be START:STEP:EVERY_DAYS (integers), not {text!r}") from None
    if start < 1 or step < 0 or every < 1:
        raise ArgumentError("--warmup needs START ≥ 1, STEP ≥ 0 and EVERY_DAYS ≥ 1")
    return start, step, every


def _read_suppressions(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise ArgumentError(f"cannot read --suppress file {path}: {exc.strerror or exc}") from None
    addresses: set[str] = set()
    domains: set[str] = set()
    for raw in text.splitlines():
        entry = raw.strip().lower()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            domains.add(entry[1:])
        elif "@" in entry:
            addresses.add(entry)
        else:
            domains.add(entry)
    return frozenset(addresses), frozenset(domains)


def build_guardrails(args: argparse.Namespace) -> Guardrails:
    for name in ("daily_cap", "hourly_cap", "domain_cap"):
        if getattr(args, name) < 0:
            raise ArgumentError(f"--{name.replace('_', '-')} must not be negative")
    if (
        not (math.isfinite(args.min_delay) and math.isfinite(args.jitter))
        or args.min_delay < 0
        or args.jitter < 0
    ):
        raise ArgumentError("--min-delay and --jitter must be non-negative numbers of seconds")
    if not is_valid_timezone(args.tz):
        raise ArgumentError(f"--tz: unknown time zone {args.tz!r}")
    hours_start, hours_end = _parse_hours(args.hours)
    guardrails = replace(
        _DEFAULTS,
        daily_cap=args.daily_cap,
        hourly_cap=args.hourly_cap,
        min_delay_s=args.min_delay,
        jitter_s=args.jitter,
        domain_cap=args.domain_cap,
        hours_start_min=hours_start,
        hours_end_min=hours_end,
        business_days=_parse_days(args.days),
        timezone=args.tz,
        use_recipient_timezone=args.recipient_tz,
        warmup_enabled=not args.no_warmup,
        provider_host=args.provider_host or None,
    )
    if args.warmup:
        start, step, every = _parse_warmup(args.warmup)
        guardrails = replace(guardrails, warmup_start=start, warmup_step=step, warmup_every_days=every)
    try:
        check_guardrails(guardrails)
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    return guardrails


def render(result: PlanResult, *, tz_name: str) -> str:
    tz = zone(tz_name)
    lines: list[str] = []
    # Compact separators: the documented output format is `{"event":"send","at":...}`.
    dumps = functools.partial(json.dumps, separators=(",", ":"))
    for blocked in result.blocked:
        lines.append(dumps({"event": "blocked", "to": blocked.to, "reason": blocked.reason.value}))
    for held in result.held:
        lines.append(dumps({"event": "held", "to": held.to, "reason": held.reason.value}))
    quote = encode_basestring_ascii
    for send in result.sends:
        # Built by hand: this loop runs once per planned send and json.dumps of a dict is the slow part.
        lines.append(
            f'{{"event":"send","at":"{send.at.astimezone(tz).isoformat()}","to":{quote(send.to)},'
            f'"step":{send.step},"legal_basis":"{send.legal_basis.value}"}}'
        )
    for left in result.unscheduled:
        lines.append(dumps({"event": "unscheduled", "to": left.to, "step": left.step, "reason": left.reason}))
    finish = result.finish
    summary = {
        "event": "summary",
        "sends": len(result.sends),
        "blocked": len(result.blocked),
        "held": len(result.held),
        "unscheduled": len(result.unscheduled),
        "finish": finish.astimezone(tz).isoformat() if finish else None,
    }
    lines.append(dumps(summary))
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    start = _parse_start(args.start)
    if not (math.isfinite(args.horizon_days) and 0 < args.horizon_days <= 3660):
        raise ArgumentError("--horizon-days must be a positive number of days (at most 3660)")
    guardrails = build_guardrails(args)
    try:
        steps = parse_steps(args.steps)
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    suppressed_addresses, suppressed_domains = (
        _read_suppressions(args.suppress) if args.suppress else (frozenset(), frozenset())
    )
    try:
        data = args.leads.read_bytes()
    except OSError as exc:
        raise ArgumentError(f"cannot read --leads file {args.leads}: {exc.strerror or exc}") from None
    try:
        parsed = parse_leads_csv(data)
    except LeadsFileError as exc:
        raise ArgumentError(f"{args.leads}: {exc}") from None

    advice = cap_raise_advice(guardrails.daily_cap)
    if advice:
        print(f"cadence plan: note: {advice}", file=sys.stderr)
    for problem in parsed.problems:
        print(f"cadence plan: {args.leads}: {problem}", file=sys.stderr)
    # Rows rejected for their address still appear in the plan, blocked by the engine's own rules.
    rejected = [
        Lead(email=problem.email)
        for problem in parsed.problems
        if problem.email and problem.kind in (ProblemKind.INVALID_ADDRESS, ProblemKind.DUPLICATE)
    ]
    try:
        result = plan_campaign(
            [*parsed.leads, *rejected],
            step_delays_days=steps,
            guardrails=guardrails,
            start=start,
            horizon_days=args.horizon_days,
            rng=random.Random(args.seed),
            suppressed_addresses=suppressed_addresses,
            suppressed_domains=suppressed_domains,
        )
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    sys.stdout.write(render(result, tz_name=args.tz))
    return 0
