"""`cadence approve --all | ID…`: approve drafts waiting in the approval queue. Also where the user settles
messages left in doubt (the connection ended after the message was handed over and the provider does not
file a copy in Sent): `--mark-sent ID…` when the recipient got it, `--resend ID…` when they did not (it goes
again with the same Message-ID, so a provider that did take it can still drop the copy)."""

from __future__ import annotations

import argparse
import functools
import json
from datetime import UTC, datetime

from cadence.cli import ArgumentError
from cadence.commands._headless import CommandFailed, opened, report
from cadence.core.model import AuditEntry, AuditResult, MessageState, OutboxMessage
from cadence.core.ports import RecordNotFound
from cadence.services.scheduler import follow_up_draft

NAME = "approve"
HELP = "approve drafts waiting for approval (all, or by id); settle in-doubt messages"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="draft ids")
    parser.add_argument("--all", action="store_true", help="every draft waiting for approval")
    parser.add_argument(
        "--mark-sent", nargs="+", type=int, metavar="ID", help="in-doubt messages that arrived"
    )
    parser.add_argument("--resend", nargs="+", type=int, metavar="ID", help="in-doubt messages to send again")


def _audit(message: OutboxMessage, *, now: datetime, result: AuditResult, reason: str) -> AuditEntry:
    return AuditEntry(
        at=now,
        result=result,
        account_id=message.account_id,
        lead_id=message.lead_id,
        recipient=message.recipient,
        subject=message.subject,
        reason=reason,
        detail=f"message_id={message.message_id}" if message.message_id else "",
    )


def _settle(args: argparse.Namespace, now: datetime) -> dict[str, list[int]]:
    done: dict[str, list[int]] = {"marked_sent": [], "resend": [], "skipped": []}
    with opened(args) as handle:
        store = handle.store
        for action, ids in (("marked_sent", args.mark_sent or []), ("resend", args.resend or [])):
            for outbox_id in ids:
                try:
                    message = store.get_message(outbox_id)
                except RecordNotFound:
                    done["skipped"].append(outbox_id)
                    continue
                if message.state is not MessageState.SENDING or message.message_id is None:
                    done["skipped"].append(outbox_id)
                    continue
                if action == "marked_sent":
                    guardrails = store.get_account(message.account_id).settings.guardrails
                    store.record_delivered_with_follow_up(
                        message.message_id,
                        at=now,
                        follow_up=functools.partial(follow_up_draft, guardrails=guardrails),
                    )
                    reason = "in doubt: the user says it arrived"
                    store.append_audit([_audit(message, now=now, result=AuditResult.SENT, reason=reason)])
                else:
                    store.requeue_in_doubt(message.message_id, at=now)
                    reason = "in doubt: the user asked to send it again"
                    store.append_audit([_audit(message, now=now, result=AuditResult.APPROVED, reason=reason)])
                done[action].append(outbox_id)
    return done


def run(args: argparse.Namespace) -> int:
    settling = bool(args.mark_sent or args.resend)
    if settling and (args.all or args.ids):
        raise ArgumentError("settle in-doubt messages or approve drafts, not both at once")
    if not settling and args.all == bool(args.ids):
        raise ArgumentError("give draft ids or --all (not both)")
    now = datetime.now(UTC)
    try:
        if settling:
            done = _settle(args, now)
            print(json.dumps(done))
            return 1 if done["skipped"] else 0
        with opened(args) as handle:
            store = handle.store
            ids = list(args.ids)
            if args.all:
                ids = [m.id for m in store.list_messages(states=[MessageState.PENDING_APPROVAL])]
            outcome = store.approve(ids, now=now)
            approved = [store.get_message(i) for i in outcome.changed]
            store.append_audit(
                [
                    _audit(m, now=now, result=AuditResult.APPROVED, reason="approved from the command line")
                    for m in approved
                ]
            )
    except CommandFailed as exc:
        return report(error=exc)
    print(json.dumps({"approved": len(outcome.changed), "skipped": list(outcome.skipped)}))
    return 0 if not outcome.skipped or args.all else 1
