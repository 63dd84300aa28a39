"""`cadence run [--until ISO | --once]`: the scheduler and the inbox watcher without a window.

Logs what they do to stderr and the data dir's log. `--once` sends what is due now and exits; `--until`
runs until that time; without either it runs until interrupted (SIGINT / SIGTERM stop it cleanly: a send
in progress is finished and recorded first)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
from datetime import UTC, datetime

from cadence.adapters.dns import DnsResolver
from cadence.app import (
    OAuthWiring,
    imap_connector_for,
    make_secret_store,
    settle_heap,
    setup_logging,
    smtp_mailer_for,
)
from cadence.cli import ArgumentError
from cadence.commands._headless import CommandFailed, opened, report
from cadence.core.classify import classify
from cadence.core.model import Account
from cadence.services.dbworker import DbWorker
from cadence.services.domain_guard import RecipientDomainGuard
from cadence.services.events import EventBus, SendEvent
from cadence.services.in_doubt import InDoubtSettler
from cadence.services.inbox import InboxEvent, InboxWatcher
from cadence.services.inbox_effects import InboxEffects, SentFolderCopier
from cadence.services.scheduler import Scheduler

NAME = "run"
HELP = "send and watch the mailboxes without a window (--once: what is due now, then exit)"

log = logging.getLogger("cadence.run")


def configure(parser: argparse.ArgumentParser) -> None:
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--until", help="stop at this time (ISO 8601 with offset)")
    when.add_argument("--once", action="store_true", help="send what is due now, then exit")
    parser.add_argument(
        "--poll",
        type=float,
        default=30.0,
        help="seconds between looks for changes made by other processes (approvals), default 30",
    )
    parser.add_argument("--no-inbox", action="store_true", help="do not watch the mailboxes")
    parser.add_argument("--verbose", action="store_true")


def _until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ArgumentError(f"--until {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ArgumentError("--until needs a UTC offset, e.g. 2026-11-27T18:00+01:00")
    return moment


def _log_send(event: SendEvent) -> None:
    parts = [event.kind.value, f"account={event.account_id}"]
    if event.outbox_id is not None:
        parts.append(f"message={event.outbox_id}")
    if event.recipient:
        parts.append(f"to={event.recipient}")
    if event.detail:
        parts.append(event.detail)
    if event.until is not None:
        parts.append(f"until={event.until.isoformat()}")
    log.info(" ".join(parts))


def _log_inbox(event: InboxEvent) -> None:
    level = logging.WARNING if event.message else logging.INFO
    log.log(
        level,
        "inbox %s account=%s folder=%s count=%s %s",
        event.kind.value,
        event.account_id,
        event.folder or "",
        event.count,
        event.message,
    )


async def _main(args: argparse.Namespace, until: datetime | None) -> int:
    with opened(args, verbose=args.verbose) as handle:
        redaction = setup_logging(handle.directory, verbose=args.verbose)
        secrets = make_secret_store(redaction)
        oauth = OAuthWiring(secrets=secrets, redaction=redaction)
        db = DbWorker()
        bus: EventBus[SendEvent] = EventBus()
        bus.subscribe(_log_send)
        # Dead recipient domains are suppressed before their first send (the window's runtime does the same).
        domain_guard = RecipientDomainGuard(store=handle.store, db_call=db.call, checker=DnsResolver())
        scheduler = Scheduler(
            store=handle.store,
            db=db,
            secrets=secrets,
            mailer_factory=functools.partial(smtp_mailer_for, oauth=oauth),
            events=bus,
            before_batch=domain_guard,
        )
        inbox_events: EventBus[InboxEvent] = EventBus()
        inbox_events.subscribe(_log_inbox)
        watcher = InboxWatcher(
            sink=InboxEffects(handle.store, events=bus),
            classify=classify,
            on_event=inbox_events.publish,
            sink_executor=db.executor,
        )
        copier = SentFolderCopier(store=handle.store, db=db, watcher=watcher)
        bus.subscribe(copier.on_event)
        inbox_events.subscribe(copier.on_inbox_event)  # catches up missing copies in Sent on each connection
        # as in the window: once its grace is over, an in-doubt message is looked for in Sent and settled
        settler = InDoubtSettler(
            store=handle.store, db=db, watcher=watcher, events=bus, on_requeued=scheduler.wake
        )
        try:
            accounts: list[Account] = list(await db.call(handle.store.list_accounts))
            if not accounts:
                log.warning("no account: add one with `cadence account add`")
            if not args.no_inbox and not args.once:
                for account in accounts:
                    if account.settings.imap_host:
                        await watcher.start(account.id, imap_connector_for(account, secrets, oauth=oauth))
            settle_heap()
            in_doubt = await scheduler.report_in_doubt()
            if in_doubt:
                log.warning(
                    "%d message(s) in doubt, not sent again: see `cadence status --json`", len(in_doubt)
                )
            if args.once:
                passes = await scheduler.drain()
                log.info("done: %d message(s) claimed and tried", passes)
                return 0
            await scheduler.start()
            if watcher.accounts:
                settler.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            while not stop.is_set():
                timeout = args.poll
                if until is not None:
                    timeout = min(timeout, (until - datetime.now(UTC)).total_seconds())
                    if timeout <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, timeout))
                for account in await db.call(handle.store.list_accounts):
                    scheduler.ensure_account(account.id)
                scheduler.wake()
            return 0
        finally:
            await settler.aclose()
            await scheduler.stop()
            await copier.aclose()
            await watcher.stop()
            db.shutdown()


def run(args: argparse.Namespace) -> int:
    until = _until(args.until)
    if args.poll <= 0:
        raise ArgumentError("--poll must be positive")
    try:
        return asyncio.run(_main(args, until))
    except CommandFailed as exc:
        return report(error=exc)
