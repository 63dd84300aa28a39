"""Figures for the mail stack: start/stop time and how long each kind of outcome takes to come back.

    .venv/bin/python -m tests.stack.measure [--stacks 5] [--skip-full]

Prints, from submission (the 250 from Postfix): the internet's record of ok@, grey@'s acceptance at the
first retry, dead@'s DSN seen over IMAP, and full@'s delay warning and final failure seen over IMAP.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from cadence.core.model import Verdict
from tests.stack.mail import Inbox, submit, unique_address
from tests.stack.stack import MailStack, missing_requirements


def _summary(values: list[float]) -> str:
    median = statistics.median(values)
    return f"median {median:.2f} s, min {min(values):.2f}, max {max(values):.2f} (n={len(values)})"


async def _latencies(stack: MailStack, *, with_full: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    sent = {kind: await submit(stack, unique_address(kind)) for kind in ("ok", "grey", "dead", "full")}
    ok, grey = sent["ok"], sent["grey"]

    def delivered_at(recipient: str) -> float | None:
        return next((float(r["ts"]) for r in stack.delivered() if r["rcpt"] == recipient), None)

    async with Inbox(stack, poll_s=0.1) as inbox:

        def about(message_id: str, *, delayed: bool) -> Callable[[Verdict], bool]:
            return lambda v: v.original_message_id == message_id and v.delayed is delayed

        dead = await inbox.wait_for(
            about(sent["dead"].message_id, delayed=False), timeout_s=30, what="dead DSN"
        )
        figures["dead@ DSN seen over IMAP"] = dead.seen_at - sent["dead"].at
        if with_full:
            warn = await inbox.wait_for(
                about(sent["full"].message_id, delayed=True), timeout_s=60, what="delay"
            )
            figures["full@ delay warning seen"] = warn.seen_at - sent["full"].at
            fail = await inbox.wait_for(
                about(sent["full"].message_id, delayed=False), timeout_s=90, what="fail"
            )
            figures["full@ failure DSN seen"] = fail.seen_at - sent["full"].at
    for label, item in (("ok@ recorded by the internet", ok), ("grey@ accepted at the retry", grey)):
        deadline = time.time() + 30
        while (at := delivered_at(item.recipient)) is None and time.time() < deadline:
            await asyncio.sleep(0.05)
        if at is not None:
            figures[label] = at - item.at
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack.measure")
    parser.add_argument("--stacks", type=int, default=5, help="stacks to start and stop for the timings")
    parser.add_argument("--skip-full", action="store_true", help="skip full@ (waits for the queue lifetime)")
    args = parser.parse_args(argv)
    problem = missing_requirements()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 1

    starts, stops = [], []
    for _ in range(args.stacks):
        stack = MailStack().start()
        stack.stop()
        starts.append(stack.start_seconds)
        stops.append(stack.stop_seconds)
    print(f"stack start: {_summary(starts)}")
    print(f"stack stop:  {_summary(stops)}")

    with MailStack() as stack:
        print(f"timings: {stack.timings}")
        for label, seconds in asyncio.run(_latencies(stack, with_full=not args.skip_full)).items():
            print(f"{label:32} {seconds:6.2f} s after submission")
        busy_stop_began = time.monotonic()
    print(f"stop after use: {time.monotonic() - busy_stop_began:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
