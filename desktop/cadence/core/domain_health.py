"""Judging DNS facts (pure): is a recipient domain deliverable, and is a sending domain set up well?

The DNS adapter gathers raw lookups (`Lookup`) and hands them here; nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cadence.core.autoconfig import ProviderFamily, mx_family

__all__ = [
    "COMMON_DKIM_SELECTORS",
    "PROVIDER_DKIM_SELECTORS",
    "PROVIDER_SPF_INCLUDES",
    "CheckStatus",
    "Deliverability",
    "DmarcPolicy",
    "DnsLookupError",
    "DomainCheck",
    "DomainRecords",
    "HealthItem",
    "HealthReport",
    "Lookup",
    "LookupStatus",
    "MxRecord",
    "SpfRecord",
    "dkim_selectors_to_try",
    "dmarc_candidates",
    "evaluate_domain_health",
    "judge_recipient_domain",
    "mx_hosts_in_order",
    "parse_dmarc",
    "parse_spf",
    "parse_tags",
    "spf_lookup_count",
]


class DnsLookupError(Exception):
    """DNS could not answer (timeout, server failure, no configuration); `str(error)` is for the user."""


# --- raw lookups (what the adapter hands over) ------------------------------------------------------------


class LookupStatus(StrEnum):
    FOUND = "found"
    NO_RECORDS = "no_records"  # the name exists but has no record of that type
    NO_DOMAIN = "no_domain"  # NXDOMAIN, or not a valid domain name
    FAILED = "failed"  # timeout, SERVFAIL, refused, no resolver: we do not know


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    host: str  # without the trailing dot; "" for a null MX ("0 .")


@dataclass(frozen=True, slots=True)
class Lookup:
    status: LookupStatus
    texts: tuple[str, ...] = ()  # TXT records (each one's strings joined) or addresses
    mx: tuple[MxRecord, ...] = ()
    error: str = ""

    @property
    def found(self) -> bool:
        return self.status is LookupStatus.FOUND


# --- recipient domains ------------------------------------------------------------------------------------


class Deliverability(StrEnum):
    DELIVERABLE = "deliverable"
    UNDELIVERABLE = "undeliverable"  # block sends to it
    UNKNOWN = "unknown"  # DNS did not answer: never block on this


@dataclass(frozen=True, slots=True)
class DomainCheck:
    domain: str
    deliverability: Deliverability
    reason: str
    checked_at: datetime
    mx_hosts: tuple[str, ...] = ()  # preference order
    provider: ProviderFamily | None = None  # who receives its mail (per-provider backoff keys on it)

    @property
    def undeliverable(self) -> bool:
        return self.deliverability is Deliverability.UNDELIVERABLE


def judge_recipient_domain(
    domain: str, *, mx: Lookup, addresses: Lookup | None, now: datetime
) -> DomainCheck:
    """Decide from the MX lookup and, when there is no MX, the A/AAAA lookup (RFC 5321 implicit MX)."""

    def result(state: Deliverability, reason: str, hosts: tuple[str, ...] = ()) -> DomainCheck:
        provider = mx_family(hosts) if hosts else None
        return DomainCheck(domain, state, reason, now, mx_hosts=hosts, provider=provider)

    if mx.status is LookupStatus.NO_DOMAIN:
        return result(Deliverability.UNDELIVERABLE, f"{domain} does not exist{_detail(mx.error)}.")
    if mx.status is LookupStatus.FAILED:
        return result(Deliverability.UNKNOWN, f"DNS did not answer for {domain}{_detail(mx.error)}.")
    if mx.status is LookupStatus.FOUND:
        real = sorted((r for r in mx.mx if r.host), key=lambda r: r.preference)
        if not real:
            return result(
                Deliverability.UNDELIVERABLE,
                f"{domain} publishes a null MX (RFC 7505): it accepts no mail at all.",
            )
        hosts = tuple(dict.fromkeys(r.host.lower() for r in real))
        return result(Deliverability.DELIVERABLE, f"{domain} receives mail at {hosts[0]}.", hosts)
    # No MX: mail goes to the domain's own address, if it has one.
    if addresses is None or addresses.status is LookupStatus.FAILED:
        error = addresses.error if addresses is not None else ""
        return result(
            Deliverability.UNKNOWN, f"{domain} has no MX and its address lookup failed{_detail(error)}."
        )
    if addresses.found:
        address = addresses.texts[0]
        reason = f"{domain} has no MX; mail goes to its address ({address})."
        return result(Deliverability.DELIVERABLE, reason)
    return result(
        Deliverability.UNDELIVERABLE, f"{domain} has neither mail servers (MX) nor an address (A/AAAA)."
    )


def _detail(error: str) -> str:
    return f" ({error})" if error else ""


# --- sending domains: the records ------------------------------------------------------------------------

PROVIDER_SPF_INCLUDES: Mapping[str, tuple[str, ...]] = {
    "gmail": ("_spf.google.com",),
    "google_workspace": ("_spf.google.com",),
    "microsoft365": ("spf.protection.outlook.com",),
    "outlook_com": ("spf.protection.outlook.com",),
    "zoho": ("zoho.com", "zohomail.com", "zoho.eu", "zoho.in", "zoho.com.au", "zoho.jp"),
    "fastmail": ("spf.messagingengine.com",),
    "godaddy": ("secureserver.net",),
    "rackspace": ("emailsrvr.com",),
    "proton": ("_spf.protonmail.ch",),
    "icloud": ("icloud.com",),
    "ionos": ("_spf.perfora.net", "_spf-eu.ionos.com", "_spf-us.ionos.com", "_spf.kundenserver.de"),
    "privateemail": ("spf.privateemail.com",),
    "yahoo": ("_spf.mail.yahoo.com",),
}
"""SPF include targets that authorise each provider's outgoing servers (any one of them is enough)."""

PROVIDER_DKIM_SELECTORS: Mapping[str, tuple[str, ...]] = {
    "google_workspace": ("google",),
    "microsoft365": ("selector1", "selector2"),
    "zoho": ("zmail", "zoho"),
    "fastmail": ("fm1", "fm2", "fm3"),
    "proton": ("protonmail", "protonmail2", "protonmail3"),
    "icloud": ("sig1",),
    "ionos": ("s1-ionos", "s2-ionos"),
}
COMMON_DKIM_SELECTORS: tuple[str, ...] = (
    "default",
    "dkim",
    "mail",
    "k1",
    "k2",
    "s1",
    "s2",
    "selector1",
    "selector2",
    "google",
    "key1",
    "smtp",
)

_DKIM_HOW_TO: Mapping[str, str] = {
    "google_workspace": (
        "In the Google Admin console open Apps → Google Workspace → Gmail → Authenticate email, generate a "
        "key, publish the TXT record it shows at google._domainkey, then click Start authentication."
    ),
    "microsoft365": (
        "In the Microsoft Defender portal open Email authentication settings → DKIM, publish the two CNAME "
        "records it shows (selector1._domainkey and selector2._domainkey), then enable signing."
    ),
}


def dkim_selectors_to_try(provider_key: str | None, *, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The provider's usual selectors first, then the user's, then common ones; no duplicates."""
    ordered = [*PROVIDER_DKIM_SELECTORS.get(provider_key or "", ()), *extra, *COMMON_DKIM_SELECTORS]
    return tuple(dict.fromkeys(s.strip().lower() for s in ordered if s.strip()))


def dmarc_candidates(domain: str) -> tuple[str, ...]:
    """Where to look for DMARC: the domain, then its parents down to two labels (organisational domain)."""
    labels = domain.strip(".").lower().split(".")
    return tuple(f"_dmarc.{'.'.join(labels[i:])}" for i in range(max(len(labels) - 1, 1)))


@dataclass(frozen=True, slots=True)
class SpfRecord:
    text: str
    all_qualifier: str | None  # "+", "-", "~", "?" or None when there is no `all`
    includes: tuple[str, ...]
    redirect: str | None
    lookup_terms: int  # include, a, mx, ptr, exists, redirect: each costs a DNS lookup (limit 10)


_SPF_LOOKUP_MECHANISMS = ("include", "a", "mx", "ptr", "exists")


def parse_spf(text: str) -> SpfRecord:
    includes: list[str] = []
    redirect: str | None = None
    all_qualifier: str | None = None
    lookups = 0
    for term in text.split()[1:]:
        lower = term.lower()
        qualifier = lower[0] if lower[:1] in {"+", "-", "~", "?"} else "+"
        body = lower[1:] if lower[:1] in {"+", "-", "~", "?"} else lower
        if body.startswith("redirect="):
            redirect = body.partition("=")[2].strip(".")
            lookups += 1
            continue
        name, _, value = body.partition(":")
        name = name.partition("/")[0]
        if name == "all":
            all_qualifier = qualifier
        elif name == "include" and value:
            includes.append(value.strip("."))
            lookups += 1
        elif name in _SPF_LOOKUP_MECHANISMS:
            lookups += 1
    return SpfRecord(text, all_qualifier, tuple(includes), redirect, lookups)


def _spf_records(lookup: Lookup) -> list[str]:
    return [t for t in lookup.texts if t.lower().startswith("v=spf1") and (len(t) == 6 or t[6] == " ")]


@dataclass(frozen=True, slots=True)
class DomainRecords:
    """Raw DNS facts about a sending domain, gathered by the adapter."""

    domain: str
    spf: Lookup  # TXT at the domain
    spf_children: Mapping[str, Lookup] = field(default_factory=dict)  # TXT of include:/redirect= targets
    dmarc: Lookup = Lookup(LookupStatus.NO_RECORDS)
    dmarc_name: str = ""  # where the DMARC record was found (or last looked)
    dkim: Mapping[str, Lookup] = field(default_factory=dict)  # selector → TXT at <selector>._domainkey


def spf_lookup_count(records: DomainRecords) -> int:
    """DNS lookups a receiver spends on the SPF tree we fetched (RFC 7208 allows 10)."""
    total = 0
    for lookup in (records.spf, *records.spf_children.values()):
        for text in _spf_records(lookup)[:1]:
            total += parse_spf(text).lookup_terms
    return total


def _spf_reachable(records: DomainRecords) -> set[str]:
    reached: set[str] = set()
    pending = [records.spf]
    while pending:
        lookup = pending.pop()
        for text in _spf_records(lookup)[:1]:
            spf = parse_spf(text)
            for target in (*spf.includes, *([spf.redirect] if spf.redirect else [])):
                if target not in reached:
                    reached.add(target)
                    child = records.spf_children.get(target)
                    if child is not None:
                        pending.append(child)
    return reached


# --- sending domains: the checklist ----------------------------------------------------------------------


class CheckStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    UNKNOWN = "unknown"  # DNS did not answer; check again later


_SEVERITY = {CheckStatus.OK: 0, CheckStatus.UNKNOWN: 1, CheckStatus.WARNING: 2, CheckStatus.PROBLEM: 3}


@dataclass(frozen=True, slots=True)
class HealthItem:
    name: str  # "SPF", "DKIM", "DMARC"
    status: CheckStatus
    summary: str
    fix: str = ""  # what to change, "" when nothing
    record: str = ""  # the record found, for display


@dataclass(frozen=True, slots=True)
class HealthReport:
    domain: str
    items: tuple[HealthItem, ...]

    @property
    def worst(self) -> CheckStatus:
        return max((item.status for item in self.items), key=_SEVERITY.__getitem__, default=CheckStatus.OK)

    def item(self, name: str) -> HealthItem:
        return next(item for item in self.items if item.name == name)


class DmarcPolicy(StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


def parse_tags(text: str) -> dict[str, str]:
    """`tag=value;` lists as used by DMARC and DKIM records (first occurrence wins, keys lower-cased)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


parse_dmarc = parse_tags


def _unknown(name: str, lookup: Lookup, where: str) -> HealthItem:
    return HealthItem(
        name, CheckStatus.UNKNOWN, f"Could not look up {where}{_detail(lookup.error)}.", "Check again later."
    )


def _provider_label(provider_key: str | None) -> str:
    return provider_key.replace("_", " ") if provider_key else "your mail provider"


def _evaluate_spf(records: DomainRecords, provider_key: str | None) -> HealthItem:
    domain = records.domain
    if records.spf.status is LookupStatus.FAILED:
        return _unknown("SPF", records.spf, f"the TXT records of {domain}")
    wanted = PROVIDER_SPF_INCLUDES.get(provider_key or "", ())
    suggestion = f"v=spf1 include:{wanted[0]} ~all" if wanted else "v=spf1 include:<your provider's SPF> ~all"
    found = _spf_records(records.spf)
    if not found:
        return HealthItem(
            "SPF",
            CheckStatus.PROBLEM,
            f"{domain} has no SPF record, so receivers cannot tell your mail is authorised.",
            f"Add a TXT record at {domain}: {suggestion}",
        )
    if len(found) > 1:
        return HealthItem(
            "SPF",
            CheckStatus.PROBLEM,
            f"{domain} has {len(found)} SPF records; receivers treat that as an error and ignore SPF.",
            "Merge them into a single TXT record starting with v=spf1.",
            record=" | ".join(found),
        )
    text = found[0]
    spf = parse_spf(text)
    if spf.all_qualifier == "+":
        return HealthItem(
            "SPF",
            CheckStatus.PROBLEM,
            "The SPF record ends in +all: it authorises every server on the internet.",
            "Replace +all with ~all (or -all).",
            record=text,
        )
    reached = _spf_reachable(records)
    if wanted and not any(target == w or target.endswith("." + w) for target in reached for w in wanted):
        return HealthItem(
            "SPF",
            CheckStatus.PROBLEM,
            f"The SPF record does not authorise {_provider_label(provider_key)}'s servers, so your mail "
            "may fail SPF.",
            f"Add include:{wanted[0]} before the `all` term.",
            record=text,
        )
    lookups = spf_lookup_count(records)
    if lookups > 10:
        return HealthItem(
            "SPF",
            CheckStatus.PROBLEM,
            f"The SPF record needs {lookups} DNS lookups; more than 10 makes it invalid.",
            "Remove includes you no longer use.",
            record=text,
        )
    if spf.all_qualifier is None and spf.redirect is None:
        return HealthItem(
            "SPF",
            CheckStatus.WARNING,
            "The SPF record has no `all` term, so other senders are not ruled out.",
            "End the record with ~all.",
            record=text,
        )
    if spf.all_qualifier == "?":
        return HealthItem(
            "SPF",
            CheckStatus.WARNING,
            "The SPF record ends in ?all (neutral): it does not rule anyone out.",
            "Use ~all (or -all) instead.",
            record=text,
        )
    return HealthItem("SPF", CheckStatus.OK, "SPF is published and covers your provider.", record=text)


def _evaluate_dkim(records: DomainRecords, provider_key: str | None) -> HealthItem:
    keys = {
        selector: text
        for selector, lookup in records.dkim.items()
        for text in lookup.texts[:1]
        if "p" in parse_tags(text)
    }
    for selector, text in keys.items():
        if parse_tags(text)["p"]:
            return HealthItem(
                "DKIM",
                CheckStatus.OK,
                f"A DKIM key is published at {selector}._domainkey.{records.domain}.",
                record=text,
            )
    how = _DKIM_HOW_TO.get(
        provider_key or "", "Turn on DKIM signing at your mail provider and publish the record it gives you."
    )
    if keys:
        selector = next(iter(keys))
        return HealthItem(
            "DKIM",
            CheckStatus.PROBLEM,
            f"The DKIM key at {selector}._domainkey.{records.domain} is revoked (empty p=).",
            how,
        )
    if records.dkim and all(lk.status is LookupStatus.FAILED for lk in records.dkim.values()):
        return _unknown("DKIM", next(iter(records.dkim.values())), "the DKIM selectors")
    tried = ", ".join(records.dkim) or "none"
    return HealthItem(
        "DKIM",
        CheckStatus.WARNING,
        f"No DKIM key found under the usual selectors ({tried}). If your "
        "provider uses another selector, enter it to check.",
        how,
    )


def _evaluate_dmarc(records: DomainRecords) -> HealthItem:
    domain = records.domain
    where = records.dmarc_name or f"_dmarc.{domain}"
    if records.dmarc.status is LookupStatus.FAILED:
        return _unknown("DMARC", records.dmarc, where)
    found = [t for t in records.dmarc.texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
    fix_none = f'Add a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; rua=mailto:dmarc@{domain}"'
    if not found:
        return HealthItem(
            "DMARC",
            CheckStatus.PROBLEM,
            f"{domain} has no DMARC record; Gmail and Yahoo expect one from domains that send in bulk.",
            fix_none,
        )
    if len(found) > 1:
        return HealthItem(
            "DMARC",
            CheckStatus.PROBLEM,
            f"{where} has {len(found)} DMARC records; receivers ignore them all.",
            "Keep a single v=DMARC1 record.",
            record=" | ".join(found),
        )
    text = found[0]
    tags = parse_dmarc(text)
    try:
        policy = DmarcPolicy(tags.get("p", "").lower())
    except ValueError:
        return HealthItem(
            "DMARC",
            CheckStatus.PROBLEM,
            f"The DMARC record at {where} has no valid policy (p=).",
            "Set p=none, p=quarantine or p=reject.",
            record=text,
        )
    if policy is DmarcPolicy.NONE:
        return HealthItem(
            "DMARC",
            CheckStatus.OK,
            "DMARC is published with policy none (monitoring only), which meets Gmail's and Yahoo's rules.",
            "Once reports show all your mail passes, consider p=quarantine.",
            record=text,
        )
    return HealthItem("DMARC", CheckStatus.OK, f"DMARC is published with policy {policy.value}.", record=text)


def evaluate_domain_health(
    records: DomainRecords, *, provider_key: str | None, provider_managed: bool = False
) -> HealthReport:
    """The checklist for a sending domain. `provider_managed`: a consumer domain (gmail.com, …) whose
    records belong to the provider; there is nothing for the user to fix."""
    if provider_managed:
        item = HealthItem(
            "Domain",
            CheckStatus.OK,
            f"{records.domain} is run by {_provider_label(provider_key)}, which "
            "handles SPF, DKIM and DMARC for it.",
        )
        return HealthReport(records.domain, (item,))
    return HealthReport(
        records.domain,
        (
            _evaluate_spf(records, provider_key),
            _evaluate_dkim(records, provider_key),
            _evaluate_dmarc(records),
        ),
    )


def mx_hosts_in_order(records: Sequence[MxRecord]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.host.lower() for r in sorted(records, key=lambda r: r.preference) if r.host))
