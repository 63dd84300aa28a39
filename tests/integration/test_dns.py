"""DnsResolver against a real DNS server (dnslib on 127.0.0.1, UDP, an OS-chosen port)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cadence.adapters.dns import DnsResolver
from cadence.core.autoconfig import ProviderFamily, SetupSource, propose
from cadence.core.domain_health import CheckStatus, Deliverability, DnsLookupError, LookupStatus
from cadence.core.ports import DomainChecker
from tests.integration.dns_server import ZoneServer

ZONE = """
google-hosted.test.   300 IN MX 5 alt1.aspmx.l.google.com.
google-hosted.test.   300 IN MX 1 aspmx.l.google.com.
ms-hosted.test.       300 IN MX 0 ms-hosted-test.mail.protection.outlook.com.
own-server.test.      300 IN MX 10 mx.own-server.test.
mx.own-server.test.   300 IN A 192.0.2.20
nullmx.test.          300 IN MX 0 .
aonly.test.           300 IN A 192.0.2.10
aaaaonly.test.        300 IN AAAA 2001:db8::1
nomail.test.          300 IN TXT "site-verification=abc"
deep.parent.test.     300 IN A 192.0.2.11

good.test.                        300 IN TXT "google-site-verification=xyz"
good.test.                        300 IN TXT "v=spf1 include:_spf.google.com ~all"
_spf.google.com.                  300 IN TXT "v=spf1 include:_netblocks.google.com ~all"
_netblocks.google.com.            300 IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"
google._domainkey.good.test.      300 IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
_dmarc.good.test.                 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@good.test"

nested.test.                      300 IN TXT "v=spf1 include:_spf.nested.test -all"
_spf.nested.test.                 300 IN TXT "v=spf1 ip4:198.51.100.7 include:spf.protection.outlook.com -all"
spf.protection.outlook.com.       300 IN TXT "v=spf1 ip4:40.92.0.0/15 -all"
selector1._domainkey.nested.test. 300 IN CNAME selector1-nested-test._domainkey.contoso.onmicrosoft.test.
selector1-nested-test._domainkey.contoso.onmicrosoft.test. 300 IN TXT "v=DKIM1; k=rsa; p=MIGfMA0GCSqG"
_dmarc.nested.test.               300 IN TXT "v=DMARC1; p=none"
sales.nested.test.                300 IN A 192.0.2.12

bare.test.                        300 IN TXT "google-site-verification=only"
bare.test.                        300 IN MX 1 aspmx.l.google.com.

twospf.test.                      300 IN TXT "v=spf1 include:_spf.google.com ~all"
twospf.test.                      300 IN TXT "v=spf1 mx -all"
google._domainkey.twospf.test.    300 IN TXT "v=DKIM1; k=rsa; p="
_dmarc.twospf.test.               300 IN TXT "v=DMARC1; p=reject"
_dmarc.twospf.test.               300 IN TXT "v=DMARC1; p=none"

otherspf.test.                    300 IN TXT "v=spf1 include:spf.other-esp.test ?all"
spf.other-esp.test.               300 IN TXT "v=spf1 ip4:203.0.113.0/24 ~all"
s1._domainkey.otherspf.test.      300 IN TXT "v=DKIM1; p=MIGfMA0"
_dmarc.otherspf.test.             300 IN TXT "v=DMARC1; p=bogus"

slowdmarc.test.                   300 IN TXT "v=spf1 include:_spf.google.com +all"
"""


class FakeClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


@pytest.fixture(scope="module")
def dns_server() -> Iterator[ZoneServer]:
    with ZoneServer(ZONE, servfail={"broken.test"}, drop={"slow.test", "_dmarc.slowdmarc.test"}) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def resolver(dns_server: ZoneServer, clock: FakeClock) -> DnsResolver:
    return DnsResolver(
        nameservers=["127.0.0.1"],
        port=dns_server.port,
        timeout_s=0.3,
        lifetime_s=0.6,
        clock=clock,
        canary_domain="google-hosted.test",
    )


# --- MX and autoconfig -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_mx_hosts_in_preference_order_map_to_google_workspace(resolver: DnsResolver) -> None:
    hosts = await resolver.mx_hosts("google-hosted.test")
    assert hosts == ("aspmx.l.google.com", "alt1.aspmx.l.google.com")
    setup = propose("sam@google-hosted.test", mx_hosts=hosts)
    assert (setup.provider_key, setup.source) == ("google_workspace", SetupSource.MX)
    assert setup.smtp.host == "smtp.gmail.com"


@pytest.mark.asyncio
async def test_microsoft_hosted_and_own_server(resolver: DnsResolver) -> None:
    ms = propose("a@ms-hosted.test", mx_hosts=await resolver.mx_hosts("MS-Hosted.test."))
    assert ms.provider_key == "microsoft365" and ms.smtp.host == "smtp.office365.com"
    own = propose("a@own-server.test", mx_hosts=await resolver.mx_hosts("own-server.test"))
    assert own.guessed and own.smtp.host == "smtp.own-server.test"


@pytest.mark.asyncio
async def test_mx_hosts_empty_for_missing_and_error_for_failure(resolver: DnsResolver) -> None:
    assert await resolver.mx_hosts("nx.test") == ()
    assert await resolver.mx_hosts("aonly.test") == ()
    assert await resolver.mx_hosts("nullmx.test") == ()
    with pytest.raises(DnsLookupError, match=r"broken\.test"):
        await resolver.mx_hosts("broken.test")


# --- recipient-domain deliverability ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected", "reason", "provider"),
    [
        ("google-hosted.test", Deliverability.DELIVERABLE, "aspmx.l.google.com", ProviderFamily.GOOGLE),
        ("ms-hosted.test", Deliverability.DELIVERABLE, "protection.outlook.com", ProviderFamily.MICROSOFT),
        ("own-server.test", Deliverability.DELIVERABLE, "mx.own-server.test", None),
        ("aonly.test", Deliverability.DELIVERABLE, "192.0.2.10", None),
        ("aaaaonly.test", Deliverability.DELIVERABLE, "2001:db8::1", None),
        ("nullmx.test", Deliverability.UNDELIVERABLE, "null MX", None),
        ("nx.test", Deliverability.UNDELIVERABLE, "does not exist", None),
        ("nomail.test", Deliverability.UNDELIVERABLE, "neither mail servers (MX) nor an address", None),
        ("parent.test", Deliverability.UNDELIVERABLE, "neither", None),  # exists (has a child), no records
        ("broken.test", Deliverability.UNKNOWN, "SERVFAIL", None),
        ("not a domain", Deliverability.UNDELIVERABLE, "not a valid domain name", None),
    ],
)
@pytest.mark.asyncio
async def test_recipient_domain_verdicts(
    resolver: DnsResolver, domain: str, expected: Deliverability, reason: str, provider: ProviderFamily | None
) -> None:
    check = await resolver.check_recipient_domain(domain)
    assert check.deliverability is expected, check.reason
    assert reason in check.reason
    assert check.provider is provider


@pytest.mark.asyncio
async def test_timeout_is_unknown_never_undeliverable(resolver: DnsResolver) -> None:
    started = time.monotonic()
    check = await resolver.check_recipient_domain("slow.test")
    assert check.deliverability is Deliverability.UNKNOWN
    assert "timed out" in check.reason
    assert not check.undeliverable
    assert time.monotonic() - started < 3.0


@pytest.mark.asyncio
async def test_unreachable_server_is_unknown() -> None:
    silent = DnsResolver(nameservers=["127.0.0.1"], port=9, timeout_s=0.2, lifetime_s=0.4)
    check = await silent.check_recipient_domain("example.test")
    assert check.deliverability is Deliverability.UNKNOWN


@pytest.mark.asyncio
async def test_negative_answers_are_not_trusted_when_dns_seems_broken(
    dns_server: ZoneServer, clock: FakeClock
) -> None:
    """A resolver that says NXDOMAIN even for a domain that surely has MX must not get leads suppressed."""
    distrustful = DnsResolver(
        nameservers=["127.0.0.1"], port=dns_server.port, clock=clock, canary_domain="gone-canary.test"
    )
    nx = await distrustful.check_recipient_domain("nx.test")
    assert nx.deliverability is Deliverability.UNKNOWN and "not trusted" in nx.reason
    no_mail = await distrustful.check_recipient_domain("nomail.test")
    assert no_mail.deliverability is Deliverability.UNKNOWN
    # A null MX is an explicit statement by the domain, not an absence: still believed.
    assert (await distrustful.check_recipient_domain("nullmx.test")).undeliverable


@pytest.mark.asyncio
async def test_canary_is_asked_once_per_ten_minutes(
    resolver: DnsResolver, dns_server: ZoneServer, clock: FakeClock
) -> None:
    resolver.forget("nx.test")
    before = _mx_queries(dns_server, "google-hosted.test")
    assert (await resolver.check_recipient_domain("nx.test")).undeliverable
    assert (await resolver.check_recipient_domain("nomail.test")).undeliverable
    assert _mx_queries(dns_server, "google-hosted.test") == before + 1
    clock.current += timedelta(minutes=11)
    aaaa_only = await resolver.check_recipient_domain("aaaaonly.test")
    assert aaaa_only.deliverability is Deliverability.DELIVERABLE
    assert (await resolver.check_recipient_domain("parent.test")).undeliverable
    assert _mx_queries(dns_server, "google-hosted.test") == before + 2


# --- the cache --------------------------------------------------------------------------------------------


def _mx_queries(server: ZoneServer, name: str) -> int:
    return server.queries.count((name, "MX"))


@pytest.mark.asyncio
async def test_verdicts_are_cached_for_days_and_refreshed_after(
    resolver: DnsResolver, dns_server: ZoneServer, clock: FakeClock
) -> None:
    before = _mx_queries(dns_server, "google-hosted.test")
    first = await resolver.check_recipient_domain("google-hosted.test")
    clock.current += timedelta(days=6)
    assert await resolver.check_recipient_domain("Google-Hosted.TEST") is first
    assert _mx_queries(dns_server, "google-hosted.test") == before + 1
    clock.current += timedelta(days=2)
    refreshed = await resolver.check_recipient_domain("google-hosted.test")
    assert refreshed.checked_at == clock.current
    assert _mx_queries(dns_server, "google-hosted.test") == before + 2


@pytest.mark.asyncio
async def test_undeliverable_is_cached_shorter_and_unknown_not_at_all(
    resolver: DnsResolver, dns_server: ZoneServer, clock: FakeClock
) -> None:
    await resolver.check_recipient_domain("nx.test")
    clock.current += timedelta(days=1)
    count = _mx_queries(dns_server, "nx.test")
    await resolver.check_recipient_domain("nx.test")
    assert _mx_queries(dns_server, "nx.test") == count
    clock.current += timedelta(days=1, minutes=1)
    await resolver.check_recipient_domain("nx.test")
    assert _mx_queries(dns_server, "nx.test") == count + 1

    count = _mx_queries(dns_server, "broken.test")
    await resolver.check_recipient_domain("broken.test")
    await resolver.check_recipient_domain("broken.test")
    assert _mx_queries(dns_server, "broken.test") == count + 2
    assert all(c.domain != "broken.test" for c in resolver.cached_checks())


@pytest.mark.asyncio
async def test_cache_can_be_persisted_and_reloaded(
    resolver: DnsResolver, dns_server: ZoneServer, clock: FakeClock
) -> None:
    await resolver.check_recipient_domain("aonly.test")
    await resolver.check_recipient_domain("nullmx.test")
    saved = resolver.cached_checks()
    assert {c.domain for c in saved} == {"aonly.test", "nullmx.test"}

    fresh = DnsResolver(nameservers=["127.0.0.1"], port=dns_server.port, clock=clock)
    fresh.remember(saved)
    count = _mx_queries(dns_server, "nullmx.test")
    assert (await fresh.check_recipient_domain("nullmx.test")).undeliverable
    assert _mx_queries(dns_server, "nullmx.test") == count

    later = DnsResolver(nameservers=["127.0.0.1"], port=dns_server.port, clock=clock)
    clock.current += timedelta(days=30)
    later.remember(saved)
    assert later.cached_checks() == ()


@pytest.mark.asyncio
async def test_concurrent_checks_of_one_domain_share_one_lookup(
    resolver: DnsResolver, dns_server: ZoneServer
) -> None:
    count = _mx_queries(dns_server, "ms-hosted.test")
    results = await asyncio.gather(*(resolver.check_recipient_domain("ms-hosted.test") for _ in range(10)))
    assert len({id(r) for r in results}) == 1
    assert _mx_queries(dns_server, "ms-hosted.test") == count + 1


# --- sending-domain health --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_healthy_google_workspace_domain(resolver: DnsResolver) -> None:
    report = await resolver.sending_domain_health("ann@good.test", provider_key="google_workspace")
    assert [(i.name, i.status) for i in report.items] == [
        ("SPF", CheckStatus.OK),
        ("DKIM", CheckStatus.OK),
        ("DMARC", CheckStatus.OK),
    ]
    assert report.worst is CheckStatus.OK
    assert "google._domainkey.good.test" in report.item("DKIM").summary
    assert "quarantine" in report.item("DMARC").summary


@pytest.mark.asyncio
async def test_nested_spf_cname_dkim_and_parent_dmarc(resolver: DnsResolver) -> None:
    records = await resolver.sending_domain_records("nested.test", provider_key="microsoft365")
    assert set(records.spf_children) == {"_spf.nested.test", "spf.protection.outlook.com"}
    assert records.dkim["selector1"].status is LookupStatus.FOUND  # through the CNAME
    report = await resolver.sending_domain_health("nested.test", provider_key="microsoft365")
    assert report.item("SPF").status is CheckStatus.OK
    assert report.item("DKIM").status is CheckStatus.OK

    sub = await resolver.sending_domain_records("sales.nested.test", provider_key="microsoft365")
    assert sub.dmarc_name == "_dmarc.nested.test" and sub.dmarc.found


@pytest.mark.asyncio
async def test_bare_domain_gets_a_checklist_of_fixes(resolver: DnsResolver) -> None:
    report = await resolver.sending_domain_health("bo@bare.test", provider_key="google_workspace")
    spf, dkim, dmarc = report.items
    assert spf.status is CheckStatus.PROBLEM and "v=spf1 include:_spf.google.com ~all" in spf.fix
    assert dkim.status is CheckStatus.WARNING and "Google Admin console" in dkim.fix
    assert dmarc.status is CheckStatus.PROBLEM and "_dmarc.bare.test" in dmarc.fix
    assert report.worst is CheckStatus.PROBLEM


@pytest.mark.asyncio
async def test_duplicate_records_and_revoked_key_are_problems(resolver: DnsResolver) -> None:
    report = await resolver.sending_domain_health("twospf.test", provider_key="google_workspace")
    assert report.item("SPF").status is CheckStatus.PROBLEM and "2 SPF records" in report.item("SPF").summary
    assert report.item("DKIM").status is CheckStatus.PROBLEM and "revoked" in report.item("DKIM").summary
    assert report.item("DMARC").status is CheckStatus.PROBLEM


@pytest.mark.asyncio
async def test_spf_without_the_provider_and_invalid_dmarc(resolver: DnsResolver) -> None:
    report = await resolver.sending_domain_health("otherspf.test", provider_key="google_workspace")
    assert report.item("SPF").status is CheckStatus.PROBLEM
    assert "include:_spf.google.com" in report.item("SPF").fix
    assert report.item("DKIM").status is CheckStatus.OK  # found under a common selector (s1)
    assert report.item("DMARC").status is CheckStatus.PROBLEM and "p=" in report.item("DMARC").summary
    custom = await resolver.sending_domain_health("otherspf.test", provider_key=None)
    assert custom.item("SPF").status is CheckStatus.WARNING  # ?all, and no provider to look for


@pytest.mark.asyncio
async def test_dmarc_timeout_is_unknown_and_plus_all_is_a_problem(resolver: DnsResolver) -> None:
    report = await resolver.sending_domain_health("slowdmarc.test", provider_key="google_workspace")
    assert report.item("DMARC").status is CheckStatus.UNKNOWN
    assert report.item("SPF").status is CheckStatus.PROBLEM and "+all" in report.item("SPF").summary


@pytest.mark.asyncio
async def test_consumer_address_needs_no_dns_setup(resolver: DnsResolver, dns_server: ZoneServer) -> None:
    count = len(dns_server.queries)
    report = await resolver.sending_domain_health("ann@gmail.com")
    assert [i.status for i in report.items] == [CheckStatus.OK]
    assert len(dns_server.queries) == count


@pytest.mark.asyncio
async def test_extra_selector_is_tried(resolver: DnsResolver) -> None:
    records = await resolver.sending_domain_records(
        "good.test", provider_key=None, extra_selectors=["Custom2026"]
    )
    assert next(iter(records.dkim)) == "custom2026"
    assert records.dkim["custom2026"].status is LookupStatus.NO_DOMAIN
    with pytest.raises(ValueError, match="not a valid domain"):
        await resolver.sending_domain_records("no spaces allowed.test", provider_key=None)


def test_resolver_implements_the_port(resolver: DnsResolver) -> None:
    checker: DomainChecker = resolver  # checked by mypy; at run time the methods must exist
    assert callable(checker.check_recipient_domain) and callable(checker.sending_domain_health)
