"""Figures for "Test connection" and OAuth: wall time of the whole step-by-step test (SMTP STARTTLS peer +
real Dovecot), per-step times, and the latency of one token refresh against the local HTTPS endpoint.

Run: .venv/bin/python benchmarks/connection_test_bench.py [rounds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "desktop")]

import trustme  # noqa: E402
from tests.integration.dovecot import running_dovecot  # noqa: E402
from tests.integration.oauth_server import TokenServer  # noqa: E402
from tests.integration.smtp_peer import ScriptedSmtpPeer  # noqa: E402

from cadence.adapters.connection_probe import NetworkProbe  # noqa: E402
from cadence.adapters.oauth import OAuthTokenSource, TokenEndpoint  # noqa: E402
from cadence.core.model import AccountSettings, ConnectionSecurity  # noqa: E402
from cadence.core.oauth import OAuthProvider, resolve_client_config  # noqa: E402
from cadence.core.ports import SecretKind  # noqa: E402
from cadence.services.connection_test import TestCredentials, run_connection_test  # noqa: E402


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class _Secrets:
    def __init__(self) -> None:
        self.values: dict[tuple[str, SecretKind], str] = {}

    async def get(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> str | None:
        return self.values.get((account, kind))

    async def set(self, account: str, secret: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.values[(account, kind)] = secret

    async def delete(self, account: str, *, kind: SecretKind = SecretKind.PASSWORD) -> None:
        self.values.pop((account, kind), None)

    async def delete_account(self, account: str) -> None:
        self.values.clear()


async def main(rounds: int) -> None:
    with running_dovecot() as dovecot:
        peer = ScriptedSmtpPeer(ca=dovecot.ca, mode="starttls", users={dovecot.user: dovecot.password})
        await peer.start()
        settings = AccountSettings(
            email=dovecot.user,
            smtp_host="127.0.0.1",
            smtp_port=peer.port,
            smtp_security=ConnectionSecurity.STARTTLS,
            imap_host="127.0.0.1",
            imap_port=dovecot.imaps_port,
            ca_file=str(dovecot.ca_file),
        )
        totals: list[float] = []
        per_step: dict[str, list[float]] = defaultdict(list)
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                report = await run_connection_test(
                    settings, credentials=TestCredentials(password=dovecot.password), probe=NetworkProbe()
                )
                totals.append(time.perf_counter() - started)
                assert report.ok, [s.message for s in report.failures]
                for step in report.steps:
                    per_step[step.title].append(step.elapsed_s)
        finally:
            await peer.stop()
    print(f"connection test, all green, {rounds} rounds (SMTP STARTTLS peer + Dovecot IMAPS on 127.0.0.1)")
    print(f"  total: median {statistics.median(totals) * 1000:.0f} ms, max {max(totals) * 1000:.0f} ms")
    for title, values in per_step.items():
        print(f"  {title:<42} median {statistics.median(values) * 1000:7.1f} ms")

    server = TokenServer(ca=trustme.CA())
    await server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            secrets = _Secrets()
            secrets.values[("a@example.test", SecretKind.OAUTH_REFRESH_TOKEN)] = "rt-initial"
            source = OAuthTokenSource(
                account="a@example.test",
                config=resolve_client_config(
                    OAuthProvider.MICROSOFT, environ={"CADENCE_MS_CLIENT_ID": "c"}, token_url=server.url
                ),
                secrets=secrets,
                clock=_Clock(),
                endpoint=TokenEndpoint(ca_file=server.write_ca_file(Path(tmp) / "ca.pem")),
            )
            refresh: list[float] = []
            for _ in range(rounds * 4):
                source.invalidate()
                started = time.perf_counter()
                await source()
                refresh.append(time.perf_counter() - started)
            cached_started = time.perf_counter()
            for _ in range(1000):
                await source()
            cached = (time.perf_counter() - cached_started) / 1000
    finally:
        await server.stop()
    print(f"token refresh over HTTPS (new TLS connection each, {len(refresh)} runs)")
    print(f"  median {statistics.median(refresh) * 1000:.1f} ms, max {max(refresh) * 1000:.1f} ms")
    print(f"  cached access token: {cached * 1e6:.1f} µs per call")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
