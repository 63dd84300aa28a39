"""Recipient domains are checked before their first send: a real SQLite store, a real DNS server (dnslib)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from cadence.adapters.db.store import SqliteStore
from cadence.adapters.dns import DnsResolver
from cadence.core.model import SuppressionReason
from cadence.services.dbworker import DbWorker
from cadence.services.domain_guard import RecipientDomainGuard
from tests.integration.db_helpers import make_account, make_campaign, seed_outbox, store  # noqa: F401
from tests.integration.dns_server import ZoneServer

ZONE = """
canary.test.     300 IN MX 10 mx.canary.test.
mx.canary.test.  300 IN A 192.0.2.1
good.test.       300 IN MX 10 mx.good.test.
mx.good.test.    300 IN A 192.0.2.2
aonly.test.      300 IN A 192.0.2.3
nullmx.test.     300 IN MX 0 .
"""


@dataclass
class FakeClock:
    current: datetime

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def dns() -> Iterator[ZoneServer]:
    with ZoneServer(ZONE, drop={"slow.test"}) as server:
        yield server


@pytest.mark.asyncio
async def test_dead_domains_are_suppressed_before_their_first_send(
    store: SqliteStore,  # noqa: F811
    dns: ZoneServer,
) -> None:
    account = make_account(store)
    campaign = make_campaign(store, account)
    for domain in ("good.test", "aonly.test", "nullmx.test", "nx.test", "slow.test"):
        seed_outbox(store, campaign, count=2, domain=domain)
    resolver = DnsResolver(
        nameservers=["127.0.0.1"], port=dns.port, timeout_s=0.3, lifetime_s=0.6, canary_domain="canary.test"
    )
    db = DbWorker()
    try:
        clock = FakeClock(account.created_at)
        guard = RecipientDomainGuard(
            store=store, db_call=db.call, checker=resolver, clock=clock, timeout_s=2.0
        )
        await guard(account.id)
        suppressed = {s.value: s for s in store.list_suppressions()}
        assert set(suppressed) == {"@nullmx.test", "@nx.test"}
        assert all(s.reason is SuppressionReason.UNDELIVERABLE_DOMAIN for s in suppressed.values())
        evidence_id = suppressed["@nullmx.test"].evidence_id
        assert evidence_id is not None
        assert b"null MX" in store.get_evidence(evidence_id)
        assert store.is_suppressed("person4@nullmx.test")
        # a domain the resolver could not answer for is never suppressed, and asked again after a while
        assert not store.is_suppressed("person8@slow.test")
        queries_before = len(dns.resolver.queries)
        await guard(account.id)
        assert len(dns.resolver.queries) == queries_before  # the next pass does not wait for DNS again
        clock.current += timedelta(minutes=16)
        await guard(account.id)
        asked_again = {name for name, _ in dns.resolver.queries[queries_before:]}
        assert "slow.test" in asked_again
        assert not asked_again & {"good.test", "nullmx.test", "nx.test"}
        # only first touches are checked: a follow-up's domain already had its first send
        seed_outbox(store, campaign, count=1, domain="gone.test", step_index=2)
        await guard(account.id)
        assert not any(name == "gone.test" for name, _ in dns.resolver.queries)
    finally:
        db.shutdown()
