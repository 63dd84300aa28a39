"""`cadence account add|list`: sending accounts; the password goes to the system keyring only."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadence.app import make_secret_store
from cadence.cli import ArgumentError
from cadence.commands._headless import CommandFailed, host_port, opened, report
from cadence.core.model import AccountSettings, ConnectionSecurity, Guardrails
from cadence.core.pacing import check_guardrails
from cadence.core.policy import cap_raise_advice
from cadence.core.ports import SecretStoreError

NAME = "account"
HELP = "add or list sending accounts (the password is kept in the system keyring)"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add an account")
    add.add_argument("--email", required=True, help="the mailbox address (also the login)")
    add.add_argument("--name", default="", help="display name in From")
    add.add_argument("--smtp", required=True, metavar="HOST:PORT", help="submission server")
    add.add_argument("--imap", metavar="HOST:PORT", help="IMAP server (replies, bounces, Sent)")
    add.add_argument("--security", choices=("starttls", "tls"), default="starttls", help="SMTP security")
    add.add_argument("--ca-file", help="extra CA certificate (PEM) for a self-hosted server")
    add.add_argument("--no-warmup", action="store_true", help="no warm-up ramp (an established mailbox)")
    add.add_argument("--guardrails", metavar="JSON", help='guardrail settings, e.g. {"daily_cap": 20}')
    add.add_argument("--daily-cap", type=int)
    add.add_argument("--hourly-cap", type=int)
    add.add_argument("--min-delay", type=float, help="seconds between sends")
    add.add_argument("--jitter", type=float, help="random extra seconds (max)")
    add.add_argument("--domain-cap", type=int)
    add.add_argument("--timezone", help="sender's time zone (IANA name)")
    add.add_argument("--all-hours", action="store_true", help="send any hour of any day")
    add.add_argument(
        "--no-first-touch-approval", action="store_true", help="first messages go without approval"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_parser("list", help="list accounts as JSON lines")


def _guardrails(args: argparse.Namespace) -> Guardrails:
    guardrails = Guardrails()
    if args.guardrails:
        try:
            given: Any = json.loads(args.guardrails)
        except json.JSONDecodeError as exc:
            raise ArgumentError(f"--guardrails is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise ArgumentError("--guardrails must be a JSON object")
        known = {f.name for f in fields(Guardrails)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ArgumentError(f"unknown guardrail settings: {', '.join(unknown)}")
        if "business_days" in given:
            given["business_days"] = frozenset(given["business_days"])
        guardrails = replace(guardrails, **given)
    flags = {
        "daily_cap": args.daily_cap,
        "hourly_cap": args.hourly_cap,
        "min_delay_s": args.min_delay,
        "jitter_s": args.jitter,
        "domain_cap": args.domain_cap,
        "timezone": args.timezone,
    }
    guardrails = replace(guardrails, **{k: v for k, v in flags.items() if v is not None})
    if args.no_warmup:
        guardrails = replace(guardrails, warmup_enabled=False)
    if args.all_hours:
        guardrails = replace(
            guardrails, hours_start_min=0, hours_end_min=24 * 60, business_days=frozenset(range(7))
        )
    if args.no_first_touch_approval:
        guardrails = replace(guardrails, approve_first_touch=False)
    try:
        check_guardrails(guardrails)
    except (ValueError, TypeError) as exc:
        raise ArgumentError(f"guardrails: {exc}") from None
    return replace(guardrails, provider_host=guardrails.provider_host or None)


def _add(args: argparse.Namespace) -> int:
    email = args.email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise ArgumentError(f"--email {args.email!r} is not an address")
    smtp_host, smtp_port = host_port(args.smtp, what="--smtp")
    imap_host, imap_port = host_port(args.imap, what="--imap") if args.imap else ("", 993)
    if args.ca_file and not Path(args.ca_file).is_file():
        raise ArgumentError(f"--ca-file {args.ca_file} does not exist")
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ArgumentError("--password-stdin: no password on stdin")
    guardrails = _guardrails(args)
    advice = cap_raise_advice(guardrails.daily_cap)
    if advice:
        print(f"note: {advice}", file=sys.stderr)
    settings = AccountSettings(
        email=email,
        display_name=args.name,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_security=ConnectionSecurity(args.security),
        imap_host=imap_host,
        imap_port=imap_port,
        ca_file=str(Path(args.ca_file).resolve()) if args.ca_file else None,
        guardrails=replace(guardrails, provider_host=guardrails.provider_host or smtp_host),
    )
    with opened(args) as handle:
        if any(account.email == email for account in handle.store.list_accounts()):
            raise CommandFailed(f"an account {email} exists already")
        if password is not None:
            try:
                asyncio.run(make_secret_store().set(email, password))
            except SecretStoreError as exc:
                raise CommandFailed(f"the password was not stored: {exc}") from exc
        account = handle.store.create_account(settings, now=datetime.now(UTC))
    print(json.dumps({"id": account.id, "email": account.email, "password_stored": password is not None}))
    return 0


def _list(args: argparse.Namespace) -> int:
    with opened(args) as handle:
        for account in handle.store.list_accounts():
            settings = asdict(account.settings)
            settings["guardrails"]["business_days"] = sorted(settings["guardrails"]["business_days"])
            print(
                json.dumps(
                    {"id": account.id, "paused_reason": account.paused_reason, **settings}, default=str
                )
            )
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _add(args) if args.action == "add" else _list(args)
    except CommandFailed as exc:
        return report(error=exc)
