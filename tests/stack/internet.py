"""The fake "internet": one aiosmtpd server that stands for every remote MX and answers per recipient.

Run as its own process (the mail stack does): `python tests/stack/internet.py --port N --outdir DIR`.
Behaviour by local part (case-insensitive; anything after `+` is ignored, so `grey+t42@x` acts as `grey`):

| local part | reply to RCPT                                                   |
|------------|-----------------------------------------------------------------|
| dead       | 550 5.1.1 user unknown                                          |
| full       | 452 4.2.2 mailbox full                                          |
| grey       | 451 4.7.1 the first time for that full address, then accepted  |
| throttle   | 421 4.7.0 too many connections (the server then closes)         |
| slow       | accepted after `--slow-seconds`                                 |
| anything   | 250 2.1.5 OK                                                    |

Every RCPT and its reply goes to `<outdir>/attempts.jsonl`; every accepted recipient of a message whose
DATA was accepted goes to `<outdir>/delivered.jsonl` with the Message-ID. Standard library + aiosmtpd only,
so it runs from any Python that has aiosmtpd.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

REPLIES = {
    "dead": "550 5.1.1 user unknown",
    "full": "452 4.2.2 mailbox full",
    "throttle": "421 4.7.0 too many connections, try again later",
}
GREY_REPLY = "451 4.7.1 greylisted, try again later"
OK_REPLY = "250 2.1.5 OK"


def behaviour(address: str) -> str:
    """The behaviour keyword of an address: its local part, lower-cased, without a `+tag`."""
    return address.split("@", 1)[0].lower().split("+", 1)[0]


class Internet:
    """aiosmtpd handler. Runs on the controller's loop thread; the log files are appended line by line."""

    def __init__(self, outdir: Path, *, slow_seconds: float) -> None:
        self.attempts = outdir / "attempts.jsonl"
        self.delivered = outdir / "delivered.jsonl"
        self.slow_seconds = slow_seconds
        self.greylisted: set[str] = set()
        self._write_lock = threading.Lock()

    def _log(self, path: Path, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._write_lock, path.open("a", encoding="utf-8") as out:
            out.write(line)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        kind = behaviour(address)
        reply = REPLIES.get(kind)
        if reply is None and kind == "grey" and address.lower() not in self.greylisted:
            self.greylisted.add(address.lower())
            reply = GREY_REPLY
        if reply is None:
            if kind == "slow":
                await asyncio.sleep(self.slow_seconds)
            envelope.rcpt_tos.append(address)  # aiosmtpd leaves this to a handler that defines handle_RCPT
            reply = OK_REPLY
        self._log(
            self.attempts,
            {"ts": time.time(), "mail_from": envelope.mail_from, "rcpt": address, "reply": reply},
        )
        if reply.startswith("421"):
            # 421 means the server closes the channel: once the reply has been written, do so
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        headers = BytesHeaderParser(policy=default_policy).parsebytes(content)
        message_id = str(headers.get("Message-ID", "") or "").strip() or None
        now = time.time()
        for rcpt in envelope.rcpt_tos:
            self._log(
                self.delivered,
                {"ts": now, "rcpt": rcpt, "mail_from": envelope.mail_from, "message_id": message_id},
            )
        return "250 2.0.0 accepted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    handler = Internet(args.outdir, slow_seconds=args.slow_seconds)
    controller = Controller(
        handler,
        hostname=args.host,
        port=args.port,
        server_hostname="mx.prospect.test",
        decode_data=False,
        data_size_limit=50 * 1024 * 1024,
    )
    controller.start()
    print(f"internet listening on {args.host}:{args.port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
