"""The scripted SMTP peer in a process of its own, so that it keeps recording while the client is killed.

`python -m tests.integration.peer_process --dir DIR [--reply-delay S]` writes DIR/ca.pem, DIR/port once
listening, and appends one JSON line per message that reached the final dot to DIR/received.jsonl:
{"recipients": [...], "message_id": "<...>", "reply": "250 ..."}. SIGTERM stops it after a last flush.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path

import trustme

from tests.integration.smtp_peer import END_OF_DATA, Reply, ScriptedSmtpPeer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--user", action="append", help="LOGIN:PASSWORD (repeatable)")
    parser.add_argument("--reply-delay", type=float, default=0.0, help="seconds before each final reply")
    args = parser.parse_args()
    users = dict(user.split(":", 1) for user in args.user or ["alice@example.com:alice-secret-pw"])
    peer = ScriptedSmtpPeer(ca=trustme.CA(), mode="starttls", users=users)
    if args.reply_delay:
        peer.on(END_OF_DATA, Reply("250 2.0.0 OK queued", delay_s=args.reply_delay))
    peer.write_ca_file(args.dir / "ca.pem")
    peer.start_in_thread()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    (args.dir / "port.tmp").write_text(str(peer.port))
    (args.dir / "port.tmp").rename(args.dir / "port")
    written = 0
    with (args.dir / "received.jsonl").open("a", encoding="utf-8") as out:
        while True:
            done = stopping.is_set()
            received = list(peer.received)
            # a message is recorded once its reply is decided (or the connection dropped without one)
            for message in received[written:]:
                out.write(
                    json.dumps(
                        {
                            "recipients": list(message.recipients),
                            "message_id": message.message_id,
                            "reply": message.reply,
                        }
                    )
                    + "\n"
                )
                written += 1
            out.flush()
            if done:
                break
            time.sleep(0.02)
    peer.stop_thread()


if __name__ == "__main__":
    main()
