"""Figures for composing and submitting: compose time per message, and SmtpMailer throughput over
STARTTLS against the local scripted aiosmtpd peer (reuse of 20 messages per connection vs 1).

Run: .venv/bin/python benchmarks/smtp_bench.py [messages]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "desktop")]

import trustme  # noqa: E402
from tests.integration.smtp_peer import DEFAULT_USER, ScriptedSmtpPeer  # noqa: E402

from cadence.adapters.smtp import SmtpMailer  # noqa: E402
from cadence.core.compose import OutgoingMessage, compose, new_message_id  # noqa: E402
from cadence.core.model import Lead, SendOutcome, Step  # noqa: E402
from cadence.core.templates import render_step  # noqa: E402

STEP = Step(
    index=1,
    subject="Quick question about {company|your team}",
    body="Hi {first_name|there},\n\nI noticed {company} is hiring. "
    + "Body text. " * 40
    + "\n\nBest,\nAlice",
    html_body="<p>Hi {first_name|there},</p><p>" + "Some body text. " * 40 + "</p>",
)


def build(index: int) -> bytes:
    lead = Lead(email=f"lead{index}@acme.example", first_name=f"Lead{index}", company="Acme")
    rendered = render_step(STEP, lead=lead)
    return compose(
        OutgoingMessage(
            sender=DEFAULT_USER,
            sender_name="Alice",
            recipient=lead.email,
            subject=rendered.subject,
            text=rendered.body,
            html=rendered.html_body,
            message_id=new_message_id(DEFAULT_USER),
            date=datetime.now(UTC),
        )
    )


async def throughput(
    peer: ScriptedSmtpPeer, ca_file: Path, messages: list[bytes], per_connection: int
) -> None:
    options = peer.client_options(ca_file)
    mailer = SmtpMailer(**options, messages_per_connection=per_connection)  # type: ignore[arg-type]
    latencies = []
    started = time.perf_counter()
    try:
        for index, raw in enumerate(messages):
            t0 = time.perf_counter()
            recipients = (f"lead{index}@acme.example",)
            result = await mailer.send(sender=DEFAULT_USER, recipients=recipients, message=raw)
            latencies.append(time.perf_counter() - t0)
            assert result.outcome is SendOutcome.DELIVERED, result.transcript
    finally:
        await mailer.close()
    elapsed = time.perf_counter() - started
    p95 = sorted(latencies)[int(len(latencies) * 0.95)]
    print(
        f"  {per_connection:>2} msg/connection: {len(messages) / elapsed:7.1f} msg/s, "
        f"median {statistics.median(latencies) * 1000:6.2f} ms, p95 "
        f"{p95 * 1000:6.2f} ms, connections {mailer.connection_count}"
    )


async def main(count: int) -> None:
    t0 = time.perf_counter()
    messages = [build(i) for i in range(count)]
    per_message = (time.perf_counter() - t0) / count
    print(f"render + compose: {per_message * 1e6:.0f} µs per message ({len(messages[0])} bytes, text + HTML)")
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        peer = ScriptedSmtpPeer(ca=ca)
        await peer.start()
        try:
            print(f"SMTP submission to the local peer over STARTTLS, {count} messages:")
            await throughput(peer, ca_file, messages, per_connection=20)
            await throughput(peer, ca_file, messages[: max(count // 4, 1)], per_connection=1)
        finally:
            await peer.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
