"""DNS lookups (dnspython's asyncio resolver): MX hosts, recipient-domain deliverability, sending-domain
records.

Judging the answers is pure and lives in `cadence.core.domain_health`; this module only asks DNS and turns
dnspython's answers and exceptions into `Lookup` values. No dnspython exception leaves this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from cadence.core.autoconfig import known_domain_setup
from cadence.core.domain_health import (
    Deliverability,
    DnsLookupError,
    DomainCheck,
    DomainRecords,
    HealthReport,
    Lookup,
    LookupStatus,
    MxRecord,
    dkim_selectors_to_try,
    dmarc_candidates,
    evaluate_domain_health,
    judge_recipient_domain,
    mx_hosts_in_order,
    parse_spf,
)
from cadence.core.ports import Clock, SystemClock

__all__ = ["DEFAULT_CACHE_TTL", "DnsResolver"]

_log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL = timedelta(days=7)
DEFAULT_UNDELIVERABLE_TTL = timedelta(days=2)  # a broken domain may get fixed: ask again sooner
# Before believing "does not exist" / "no mail servers", make sure DNS answers for a domain that surely
# has MX: a captive portal or a broken resolver that says NXDOMAIN to everything must not suppress leads.
DEFAULT_CANARY = "gmail.com"
_CANARY_TRUST = timedelta(minutes=10)
_MAX_SPF_FETCHES = 12  # a receiver stops at 10 lookups; a little more shows the user the overrun


def _ascii_domain(domain: str) -> str | None:
    """The domain in IDNA form without a trailing dot, or None if it is not a mail domain name."""
    text = domain.strip().rstrip(".").lower()
    if not text or "." not in text or "@" in text or any(c.isspace() for c in text):
        return None
    try:
        name = dns.name.from_text(text, origin=dns.name.root)
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return None
    return name.to_text(omit_final_dot=True).lower()


class DnsResolver:
    """One resolver for the app. `nameservers` empty → the system's configuration (resolv.conf / registry).

    Recipient-domain verdicts are cached in memory (`cached_checks` / `remember` let an upper layer persist
    them); UNKNOWN verdicts are never cached, so a DNS outage does not stick.
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str] = (),
        port: int = 53,
        timeout_s: float = 2.0,
        lifetime_s: float = 5.0,
        clock: Clock | None = None,
        cache_ttl: timedelta = DEFAULT_CACHE_TTL,
        undeliverable_ttl: timedelta = DEFAULT_UNDELIVERABLE_TTL,
        canary_domain: str | None = DEFAULT_CANARY,
    ) -> None:
        self._nameservers = tuple(nameservers)
        self._port = port
        self._timeout_s = timeout_s
        self._lifetime_s = lifetime_s
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._cache_ttl = cache_ttl
        self._undeliverable_ttl = undeliverable_ttl
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._config_error = ""
        self._cache: dict[str, DomainCheck] = {}
        self._in_flight: dict[str, asyncio.Future[DomainCheck]] = {}
        self._canary = canary_domain
        self._canary_ok_until: datetime | None = None

    # --- raw lookups ---

    def _get_resolver(self) -> dns.asyncresolver.Resolver | None:
        if self._resolver is None and not self._config_error:
            try:
                if self._nameservers:
                    resolver = dns.asyncresolver.Resolver(configure=False)
                    resolver.nameservers = [
                        dns.nameserver.Do53Nameserver(address, port=self._port)
                        for address in self._nameservers
                    ]
                else:
                    resolver = dns.asyncresolver.Resolver(configure=True)
            except (dns.exception.DNSException, OSError, ValueError) as error:
                self._config_error = f"no DNS configuration: {error}"
                _log.warning("DNS resolver unavailable: %s", error)
                return None
            resolver.timeout = self._timeout_s
            resolver.lifetime = self._lifetime_s
            resolver.use_search_by_default = False
            self._resolver = resolver
        return self._resolver

    async def lookup(self, name: str, rdtype: str) -> Lookup:
        """One query (MX, TXT, A or AAAA) as a Lookup; never raises for DNS trouble."""
        resolver = self._get_resolver()
        if resolver is None:
            return Lookup(LookupStatus.FAILED, error=self._config_error)
        try:
            answer = await resolver.resolve(
                dns.name.from_text(name, origin=dns.name.root), rdtype, raise_on_no_answer=True
            )
        except dns.resolver.NXDOMAIN:
            return Lookup(LookupStatus.NO_DOMAIN)
        except dns.resolver.NoAnswer:
            return Lookup(LookupStatus.NO_RECORDS)
        except dns.resolver.NoNameservers:
            return Lookup(LookupStatus.FAILED, error="the DNS server failed to answer (SERVFAIL or refused)")
        except dns.exception.Timeout:
            return Lookup(LookupStatus.FAILED, error="timed out")
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong) as error:
            return Lookup(LookupStatus.NO_DOMAIN, error=f"not a valid domain name: {error}")
        except (dns.exception.DNSException, OSError) as error:
            return Lookup(LookupStatus.FAILED, error=f"{type(error).__name__}: {_short(error)}")
        kind = dns.rdatatype.from_text(rdtype)
        records = [r for r in answer.rrset or () if r.rdtype == kind]
        if kind == dns.rdatatype.MX:
            mx = tuple(
                MxRecord(int(r.preference), r.exchange.to_text(omit_final_dot=True).rstrip(".").lower())
                for r in records
            )
            return Lookup(LookupStatus.FOUND, mx=mx)
        if kind == dns.rdatatype.TXT:
            texts = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in records)
            return Lookup(LookupStatus.FOUND, texts=texts)
        return Lookup(LookupStatus.FOUND, texts=tuple(r.to_text() for r in records))

    async def mx_hosts(self, domain: str) -> tuple[str, ...]:
        """MX hosts in preference order; () when the domain has none or does not exist.

        Raises DnsLookupError when DNS does not answer (the caller should not read that as "no MX").
        """
        name = _ascii_domain(domain)
        if name is None:
            return ()
        found = await self.lookup(name, "MX")
        if found.status is LookupStatus.FAILED:
            raise DnsLookupError(f"Could not look up the mail servers of {name} ({found.error}).")
        return mx_hosts_in_order(found.mx)

    # --- recipient domains ---

    async def check_recipient_domain(self, domain: str) -> DomainCheck:
        """Deliverable / undeliverable (with reason) / unknown, and who hosts the domain's mail. Cached."""
        name = _ascii_domain(domain)
        now = self._clock.now()
        if name is None:
            reason = f"“{domain}” is not a valid domain name."
            return DomainCheck(domain.strip().lower(), Deliverability.UNDELIVERABLE, reason, now)
        cached = self._cache.get(name)
        if cached is not None and now < cached.checked_at + self._ttl(cached):
            return cached
        pending = self._in_flight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DomainCheck] = asyncio.get_running_loop().create_future()
        self._in_flight[name] = future
        try:
            check = await self._check_uncached(name)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so a lone failure is not reported as unhandled
            raise
        else:
            future.set_result(check)
            if check.deliverability is not Deliverability.UNKNOWN:
                self._cache[name] = check
            return check
        finally:
            del self._in_flight[name]

    async def _check_uncached(self, name: str) -> DomainCheck:
        mx = await self.lookup(name, "MX")
        addresses: Lookup | None = None
        if mx.status is LookupStatus.NO_RECORDS:
            addresses = await self.lookup(name, "A")
            if addresses.status is LookupStatus.NO_RECORDS:
                addresses = await self.lookup(name, "AAAA")
        check = judge_recipient_domain(name, mx=mx, addresses=addresses, now=self._clock.now())
        null_mx = mx.found and not check.mx_hosts
        if check.undeliverable and not null_mx and not await self._dns_trustworthy():
            return DomainCheck(
                name,
                Deliverability.UNKNOWN,
                f"DNS says {name} cannot receive mail, but it gives no mail servers for {self._canary} "
                "either, so the answer is not trusted.",
                check.checked_at,
            )
        return check

    async def _dns_trustworthy(self) -> bool:
        if self._canary is None or _still_valid(self._canary_ok_until, self._clock.now()):
            return True
        canary = await self.lookup(self._canary, "MX")
        if canary.found and any(r.host for r in canary.mx):
            self._canary_ok_until = self._clock.now() + _CANARY_TRUST
            return True
        _log.warning("DNS gives no MX for %s: not trusting negative answers", self._canary)
        return False

    def _ttl(self, check: DomainCheck) -> timedelta:
        return self._undeliverable_ttl if check.undeliverable else self._cache_ttl

    def cached_checks(self) -> tuple[DomainCheck, ...]:
        """Unexpired verdicts, for an upper layer to persist."""
        now = self._clock.now()
        return tuple(c for c in self._cache.values() if now < c.checked_at + self._ttl(c))

    def remember(self, checks: Iterable[DomainCheck]) -> None:
        """Load persisted verdicts (expired and UNKNOWN ones are ignored; newer ones win)."""
        now = self._clock.now()
        for check in checks:
            if check.deliverability is Deliverability.UNKNOWN or now >= check.checked_at + self._ttl(check):
                continue
            current = self._cache.get(check.domain)
            if current is None or current.checked_at < check.checked_at:
                self._cache[check.domain] = check

    def forget(self, domain: str) -> None:
        name = _ascii_domain(domain)
        if name is not None:
            self._cache.pop(name, None)

    # --- sending domains ---

    async def sending_domain_records(
        self, domain: str, *, provider_key: str | None, extra_selectors: Iterable[str] = ()
    ) -> DomainRecords:
        name = _ascii_domain(domain)
        if name is None:
            raise ValueError(f"“{domain}” is not a valid domain name")
        selectors = dkim_selectors_to_try(provider_key, extra=extra_selectors)
        spf, dmarc_found, dkim_lookups = await asyncio.gather(
            self.lookup(name, "TXT"),
            self._dmarc(name),
            asyncio.gather(*(self.lookup(f"{s}._domainkey.{name}", "TXT") for s in selectors)),
        )
        children = await self._spf_children(spf)
        dmarc_name, dmarc = dmarc_found
        return DomainRecords(
            domain=name,
            spf=spf,
            spf_children=children,
            dmarc=dmarc,
            dmarc_name=dmarc_name,
            dkim=dict(zip(selectors, dkim_lookups, strict=True)),
        )

    async def sending_domain_health(
        self, email_or_domain: str, *, provider_key: str | None = None, extra_selectors: Iterable[str] = ()
    ) -> HealthReport:
        """The SPF / DKIM / DMARC checklist for the domain of an address (or a bare domain)."""
        domain = email_or_domain.rpartition("@")[2]
        managed = False
        if "@" in email_or_domain:
            known = known_domain_setup(email_or_domain)
            if known is not None:
                managed = True
                provider_key = provider_key or known.provider_key
        records = (
            DomainRecords(domain=domain.lower(), spf=Lookup(LookupStatus.NO_RECORDS))
            if managed
            else await self.sending_domain_records(
                domain, provider_key=provider_key, extra_selectors=extra_selectors
            )
        )
        return evaluate_domain_health(records, provider_key=provider_key, provider_managed=managed)

    async def _dmarc(self, name: str) -> tuple[str, Lookup]:
        """The DMARC TXT at the domain, else at its parents (RFC 7489 falls back to the organisational
        domain); a failed lookup stops the walk, since "no record" would then be a guess."""
        candidates = dmarc_candidates(name)
        for candidate in candidates:
            found = await self.lookup(candidate, "TXT")
            if found.status is LookupStatus.FAILED:
                return candidate, found
            if any(t.replace(" ", "").lower().startswith("v=dmarc1") for t in found.texts):
                return candidate, found
        return candidates[0], Lookup(LookupStatus.NO_RECORDS)

    async def _spf_children(self, root: Lookup) -> dict[str, Lookup]:
        children: dict[str, Lookup] = {}
        queue = list(_spf_targets(root))
        while queue and len(children) < _MAX_SPF_FETCHES:
            target = queue.pop(0)
            if target in children:
                continue
            found = await self.lookup(target, "TXT")
            children[target] = found
            queue.extend(t for t in _spf_targets(found) if t not in children)
        return children


def _still_valid(until: datetime | None, now: datetime) -> bool:
    return until is not None and now < until


def _spf_targets(lookup: Lookup) -> list[str]:
    for text in lookup.texts:
        if text.lower().startswith("v=spf1"):
            spf = parse_spf(text)
            return [*spf.includes, *([spf.redirect] if spf.redirect else [])]
    return []


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:197] + "..."
