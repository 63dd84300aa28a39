"""Start a throw-away mail stack, print how to connect, and keep it running until Ctrl+C.

    sudo .venv/bin/python -m tests.stack.run_stack [--json] [--keep]

Submission (STARTTLS + AUTH) and IMAPS log in as the printed user and password and must trust the printed
CA file. Mail to <behaviour>@prospect.test gets the fake internet's behaviour (ok, dead, full, grey,
throttle, slow; see tests/stack/internet.py); bounces arrive in the user's INBOX.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from tests.stack.stack import MailStack, StackError, missing_requirements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.stack.run_stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print the settings as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, mail) after stopping")
    args = parser.parse_args(argv)

    problem = missing_requirements()
    if problem:
        print(f"cannot start the mail stack: {problem}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = MailStack(keep_dir=args.keep)
    try:
        stack.start()
    except StackError as exc:
        print(f"the mail stack did not start: {exc}", file=sys.stderr)
        return 1
    try:
        settings = stack.settings()
        if args.json:
            print(json.dumps({**settings, "root": str(stack.root)}), flush=True)
        else:
            print(f"mail stack up in {stack.start_seconds:.2f} s, files in {stack.root}")
            for key, value in settings.items():
                print(f"  {key:14} {value}")
            print(f"  {'internet':14} 127.0.0.1:{stack.internet_port} (records in {stack.internet_dir})")
            print(f"  {'postfix log':14} {stack.postfix_log}")
            print(f"  {'dovecot log':14} {stack.dovecot_log}")
            print(
                "  add it to Cadence:\n"
                f"    printf '%s' '{stack.password}' | python -m cadence account add --email {stack.user} "
                f"--smtp {stack.host}:{stack.submission_port} --imap {stack.host}:{stack.imaps_port} "
                f"--security starttls --ca-file {stack.ca_file} --password-stdin"
            )
            print("Ctrl+C stops it.", flush=True)
        stop.wait()
    finally:
        try:
            stack.stop()
        except StackError as exc:
            print(f"stopping: {exc}", file=sys.stderr)
            return 1
    print(
        f"stopped in {stack.stop_seconds:.2f} s" + (f"; kept {stack.root}" if args.keep else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
