"""Figures for the keyring store and the DNS checker (prints them; asserts nothing).

  cd /work/main && .venv/bin/python benchmarks/secrets_dns_bench.py
For the keyring figures run it inside a Secret Service session:
  dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1;
    .venv/bin/python benchmarks/secrets_dns_bench.py'
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.dns_server import ZoneServer

from cadence import APP_ID
from cadence.adapters.dns import DnsResolver
from cadence.adapters.secrets import KeyringSecretStore
from cadence.core.ports import SecretKind, SecretStoreError

DOMAINS = 200


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def bench_keyring() -> None:
    service = f"{APP_ID}.bench-{uuid.uuid4().hex[:6]}"
    store = KeyringSecretStore(service=service, timeout_s=10, chunk_limit=1280)
    try:
        print("keyring backend:", await store.check())
    except SecretStoreError as error:
        print("keyring: skipped:", error)
        return
    short, long = "app-password-1234", "t" * 5000
    for label, secret in (("16-char password", short), ("5,000-char token (4 chunks)", long)):
        sets, gets = [], []
        for i in range(20):
            started = time.perf_counter()
            await store.set(f"bench{i}@example.test", secret, kind=SecretKind.OAUTH_REFRESH_TOKEN)
            sets.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert await store.get(f"bench{i}@example.test", kind=SecretKind.OAUTH_REFRESH_TOKEN) == secret
            gets.append(time.perf_counter() - started)
        for i in range(20):
            await store.delete_account(f"bench{i}@example.test")
        print(f"keyring {label}: set median {_ms(statistics.median(sets))}, "
              f"get median {_ms(statistics.median(gets))}")


async def bench_dns() -> None:
    zone = "\n".join(f"d{i}.test. 300 IN MX 10 aspmx.l.google.com." for i in range(DOMAINS))
    with ZoneServer(zone) as server:
        resolver = DnsResolver(nameservers=["127.0.0.1"], port=server.port, timeout_s=1, lifetime_s=2)
        started = time.perf_counter()
        for i in range(DOMAINS):
            await resolver.check_recipient_domain(f"d{i}.test")
        cold = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(10):
            for i in range(DOMAINS):
                await resolver.check_recipient_domain(f"d{i}.test")
        warm = time.perf_counter() - started
        started = time.perf_counter()
        fresh = DnsResolver(nameservers=["127.0.0.1"], port=server.port, timeout_s=1, lifetime_s=2)
        await asyncio.gather(*(fresh.check_recipient_domain(f"d{i}.test") for i in range(DOMAINS)))
        parallel = time.perf_counter() - started
    print(f"dns recipient check, local server: cold {_ms(cold / DOMAINS)} per domain (sequential), "
          f"{_ms(parallel / DOMAINS)} per domain ({DOMAINS} concurrent), "
          f"cached {warm / (10 * DOMAINS) * 1e6:.1f} µs per check")


async def main() -> None:
    await bench_keyring()
    await bench_dns()


if __name__ == "__main__":
    asyncio.run(main())
