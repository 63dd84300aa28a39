"""`cadence campaign add|list`: a campaign from a leads CSV and its steps; step 1 drafts are created at once
(held for approval where the guardrails say so)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from cadence.cli import ArgumentError
from cadence.commands._headless import CommandFailed, opened, pick_account, report
from cadence.core.leads import LeadsFileError, parse_leads_csv
from cadence.core.model import MessageState, Step
from cadence.core.templates import TemplateError, unknown_fields
from cadence.services.scheduler import draft_for_step

NAME = "campaign"
HELP = "add a campaign (leads CSV + steps) or list campaigns"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create a campaign and its first drafts")
    add.add_argument("--name", required=True)
    add.add_argument("--account", help="account id or address (default: the only one)")
    add.add_argument("--leads", required=True, type=Path, help="leads CSV (needs an email column)")
    add.add_argument(
        "--step",
        action="append",
        required=True,
        metavar="SUBJECT|BODYFILE|DAYS",
        help="a step: subject template, file with the body template, days after the previous step",
    )
    sub.add_parser("list", help="campaigns with lead and message counts, as JSON lines")


def _steps(specs: list[str]) -> tuple[Step, ...]:
    steps: list[Step] = []
    for number, spec in enumerate(specs, start=1):
        parts = spec.split("|")
        if len(parts) != 3:
            raise ArgumentError(f"--step {spec!r}: expected SUBJECT|BODYFILE|DAYS")
        subject, body_file, days = parts
        if not subject.strip():
            raise ArgumentError(f"--step {number}: the subject is empty")
        try:
            body = Path(body_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ArgumentError(f"--step {number}: cannot read {body_file}: {exc}") from None
        try:
            delay = float(days)
        except ValueError:
            raise ArgumentError(f"--step {number}: DAYS {days!r} is not a number") from None
        if delay < 0 or (number == 1 and delay != 0):
            raise ArgumentError(f"--step {number}: DAYS must be 0 for the first step and ≥ 0 after")
        steps.append(Step(index=number, subject=subject, body=body, delay_days=delay))
    return tuple(steps)


def _add(args: argparse.Namespace) -> int:
    steps = _steps(args.step)
    try:
        leads_file = parse_leads_csv(args.leads.read_bytes())
    except OSError as exc:
        raise ArgumentError(f"--leads: cannot read {args.leads}: {exc}") from None
    except LeadsFileError as exc:
        raise ArgumentError(f"--leads: {exc}") from None
    for problem in leads_file.problems:
        print(f"skipped {problem}", file=sys.stderr)
    columns = {*leads_file.columns, "email", "first_name", "last_name", "company"}
    missing = unknown_fields([s.subject for s in steps] + [s.body for s in steps], columns=columns)
    if missing:
        print(f"note: no column for merge fields {', '.join(missing)} (fallbacks or empty)", file=sys.stderr)
    now = datetime.now(UTC)
    with opened(args) as handle:
        store = handle.store
        account = pick_account(store.list_accounts(), args.account)
        campaign = store.create_campaign(name=args.name, account_id=account.id, steps=steps, now=now)
        added = store.add_leads(campaign.id, leads=leads_file.leads, now=now)
        drafts = []
        unrenderable = 0
        for lead in store.list_leads(campaign.id):
            try:
                drafts.append(
                    draft_for_step(
                        campaign_id=campaign.id,
                        lead=lead,
                        step=steps[0],
                        guardrails=account.settings.guardrails,
                    )
                )
            except TemplateError as exc:
                unrenderable += 1
                print(f"lead {lead.lead.email}: {exc}", file=sys.stderr)
        store.create_drafts(drafts, now=now)
        held = sum(1 for d in drafts if d.state is MessageState.PENDING_APPROVAL)
    print(
        json.dumps(
            {
                "id": campaign.id,
                "leads": added,
                "skipped_rows": len(leads_file.problems),
                "pending_approval": held,
                "approved": len(drafts) - held,
                "unrenderable": unrenderable,
            }
        )
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with opened(args) as handle:
        store = handle.store
        for campaign in store.list_campaigns():
            counts: dict[str, int] = {}
            for message in store.list_messages(campaign_id=campaign.id):
                counts[message.state.value] = counts.get(message.state.value, 0) + 1
            leads = {status.value: n for status, n in store.count_leads(campaign.id).items()}
            line = {"id": campaign.id, "name": campaign.name, "account_id": campaign.account_id}
            print(json.dumps({**line, "status": campaign.status.value, "leads": leads, "messages": counts}))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _add(args) if args.action == "add" else _list(args)
    except CommandFailed as exc:
        return report(error=exc)
