"""`cadence status [--json]`: queue counts by state, caps used, pause reasons, in-doubt messages and how many
addresses are suppressed, by reason."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from cadence.commands._headless import CommandFailed, opened, report
from cadence.core.model import MessageState
from cadence.core.pacing import capacity_report

NAME = "status"
HELP = "what is queued, sent, paused and in doubt"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def collect(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC)
    with opened(args) as handle:
        store = handle.store
        accounts = []
        in_doubt = []
        for account in store.list_accounts():
            snapshot = store.snapshot(account.id, now=now)
            report_ = capacity_report(guardrails=account.settings.guardrails, snapshot=snapshot)
            paused = account.paused_reason is not None and (
                account.paused_until is None or account.paused_until > now
            )
            accounts.append(
                {
                    "id": account.id,
                    "email": account.email,
                    "paused": paused,
                    "pause_reason": account.paused_reason if paused else None,
                    "paused_until": _iso(account.paused_until) if paused else None,
                    "backoff_until": _iso(account.backoff_until),
                    "pace_factor": account.pace_factor,
                    "caps": {
                        "daily": {"used": report_.daily.used, "limit": report_.daily.limit},
                        "hourly": {"used": report_.hourly.used, "limit": report_.hourly.limit},
                        "effective_daily": report_.effective_daily_cap,
                    },
                    "bounce_breaker_tripped": report_.breaker.tripped,
                    "next_slot": _iso(report_.next_slot),
                    "queue": {
                        s.value: n for s, n in sorted(store.count_messages(account_id=account.id).items())
                    },
                }
            )
            for message in store.list_in_doubt(account.id):
                in_doubt.append(
                    {
                        "id": message.id,
                        "account_id": account.id,
                        "recipient": message.recipient,
                        "subject": message.subject,
                        "message_id": message.message_id,
                        "since": _iso(message.state_changed_at),
                    }
                )
        queue = {s.value: n for s, n in sorted(store.count_messages().items())}
        suppressed = {reason.value: n for reason, n in sorted(store.count_suppressions().items())}
    return {
        "at": now.isoformat(),
        "queue": queue,
        "pending_approval": queue.get(MessageState.PENDING_APPROVAL.value, 0),
        "accounts": accounts,
        "in_doubt": in_doubt,
        "suppressions": {"total": sum(suppressed.values()), "by_reason": suppressed},
    }


def run(args: argparse.Namespace) -> int:
    try:
        status = collect(args)
    except CommandFailed as exc:
        return report(error=exc)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print("queue: " + (", ".join(f"{k} {v}" for k, v in status["queue"].items()) or "empty"))
    for account in status["accounts"]:
        caps = account["caps"]
        line = f"{account['email']}: today {caps['daily']['used']}/{caps['daily']['limit']}"
        if account["paused"]:
            line += f", paused: {account['pause_reason']}"
        print(line)
    suppressions = status["suppressions"]
    if suppressions["total"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in suppressions["by_reason"].items())
        print(f"suppressed: {suppressions['total']} ({reasons})")
    for message in status["in_doubt"]:
        print(
            f"in doubt: #{message['id']} to {message['recipient']} {message['message_id']}"
            f" since {message['since']}"
        )
    return 0
