"""Proposing SMTP/IMAP settings from an address (and, for custom domains, its MX hosts)."""

from __future__ import annotations

import dataclasses

import pytest

from cadence.core.autoconfig import (
    PRESETS,
    AddressError,
    MailSetup,
    ProviderFamily,
    ServerEndpoint,
    SetupSource,
    address_domain,
    known_domain_setup,
    mx_family,
    needs_mx_lookup,
    propose,
    setup_for_preset,
)
from cadence.core.model import AccountSettings, ConnectionSecurity, Guardrails, SentFolderKind

STARTTLS = ConnectionSecurity.STARTTLS
TLS = ConnectionSecurity.TLS


@pytest.mark.parametrize(
    ("email", "key", "smtp", "imap"),
    [
        ("ann@gmail.com", "gmail", ("smtp.gmail.com", 587, STARTTLS), ("imap.gmail.com", 993, TLS)),
        ("ann@googlemail.com", "gmail", ("smtp.gmail.com", 587, STARTTLS), ("imap.gmail.com", 993, TLS)),
        ("ann@hotmail.co.uk", "outlook_com", ("smtp-mail.outlook.com", 587, STARTTLS),
         ("outlook.office365.com", 993, TLS)),
        ("ann@yahoo.com", "yahoo", ("smtp.mail.yahoo.com", 465, TLS), ("imap.mail.yahoo.com", 993, TLS)),
        ("ann@aol.com", "aol", ("smtp.aol.com", 465, TLS), ("imap.aol.com", 993, TLS)),
        ("ann@me.com", "icloud", ("smtp.mail.me.com", 587, STARTTLS), ("imap.mail.me.com", 993, TLS)),
        ("ann@proton.me", "proton", ("127.0.0.1", 1025, STARTTLS), ("127.0.0.1", 1143, TLS)),
        ("ann@gmx.de", "gmx", ("mail.gmx.net", 587, STARTTLS), ("imap.gmx.net", 993, TLS)),
        ("ann@gmx.com", "gmx", ("mail.gmx.com", 587, STARTTLS), ("imap.gmx.com", 993, TLS)),
        ("ann@web.de", "web.de", ("smtp.web.de", 587, STARTTLS), ("imap.web.de", 993, TLS)),
        ("ann@fastmail.com", "fastmail", ("smtp.fastmail.com", 465, TLS), ("imap.fastmail.com", 993, TLS)),
        ("ann@zoho.com", "zoho", ("smtp.zoho.com", 465, TLS), ("imap.zoho.com", 993, TLS)),
    ],
)
def test_consumer_domains_map_directly(
    email: str, key: str, smtp: tuple[str, int, ConnectionSecurity], imap: tuple[str, int, ConnectionSecurity]
) -> None:
    setup = propose(email)
    assert setup.provider_key == key
    assert setup.source is SetupSource.KNOWN_DOMAIN
    assert setup.smtp == ServerEndpoint(*smtp)
    assert setup.imap == ServerEndpoint(*imap)
    assert not needs_mx_lookup(email)
    assert not setup.guessed


def test_gmail_and_microsoft_file_sent_mail_themselves_others_do_not() -> None:
    assert propose("a@gmail.com").provider_files_sent
    assert propose("a@outlook.com").provider_files_sent
    microsoft_hosted = propose("a@corp.example", mx_hosts=["corp-example.mail.protection.outlook.com"])
    assert microsoft_hosted.provider_files_sent
    assert propose("a@corp.example", mx_hosts=["aspmx.l.google.com"]).provider_files_sent
    for email in ("a@yahoo.com", "a@icloud.com", "a@gmx.net", "a@fastmail.com", "a@zoho.com"):
        assert propose(email).sent_folder_kind is SentFolderKind.APP_APPENDS, email


def test_notes_explain_authentication() -> None:
    gmail = propose("a@gmail.com")
    assert any("app password" in note and "OAuth" in note for note in gmail.notes)
    assert gmail.needs_app_password and gmail.oauth_available
    m365 = propose("a@corp.example", mx_hosts=["corp-example.mail.protection.outlook.com."])
    assert m365.provider_key == "microsoft365"
    assert any("2026" in note and "OAuth" in note for note in m365.notes)
    outlook = propose("a@live.com")
    assert not outlook.password_accepted
    proton = propose("a@pm.me")
    assert any("Bridge" in note for note in proton.notes)
    assert any("SSL" in note for note in proton.notes)


@pytest.mark.parametrize(
    ("mx_hosts", "key", "smtp_host"),
    [
        (["aspmx.l.google.com.", "alt1.aspmx.l.google.com."], "google_workspace", "smtp.gmail.com"),
        (["smtp.google.com"], "google_workspace", "smtp.gmail.com"),
        (["aspmx2.googlemail.com"], "google_workspace", "smtp.gmail.com"),
        (["acme-io.mail.protection.outlook.com"], "microsoft365", "smtp.office365.com"),
        (["mx.zoho.com", "mx2.zoho.com"], "zoho", "smtppro.zoho.com"),
        (["mx.zoho.eu"], "zoho", "smtppro.zoho.eu"),
        (["in1-smtp.messagingengine.com"], "fastmail", "smtp.fastmail.com"),
        (["smtp.secureserver.net", "mailstore1.secureserver.net"], "godaddy", "smtpout.secureserver.net"),
        (["mx1.emailsrvr.com"], "rackspace", "secure.emailsrvr.com"),
        (["mail.protonmail.ch", "mailsec.protonmail.ch"], "proton", "127.0.0.1"),
        (["mx01.mail.icloud.com"], "icloud", "smtp.mail.me.com"),
        (["mx-biz.mail.am0.yahoodns.net"], "yahoo", "smtp.bizmail.yahoo.com"),
        (["mx00.ionos.com"], "ionos", "smtp.ionos.com"),
        (["mx00.ionos.de"], "ionos", "smtp.ionos.de"),
        (["mx01.kundenserver.de"], "ionos", "smtp.ionos.de"),
        (["mx1.privateemail.com"], "privateemail", "mail.privateemail.com"),
    ],
)
def test_custom_domain_mapped_by_mx(mx_hosts: list[str], key: str, smtp_host: str) -> None:
    assert needs_mx_lookup("sam@acme.io")
    setup = propose("sam@acme.io", mx_hosts=mx_hosts)
    assert setup.provider_key == key
    assert setup.source is SetupSource.MX
    assert setup.smtp.host == smtp_host
    assert setup.domain == "acme.io"
    assert setup.notes[0].startswith("acme.io receives its mail at")


def test_unknown_mx_gives_a_marked_guess_with_alternatives() -> None:
    setup = propose("sam@acme.io", mx_hosts=["mx.acme-hosting.net"])
    assert setup.guessed and setup.provider_key is None
    assert setup.smtp == ServerEndpoint("smtp.acme.io", 587, STARTTLS)
    assert setup.imap == ServerEndpoint("imap.acme.io", 993, TLS)
    assert ServerEndpoint("mail.acme.io", 587, STARTTLS) in setup.smtp_alternatives
    assert ServerEndpoint("smtp.acme.io", 465, TLS) in setup.smtp_alternatives
    assert setup.imap_alternatives == (ServerEndpoint("mail.acme.io", 993, TLS),)
    assert "guess" in setup.notes[0]


def test_no_mx_guess_says_so() -> None:
    setup = propose("sam@acme.io")
    assert setup.guessed
    assert any("No mail servers" in note for note in setup.notes)


def test_filtering_gateway_is_not_mistaken_for_the_mailbox_host() -> None:
    setup = propose("sam@bank.example", mx_hosts=["eu-smtp-inbound-1.mimecast.com"])
    assert setup.guessed
    assert any("mimecast" in note for note in setup.notes)
    # ...but for backoff the family is known
    assert mx_family(["eu-smtp-inbound-1.mimecast.com"]) is ProviderFamily.MIMECAST


def test_first_recognised_mx_in_preference_order_wins() -> None:
    hosts = ["mx.unknown-filter.example", "aspmx.l.google.com", "acme.mail.protection.outlook.com"]
    assert propose("a@acme.io", mx_hosts=hosts).provider_key == "google_workspace"
    assert mx_family(hosts) is ProviderFamily.GOOGLE


@pytest.mark.parametrize(
    ("hosts", "family"),
    [
        (["gmail-smtp-in.l.google.com."], ProviderFamily.GOOGLE),
        (["hotmail-com.olc.protection.outlook.com"], ProviderFamily.MICROSOFT),
        (["mta5.am0.yahoodns.net"], ProviderFamily.YAHOO),
        (["mx0a-001.pphosted.com"], ProviderFamily.PROOFPOINT),
        (["MX.ZOHO.COM"], ProviderFamily.ZOHO),
        (["notgoogle.com"], None),  # a suffix must match at a label boundary
        (["evilgoogle.com.attacker.example"], None),
        ([], None),
    ],
)
def test_mx_family(hosts: list[str], family: ProviderFamily | None) -> None:
    assert mx_family(hosts) is family


def test_address_is_normalised_and_idn_domains_become_ascii() -> None:
    assert address_domain("  Jörg@Exämple.COM ") == ("Jörg@exämple.com", "xn--exmple-cua.com")
    setup = propose("Ann@GMAIL.com")
    assert setup.email == "Ann@gmail.com" and setup.username == "Ann@gmail.com"
    assert propose("jörg@exämple.com").smtp.host == "smtp.xn--exmple-cua.com"


@pytest.mark.parametrize("bad", ["", "   ", "no-at-sign", "a@", "@example.com", "a b@example.com", "a@b@c"])
def test_bad_addresses_give_a_sentence_not_a_crash(bad: str) -> None:
    with pytest.raises(AddressError) as caught:
        propose(bad)
    assert str(caught.value)
    with pytest.raises(AddressError):
        known_domain_setup(bad)


def test_test_domains_are_accepted_for_local_servers() -> None:
    assert propose("alice@example.test").smtp.host == "smtp.example.test"


def test_everything_is_editable_data_and_becomes_account_settings() -> None:
    setup = propose("a@gmail.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.smtp = ServerEndpoint("x", 1, TLS)  # type: ignore[misc]
    edited = dataclasses.replace(setup, smtp=dataclasses.replace(setup.smtp, port=465, security=TLS))
    base = AccountSettings(email="old@x.example", display_name="Ann", guardrails=Guardrails(daily_cap=7))
    settings = edited.to_settings(base=base)
    assert settings.email == "a@gmail.com"
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("smtp.gmail.com", 465, TLS)
    assert (settings.imap_host, settings.imap_port) == ("imap.gmail.com", 993)
    assert settings.provider_key == "gmail"
    assert settings.sent_folder_kind is SentFolderKind.PROVIDER_FILES
    assert settings.display_name == "Ann" and settings.guardrails.daily_cap == 7
    assert propose("a@acme.io").to_settings(display_name="Bo").display_name == "Bo"


def test_limits_follow_the_provider() -> None:
    assert propose("a@gmail.com").limits is not None
    gmail_limits = propose("a@gmail.com").limits
    assert gmail_limits is not None and gmail_limits.per_day == 500
    workspace = propose("a@acme.io", mx_hosts=["aspmx.l.google.com"]).limits
    assert workspace is not None and workspace.per_day == 2000
    yahoo = propose("a@yahoo.com").limits
    assert yahoo is not None and (yahoo.per_day, yahoo.per_hour) == (500, 100)
    assert propose("a@acme.io").limits is None


def test_presets_can_be_picked_by_hand() -> None:
    assert "Microsoft 365" in PRESETS["microsoft365"]
    every_name = [name for names in PRESETS.values() for name in names]
    assert len(every_name) == len(set(every_name))
    for name in every_name:
        setup = setup_for_preset(name, "a@acme.io")
        assert isinstance(setup, MailSetup) and setup.source is SetupSource.CHOSEN
        assert setup.smtp.port in {465, 587, 1025} and setup.imap.security is TLS
    with pytest.raises(KeyError, match="no mail provider preset"):
        setup_for_preset("Nope Mail", "a@acme.io")
