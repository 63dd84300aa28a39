"""Pure judging of DNS facts: recipient-domain deliverability and the sending-domain checklist."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cadence.core.autoconfig import ProviderFamily
from cadence.core.domain_health import (
    CheckStatus,
    Deliverability,
    DomainRecords,
    Lookup,
    LookupStatus,
    MxRecord,
    dkim_selectors_to_try,
    dmarc_candidates,
    evaluate_domain_health,
    judge_recipient_domain,
    parse_spf,
    parse_tags,
    spf_lookup_count,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FOUND = LookupStatus.FOUND
NONE = Lookup(LookupStatus.NO_RECORDS)


def mx(*records: tuple[int, str]) -> Lookup:
    return Lookup(FOUND, mx=tuple(MxRecord(p, h) for p, h in records))


def txt(*texts: str) -> Lookup:
    return Lookup(FOUND, texts=texts)


# --- recipient domains ------------------------------------------------------------------------------------


def test_mx_sorted_by_preference_gives_provider() -> None:
    check = judge_recipient_domain(
        "acme.test", mx=mx((20, "backup.example.net"), (5, "ASPMX.L.GOOGLE.COM")), addresses=None, now=NOW
    )
    assert check.deliverability is Deliverability.DELIVERABLE
    assert check.mx_hosts == ("aspmx.l.google.com", "backup.example.net")
    assert check.provider is ProviderFamily.GOOGLE
    assert check.checked_at == NOW


def test_null_mx_alone_is_undeliverable_but_mixed_with_real_hosts_is_not() -> None:
    only_null = judge_recipient_domain("a.test", mx=mx((0, "")), addresses=None, now=NOW)
    assert only_null.undeliverable and "RFC 7505" in only_null.reason
    mixed = judge_recipient_domain("a.test", mx=mx((0, ""), (10, "mx.a.test")), addresses=None, now=NOW)
    assert mixed.deliverability is Deliverability.DELIVERABLE and mixed.mx_hosts == ("mx.a.test",)


@pytest.mark.parametrize(
    ("mx_lookup", "addresses", "expected"),
    [
        (Lookup(LookupStatus.NO_DOMAIN), None, Deliverability.UNDELIVERABLE),
        (Lookup(LookupStatus.FAILED, error="timed out"), None, Deliverability.UNKNOWN),
        (NONE, txt("192.0.2.1"), Deliverability.DELIVERABLE),
        (NONE, NONE, Deliverability.UNDELIVERABLE),
        (NONE, Lookup(LookupStatus.NO_DOMAIN), Deliverability.UNDELIVERABLE),
        (NONE, Lookup(LookupStatus.FAILED), Deliverability.UNKNOWN),
        (NONE, None, Deliverability.UNKNOWN),
    ],
)
def test_deliverability_table(mx_lookup: Lookup, addresses: Lookup | None, expected: Deliverability) -> None:
    check = judge_recipient_domain("a.test", mx=mx_lookup, addresses=addresses, now=NOW)
    assert check.deliverability is expected
    assert check.reason.startswith("a.test") or check.reason.startswith("DNS did not answer")
    assert check.undeliverable == (expected is Deliverability.UNDELIVERABLE)


# --- parsing ----------------------------------------------------------------------------------------------


def test_parse_spf_terms_and_lookup_cost() -> None:
    spf = parse_spf(
        "v=spf1 ip4:192.0.2.0/24 a mx/24 include:_spf.google.com INCLUDE:Other.test. ?exists:x ~all"
    )
    assert spf.includes == ("_spf.google.com", "other.test")
    assert spf.all_qualifier == "~"
    assert spf.lookup_terms == 5  # a, mx, two includes, exists
    redirected = parse_spf("v=spf1 redirect=_spf.example.test")
    assert redirected.redirect == "_spf.example.test" and redirected.all_qualifier is None
    assert parse_spf("v=spf1 -all").all_qualifier == "-"
    assert parse_spf("v=spf1 all").all_qualifier == "+"


def test_parse_tags() -> None:
    assert parse_tags("v=DMARC1; P=Reject ; rua=mailto:a@b.test; p=none") == {
        "v": "DMARC1", "p": "Reject", "rua": "mailto:a@b.test"
    }
    assert parse_tags("v=DKIM1; k=rsa; p=") == {"v": "DKIM1", "k": "rsa", "p": ""}


def test_dmarc_candidates_walk_to_the_organisational_domain() -> None:
    assert dmarc_candidates("a.b.example.com") == (
        "_dmarc.a.b.example.com", "_dmarc.b.example.com", "_dmarc.example.com"
    )
    assert dmarc_candidates("example.com.") == ("_dmarc.example.com",)


def test_dkim_selectors_provider_first_then_user_then_common_without_duplicates() -> None:
    selectors = dkim_selectors_to_try("microsoft365", extra=[" Sales ", "selector1"])
    assert selectors[:3] == ("selector1", "selector2", "sales")
    assert len(selectors) == len(set(selectors))
    assert {"default", "k1", "s1", "s2", "google", "dkim", "mail"} <= set(selectors)
    assert dkim_selectors_to_try(None)[0] == "default"


# --- the checklist ----------------------------------------------------------------------------------------


def records(
    spf: Lookup = NONE,
    *,
    children: dict[str, Lookup] | None = None,
    dmarc: Lookup = NONE,
    dkim: dict[str, Lookup] | None = None,
) -> DomainRecords:
    return DomainRecords(
        domain="acme.test", spf=spf, spf_children=children or {}, dmarc=dmarc, dmarc_name="_dmarc.acme.test",
        dkim=dkim or {},
    )


GOOD_DKIM = {"selector1": txt("v=DKIM1; k=rsa; p=MIGf"), "default": Lookup(LookupStatus.NO_DOMAIN)}


def test_all_good() -> None:
    report = evaluate_domain_health(
        records(txt("v=spf1 include:spf.protection.outlook.com -all"), dmarc=txt("v=DMARC1; p=reject"),
                dkim=GOOD_DKIM),
        provider_key="microsoft365",
    )
    assert report.worst is CheckStatus.OK
    assert all(item.fix == "" for item in report.items)


def test_provider_include_found_through_a_nested_include() -> None:
    nested = records(
        txt("v=spf1 include:_spf.acme.test ~all"),
        children={"_spf.acme.test": txt("v=spf1 include:_spf.google.com ~all")},
    )
    nested_spf = evaluate_domain_health(nested, provider_key="google_workspace").item("SPF")
    assert nested_spf.status is CheckStatus.OK
    missing = records(
        txt("v=spf1 include:_spf.acme.test ~all"), children={"_spf.acme.test": txt("v=spf1 -all")}
    )
    spf = evaluate_domain_health(missing, provider_key="google_workspace").item("SPF")
    assert spf.status is CheckStatus.PROBLEM and "include:_spf.google.com" in spf.fix


def test_too_many_spf_lookups_is_a_problem() -> None:
    many = " ".join(f"include:s{i}.test" for i in range(9))
    tree = records(
        txt(f"v=spf1 {many} include:_spf.google.com ~all"),
        children={f"s{i}.test": txt("v=spf1 a mx -all") for i in range(9)},
    )
    assert spf_lookup_count(tree) == 10 + 18
    spf = evaluate_domain_health(tree, provider_key="google_workspace").item("SPF")
    assert spf.status is CheckStatus.PROBLEM and "28 DNS lookups" in spf.summary


def test_spf_without_all_is_a_warning_and_non_spf_txt_is_ignored() -> None:
    report = evaluate_domain_health(
        records(txt("v=spf10 nonsense", "v=spf1 include:_spf.google.com")), provider_key="google_workspace"
    )
    assert report.item("SPF").status is CheckStatus.WARNING


def test_unknowns_when_dns_failed() -> None:
    failed = Lookup(LookupStatus.FAILED, error="timed out")
    report = evaluate_domain_health(
        records(failed, dmarc=failed, dkim={"google": failed}), provider_key="google_workspace"
    )
    assert [i.status for i in report.items] == [CheckStatus.UNKNOWN] * 3
    assert report.worst is CheckStatus.UNKNOWN
    assert "timed out" in report.item("SPF").summary


def test_dmarc_policy_none_is_fine_but_suggests_the_next_step() -> None:
    dmarc = evaluate_domain_health(records(dmarc=txt("v=DMARC1;p=none")), provider_key=None).item("DMARC")
    assert dmarc.status is CheckStatus.OK and "quarantine" in dmarc.fix


def test_microsoft_dkim_fix_names_the_two_cnames() -> None:
    dkim = evaluate_domain_health(records(), provider_key="microsoft365").item("DKIM")
    assert dkim.status is CheckStatus.WARNING
    assert "selector1._domainkey" in dkim.fix and "selector2._domainkey" in dkim.fix


def test_provider_managed_domain_has_nothing_to_fix() -> None:
    report = evaluate_domain_health(records(), provider_key="gmail", provider_managed=True)
    assert len(report.items) == 1 and report.worst is CheckStatus.OK
