"""Propose server settings from an email address alone (pure; the DNS adapter supplies MX host names).

Well-known consumer domains map straight to their provider. For any other domain the caller looks up the MX
hosts and passes them in: Google-, Microsoft-, Zoho-, … hosted domains get that provider's preset, anything
else gets a guess (smtp.<domain> / imap.<domain>, with mail.<domain> as alternatives) marked as such.
Everything returned is plain editable data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

from cadence.core import providers
from cadence.core.model import AccountSettings, ConnectionSecurity, ProviderLimits, SentFolderKind

__all__ = [
    "PRESETS",
    "AddressError",
    "MailSetup",
    "ProviderFamily",
    "ServerEndpoint",
    "SetupSource",
    "address_domain",
    "known_domain_setup",
    "mx_family",
    "needs_mx_lookup",
    "propose",
    "setup_for_preset",
]

SMTP_STARTTLS = 587
SMTP_TLS = 465
IMAP_TLS = 993


class AddressError(ValueError):
    """The text is not an email address we can configure; `str(error)` says why."""


class SetupSource(StrEnum):
    KNOWN_DOMAIN = "known_domain"  # a consumer domain we know (gmail.com, outlook.com, …)
    MX = "mx"  # a custom domain whose MX hosts belong to a known provider
    GUESS = "guess"  # nothing known: host names guessed from the domain
    CHOSEN = "chosen"  # the user picked the provider from the list


@dataclass(frozen=True, slots=True)
class ServerEndpoint:
    host: str
    port: int
    security: ConnectionSecurity


@dataclass(frozen=True, slots=True)
class MailSetup:
    """A proposal for one mailbox; the user may edit any of it (`dataclasses.replace`)."""

    email: str
    domain: str
    provider_key: str | None  # key for provider limits and behaviours; None when guessed
    provider_name: str
    source: SetupSource
    smtp: ServerEndpoint
    imap: ServerEndpoint
    smtp_alternatives: tuple[ServerEndpoint, ...] = ()
    imap_alternatives: tuple[ServerEndpoint, ...] = ()
    username: str = ""  # login name; the address itself unless a note says otherwise
    sent_folder_kind: SentFolderKind = SentFolderKind.APP_APPENDS
    oauth_available: bool = False
    password_accepted: bool = True  # False: only OAuth works (e.g. Outlook.com)
    needs_app_password: bool = False
    limits: ProviderLimits | None = None
    notes: tuple[str, ...] = ()

    @property
    def guessed(self) -> bool:
        return self.source is SetupSource.GUESS

    @property
    def provider_files_sent(self) -> bool:
        """True when the provider files SMTP-submitted mail in Sent itself: never APPEND a copy."""
        return self.sent_folder_kind is SentFolderKind.PROVIDER_FILES

    def to_settings(self, *, display_name: str = "", base: AccountSettings | None = None) -> AccountSettings:
        """The proposal as account settings; other fields (guardrails, CA file) come from `base`."""
        start = base if base is not None else AccountSettings(email=self.email)
        return replace(
            start,
            email=self.email,
            display_name=display_name or start.display_name,
            smtp_host=self.smtp.host,
            smtp_port=self.smtp.port,
            smtp_security=self.smtp.security,
            imap_host=self.imap.host,
            imap_port=self.imap.port,
            imap_security=self.imap.security,
            provider_key=self.provider_key,
            sent_folder_kind=self.sent_folder_kind,
        )


@dataclass(frozen=True, slots=True)
class _Preset:
    key: str
    name: str
    smtp: ServerEndpoint
    imap: ServerEndpoint
    smtp_alternatives: tuple[ServerEndpoint, ...] = ()
    imap_alternatives: tuple[ServerEndpoint, ...] = ()
    sent_folder_kind: SentFolderKind = SentFolderKind.APP_APPENDS
    oauth_available: bool = False
    password_accepted: bool = True
    needs_app_password: bool = False
    limits: ProviderLimits | None = None
    notes: tuple[str, ...] = ()
    domains: tuple[str, ...] = field(default=())  # consumer domains that map here directly


def _starttls(host: str, port: int = SMTP_STARTTLS) -> ServerEndpoint:
    return ServerEndpoint(host, port, ConnectionSecurity.STARTTLS)


def _tls(host: str, port: int) -> ServerEndpoint:
    return ServerEndpoint(host, port, ConnectionSecurity.TLS)


_GOOGLE_SMTP = _starttls("smtp.gmail.com")
_GOOGLE_IMAP = _tls("imap.gmail.com", IMAP_TLS)
_GOOGLE_NOTE = (
    "Google needs an app password (Google Account → Security → 2-Step Verification → App passwords) "
    "or OAuth; your normal password is refused."
)
_MS365_NOTE = (
    "Microsoft 365 stops accepting passwords for SMTP AUTH in 2026: use OAuth. "
    "SMTP AUTH must also be enabled for this mailbox by your administrator."
)

_PRESET_LIST: tuple[_Preset, ...] = (
    _Preset(
        key="gmail",
        name="Gmail",
        smtp=_GOOGLE_SMTP,
        imap=_GOOGLE_IMAP,
        smtp_alternatives=(_tls("smtp.gmail.com", SMTP_TLS),),
        sent_folder_kind=SentFolderKind.PROVIDER_FILES,
        oauth_available=True,
        needs_app_password=True,
        limits=providers.GMAIL,
        notes=(_GOOGLE_NOTE, "Gmail allows about 500 messages per rolling 24 hours."),
        domains=("gmail.com", "googlemail.com"),
    ),
    _Preset(
        key="google_workspace",
        name="Google Workspace",
        smtp=_GOOGLE_SMTP,
        imap=_GOOGLE_IMAP,
        smtp_alternatives=(_tls("smtp.gmail.com", SMTP_TLS),),
        sent_folder_kind=SentFolderKind.PROVIDER_FILES,
        oauth_available=True,
        needs_app_password=True,
        limits=providers.GOOGLE_WORKSPACE,
        notes=(
            _GOOGLE_NOTE + " Your administrator may have turned app passwords off.",
            "Google Workspace does not sign mail with DKIM until an administrator turns it on "
            "(Admin console → Apps → Google Workspace → Gmail → Authenticate email).",
        ),
    ),
    _Preset(
        key="microsoft365",
        name="Microsoft 365",
        smtp=_starttls("smtp.office365.com"),
        imap=_tls("outlook.office365.com", IMAP_TLS),
        sent_folder_kind=SentFolderKind.PROVIDER_FILES,
        oauth_available=True,
        limits=providers.MICROSOFT_365,
        notes=(_MS365_NOTE,),
    ),
    _Preset(
        key="outlook_com",
        name="Outlook.com",
        smtp=_starttls("smtp-mail.outlook.com"),
        imap=_tls("outlook.office365.com", IMAP_TLS),
        sent_folder_kind=SentFolderKind.PROVIDER_FILES,
        oauth_available=True,
        password_accepted=False,
        notes=("Outlook.com, Hotmail and Live accounts accept only OAuth sign-in for SMTP and IMAP.",),
        domains=(
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "passport.com",
            "outlook.co.uk",
            "hotmail.co.uk",
            "live.co.uk",
            "outlook.fr",
            "hotmail.fr",
            "live.fr",
            "outlook.de",
            "hotmail.de",
            "live.de",
            "outlook.es",
            "hotmail.es",
            "outlook.it",
            "hotmail.it",
            "live.it",
            "outlook.com.au",
            "live.com.au",
            "live.ca",
            "live.nl",
            "outlook.jp",
            "hotmail.co.jp",
        ),
    ),
    _Preset(
        key="yahoo",
        name="Yahoo Mail",
        smtp=_tls("smtp.mail.yahoo.com", SMTP_TLS),
        imap=_tls("imap.mail.yahoo.com", IMAP_TLS),
        smtp_alternatives=(_starttls("smtp.mail.yahoo.com"),),
        needs_app_password=True,
        limits=providers.YAHOO,
        notes=("Yahoo needs an app password (Account security → Generate app password).",),
        domains=(
            "yahoo.com",
            "ymail.com",
            "rocketmail.com",
            "yahoo.co.uk",
            "yahoo.fr",
            "yahoo.de",
            "yahoo.es",
            "yahoo.it",
            "yahoo.ca",
            "yahoo.com.au",
            "yahoo.co.in",
            "yahoo.co.jp",
            "yahoo.com.br",
        ),
    ),
    _Preset(
        key="yahoo",
        name="Yahoo Small Business",
        smtp=_tls("smtp.bizmail.yahoo.com", SMTP_TLS),
        imap=_tls("imap.bizmail.yahoo.com", IMAP_TLS),
        needs_app_password=True,
        limits=providers.YAHOO,
        notes=(
            "Yahoo-hosted domain: check these server names in your Yahoo Small Business mail settings.",
            "Yahoo needs an app password (Account security → Generate app password).",
        ),
    ),
    _Preset(
        key="aol",
        name="AOL Mail",
        smtp=_tls("smtp.aol.com", SMTP_TLS),
        imap=_tls("imap.aol.com", IMAP_TLS),
        smtp_alternatives=(_starttls("smtp.aol.com"),),
        needs_app_password=True,
        limits=providers.AOL,
        notes=("AOL needs an app password (Account security → Generate app password).",),
        domains=("aol.com", "aim.com", "aol.co.uk", "aol.de", "aol.fr"),
    ),
    _Preset(
        key="icloud",
        name="iCloud Mail",
        smtp=_starttls("smtp.mail.me.com"),
        imap=_tls("imap.mail.me.com", IMAP_TLS),
        needs_app_password=True,
        limits=providers.ICLOUD,
        notes=(
            "iCloud needs an app-specific password (appleid.apple.com → Sign-In and Security).",
            "If IMAP refuses your full address, log in with only the part before @ of your iCloud address.",
        ),
        domains=("icloud.com", "me.com", "mac.com"),
    ),
    _Preset(
        key="proton",
        name="Proton Mail (via Proton Mail Bridge)",
        smtp=_starttls("127.0.0.1", 1025),
        imap=_tls("127.0.0.1", 1143),
        # Bridge sends through Proton's servers, which keep the message in Sent themselves.
        sent_folder_kind=SentFolderKind.PROVIDER_FILES,
        limits=providers.PROTON,
        notes=(
            "Proton Mail works only through Proton Mail Bridge (a paid plan), running on this computer.",
            "Use the user name and password that Bridge shows, not your Proton password.",
            "In Bridge's settings set the IMAP connection mode to SSL: Cadence does not use STARTTLS "
            "for IMAP.",
            "Bridge uses its own certificate: export it from Bridge and choose it as the CA file.",
        ),
        domains=("proton.me", "protonmail.com", "protonmail.ch", "pm.me"),
    ),
    _Preset(
        key="gmx",
        name="GMX",
        smtp=_starttls("mail.gmx.net"),
        imap=_tls("imap.gmx.net", IMAP_TLS),
        smtp_alternatives=(_tls("mail.gmx.net", SMTP_TLS),),
        notes=("Turn on IMAP/SMTP access in GMX's settings (E-Mail → POP3/IMAP Abruf) first.",),
        domains=("gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.eu"),
    ),
    _Preset(
        key="gmx",
        name="GMX (international)",
        smtp=_starttls("mail.gmx.com"),
        imap=_tls("imap.gmx.com", IMAP_TLS),
        smtp_alternatives=(_tls("mail.gmx.com", SMTP_TLS),),
        notes=("Turn on IMAP/SMTP access in GMX's settings first.",),
        domains=("gmx.com", "gmx.us", "gmx.co.uk", "gmx.fr"),
    ),
    _Preset(
        key="web.de",
        name="WEB.DE",
        smtp=_starttls("smtp.web.de"),
        imap=_tls("imap.web.de", IMAP_TLS),
        notes=("Turn on IMAP/SMTP access in WEB.DE's settings (E-Mail → POP3/IMAP Abruf) first.",),
        domains=("web.de",),
    ),
    _Preset(
        key="fastmail",
        name="Fastmail",
        smtp=_tls("smtp.fastmail.com", SMTP_TLS),
        imap=_tls("imap.fastmail.com", IMAP_TLS),
        smtp_alternatives=(_starttls("smtp.fastmail.com"),),
        needs_app_password=True,
        notes=("Fastmail needs an app password (Settings → Privacy & Security → App passwords).",),
        domains=(
            "fastmail.com",
            "fastmail.fm",
            "fastmail.net",
            "fastmail.org",
            "fastmail.us",
            "sent.com",
            "messagingengine.com",
        ),
    ),
    _Preset(
        key="zoho",
        name="Zoho Mail",
        smtp=_tls("smtp.zoho.com", SMTP_TLS),
        imap=_tls("imap.zoho.com", IMAP_TLS),
        smtp_alternatives=(_starttls("smtp.zoho.com"),),
        notes=("Turn on IMAP access in Zoho Mail's settings; with two-factor sign-in use an app password.",),
        domains=("zoho.com", "zohomail.com"),
    ),
    _Preset(
        key="zoho",
        name="Zoho Mail (EU)",
        smtp=_tls("smtp.zoho.eu", SMTP_TLS),
        imap=_tls("imap.zoho.eu", IMAP_TLS),
        smtp_alternatives=(_starttls("smtp.zoho.eu"),),
        notes=("Turn on IMAP access in Zoho Mail's settings; with two-factor sign-in use an app password.",),
        domains=("zoho.eu", "zohomail.eu"),
    ),
    _Preset(
        key="godaddy",
        name="GoDaddy Workspace Email",
        smtp=_tls("smtpout.secureserver.net", SMTP_TLS),
        imap=_tls("imap.secureserver.net", IMAP_TLS),
        smtp_alternatives=(_starttls("smtpout.secureserver.net"),),
        limits=providers.GODADDY,
        notes=("GoDaddy's Microsoft 365 mailboxes use the Microsoft 365 settings instead.",),
    ),
    _Preset(
        key="rackspace",
        name="Rackspace Email",
        smtp=_tls("secure.emailsrvr.com", SMTP_TLS),
        imap=_tls("secure.emailsrvr.com", IMAP_TLS),
        smtp_alternatives=(_starttls("secure.emailsrvr.com"),),
        limits=providers.RACKSPACE,
    ),
    _Preset(
        key="privateemail",
        name="Namecheap Private Email",
        smtp=_tls("mail.privateemail.com", SMTP_TLS),
        imap=_tls("mail.privateemail.com", IMAP_TLS),
        smtp_alternatives=(_starttls("mail.privateemail.com"),),
        limits=providers.PRIVATEEMAIL,
    ),
    _Preset(
        key="ionos",
        name="IONOS",
        smtp=_starttls("smtp.ionos.com"),
        imap=_tls("imap.ionos.com", IMAP_TLS),
        smtp_alternatives=(_tls("smtp.ionos.com", SMTP_TLS),),
    ),
    _Preset(
        key="ionos",
        name="IONOS (Germany)",
        smtp=_starttls("smtp.ionos.de"),
        imap=_tls("imap.ionos.de", IMAP_TLS),
        smtp_alternatives=(_tls("smtp.ionos.de", SMTP_TLS),),
    ),
    _Preset(
        key="ionos",
        name="IONOS (United Kingdom)",
        smtp=_starttls("smtp.ionos.co.uk"),
        imap=_tls("imap.ionos.co.uk", IMAP_TLS),
        smtp_alternatives=(_tls("smtp.ionos.co.uk", SMTP_TLS),),
    ),
)

PRESETS: Mapping[str, tuple[str, ...]] = {
    key: tuple(p.name for p in _PRESET_LIST if p.key == key)
    for key in dict.fromkeys(p.key for p in _PRESET_LIST)
}
"""Provider keys with the names of their presets (for a picker; see `setup_for_preset`)."""

_BY_NAME: dict[str, _Preset] = {p.name: p for p in _PRESET_LIST}
_BY_DOMAIN: dict[str, _Preset] = {domain: p for p in _PRESET_LIST for domain in p.domains}


class ProviderFamily(StrEnum):
    """Who runs a domain's inbound mail (from its MX hosts): what per-provider backoff keys on."""

    GOOGLE = "google"
    MICROSOFT = "microsoft"
    YAHOO = "yahoo"
    ICLOUD = "icloud"
    PROTON = "proton"
    ZOHO = "zoho"
    FASTMAIL = "fastmail"
    GODADDY = "godaddy"
    RACKSPACE = "rackspace"
    IONOS = "ionos"
    PRIVATEEMAIL = "privateemail"
    GMX = "gmx"
    WEB_DE = "web.de"
    YANDEX = "yandex"
    MIMECAST = "mimecast"
    PROOFPOINT = "proofpoint"
    BARRACUDA = "barracuda"
    AMAZON_SES = "amazon_ses"


# (host suffix, family); the first match wins, so more specific suffixes come first.
_MX_SUFFIXES: tuple[tuple[str, ProviderFamily], ...] = (
    ("aspmx.l.google.com", ProviderFamily.GOOGLE),
    ("googlemail.com", ProviderFamily.GOOGLE),
    ("google.com", ProviderFamily.GOOGLE),
    ("mail.protection.outlook.com", ProviderFamily.MICROSOFT),
    ("olc.protection.outlook.com", ProviderFamily.MICROSOFT),
    ("outlook.com", ProviderFamily.MICROSOFT),
    ("hotmail.com", ProviderFamily.MICROSOFT),
    ("yahoodns.net", ProviderFamily.YAHOO),
    ("yahoo.com", ProviderFamily.YAHOO),
    ("mail.icloud.com", ProviderFamily.ICLOUD),
    ("icloud.com", ProviderFamily.ICLOUD),
    ("me.com", ProviderFamily.ICLOUD),
    ("protonmail.ch", ProviderFamily.PROTON),
    ("proton.ch", ProviderFamily.PROTON),
    ("zoho.com", ProviderFamily.ZOHO),
    ("zoho.eu", ProviderFamily.ZOHO),
    ("zoho.in", ProviderFamily.ZOHO),
    ("zoho.com.au", ProviderFamily.ZOHO),
    ("zoho.jp", ProviderFamily.ZOHO),
    ("zohomail.com", ProviderFamily.ZOHO),
    ("messagingengine.com", ProviderFamily.FASTMAIL),
    ("fastmail.com", ProviderFamily.FASTMAIL),
    ("secureserver.net", ProviderFamily.GODADDY),
    ("emailsrvr.com", ProviderFamily.RACKSPACE),
    ("ionos.com", ProviderFamily.IONOS),
    ("ionos.de", ProviderFamily.IONOS),
    ("ionos.co.uk", ProviderFamily.IONOS),
    ("ionos.fr", ProviderFamily.IONOS),
    ("ionos.es", ProviderFamily.IONOS),
    ("1and1.com", ProviderFamily.IONOS),
    ("1and1.co.uk", ProviderFamily.IONOS),
    ("kundenserver.de", ProviderFamily.IONOS),
    ("privateemail.com", ProviderFamily.PRIVATEEMAIL),
    ("gmx.net", ProviderFamily.GMX),
    ("gmx.com", ProviderFamily.GMX),
    ("web.de", ProviderFamily.WEB_DE),
    ("yandex.net", ProviderFamily.YANDEX),
    ("yandex.ru", ProviderFamily.YANDEX),
    ("mimecast.com", ProviderFamily.MIMECAST),
    ("mimecast.co.za", ProviderFamily.MIMECAST),
    ("pphosted.com", ProviderFamily.PROOFPOINT),
    ("ppe-hosted.com", ProviderFamily.PROOFPOINT),
    ("barracudanetworks.com", ProviderFamily.BARRACUDA),
    ("amazonaws.com", ProviderFamily.AMAZON_SES),
)

_GATEWAYS = frozenset({ProviderFamily.MIMECAST, ProviderFamily.PROOFPOINT, ProviderFamily.BARRACUDA})


def _normal_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _host_family(host: str) -> tuple[str, ProviderFamily] | None:
    name = _normal_host(host)
    for suffix, family in _MX_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return suffix, family
    return None


def mx_family(mx_hosts: Sequence[str]) -> ProviderFamily | None:
    """The provider behind a domain's MX hosts (given in preference order): the first host we recognise."""
    for host in mx_hosts:
        found = _host_family(host)
        if found is not None:
            return found[1]
    return None


def address_domain(email: str) -> tuple[str, str]:
    """(normalised address, ASCII domain) or AddressError with a sentence for the user."""
    text = email.strip()
    if not text:
        raise AddressError("Enter the email address of the mailbox to connect.")
    try:
        checked = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise AddressError(f"“{text}” is not a valid email address: {error}") from None
    return checked.normalized, checked.ascii_domain.lower()


def _from_preset(
    preset: _Preset, *, email: str, domain: str, source: SetupSource, extra_notes: tuple[str, ...] = ()
) -> MailSetup:
    return MailSetup(
        email=email,
        domain=domain,
        provider_key=preset.key,
        provider_name=preset.name,
        source=source,
        smtp=preset.smtp,
        imap=preset.imap,
        smtp_alternatives=preset.smtp_alternatives,
        imap_alternatives=preset.imap_alternatives,
        username=email,
        sent_folder_kind=preset.sent_folder_kind,
        oauth_available=preset.oauth_available,
        password_accepted=preset.password_accepted,
        needs_app_password=preset.needs_app_password,
        limits=preset.limits,
        notes=(*extra_notes, *preset.notes),
    )


def known_domain_setup(email: str) -> MailSetup | None:
    """The preset for a well-known consumer domain, or None when the MX hosts are needed to decide."""
    address, domain = address_domain(email)
    preset = _BY_DOMAIN.get(domain)
    if preset is None:
        return None
    return _from_preset(preset, email=address, domain=domain, source=SetupSource.KNOWN_DOMAIN)


def setup_for_preset(preset_name: str, email: str) -> MailSetup:
    """The named preset (one of the names in PRESETS) applied to `email`, for a user who picks by hand."""
    address, domain = address_domain(email)
    preset = _BY_NAME.get(preset_name)
    if preset is None:
        raise KeyError(f"no mail provider preset named {preset_name!r}")
    return _from_preset(preset, email=address, domain=domain, source=SetupSource.CHOSEN)


def needs_mx_lookup(email: str) -> bool:
    return known_domain_setup(email) is None


def _preset_for_mx(suffix: str, family: ProviderFamily) -> _Preset | None:
    match family:
        case ProviderFamily.GOOGLE:
            return _BY_NAME["Google Workspace"]
        case ProviderFamily.MICROSOFT:
            return _BY_NAME["Microsoft 365"]
        case ProviderFamily.YAHOO:
            return _BY_NAME["Yahoo Small Business"]
        case ProviderFamily.ICLOUD:
            return _BY_NAME["iCloud Mail"]
        case ProviderFamily.PROTON:
            return _BY_NAME["Proton Mail (via Proton Mail Bridge)"]
        case ProviderFamily.FASTMAIL:
            return _BY_NAME["Fastmail"]
        case ProviderFamily.GODADDY:
            return _BY_NAME["GoDaddy Workspace Email"]
        case ProviderFamily.RACKSPACE:
            return _BY_NAME["Rackspace Email"]
        case ProviderFamily.PRIVATEEMAIL:
            return _BY_NAME["Namecheap Private Email"]
        case ProviderFamily.ZOHO:
            return _zoho_organisation_preset(suffix)
        case ProviderFamily.IONOS:
            if suffix in {"ionos.de", "kundenserver.de"}:
                return _BY_NAME["IONOS (Germany)"]
            if suffix in {"ionos.co.uk", "1and1.co.uk"}:
                return _BY_NAME["IONOS (United Kingdom)"]
            return _BY_NAME["IONOS"]
        case _:
            return None


def _zoho_organisation_preset(suffix: str) -> _Preset:
    # Mailboxes on a custom domain are "organisation" accounts, served by the *pro hosts of their region.
    region = "com" if suffix in {"zoho.com", "zohomail.com"} else suffix.removeprefix("zoho.")
    base = _BY_NAME["Zoho Mail"]
    return replace(
        base,
        name=f"Zoho Mail ({region})" if region != "com" else "Zoho Mail",
        smtp=_tls(f"smtppro.zoho.{region}", SMTP_TLS),
        imap=_tls(f"imappro.zoho.{region}", IMAP_TLS),
        smtp_alternatives=(_starttls(f"smtppro.zoho.{region}"),),
        domains=(),
    )


def _guess(email: str, domain: str, *, gateway: ProviderFamily | None, had_mx: bool) -> MailSetup:
    notes = [
        "These server names are a guess from your domain: check them with your email provider or "
        "administrator before connecting."
    ]
    if gateway is not None:
        notes.append(
            f"Your domain's mail first passes a filtering service ({gateway.value}); the mailbox itself is "
            "hosted elsewhere, so ask your administrator for the SMTP and IMAP servers."
        )
    elif not had_mx:
        notes.append("No mail servers (MX) were found for this domain.")
    return MailSetup(
        email=email,
        domain=domain,
        provider_key=None,
        provider_name="Your mail server",
        source=SetupSource.GUESS,
        smtp=_starttls(f"smtp.{domain}"),
        imap=_tls(f"imap.{domain}", IMAP_TLS),
        smtp_alternatives=(
            _starttls(f"mail.{domain}"),
            _tls(f"smtp.{domain}", SMTP_TLS),
            _tls(f"mail.{domain}", SMTP_TLS),
        ),
        imap_alternatives=(_tls(f"mail.{domain}", IMAP_TLS),),
        username=email,
        notes=tuple(notes),
    )


def propose(email: str, *, mx_hosts: Sequence[str] = ()) -> MailSetup:
    """Best proposal for `email`; `mx_hosts` (preference order) are used when the domain is not well known.

    Raises AddressError when `email` is not an address.
    """
    known = known_domain_setup(email)
    if known is not None:
        return known
    address, domain = address_domain(email)
    for host in mx_hosts:
        found = _host_family(host)
        if found is None:
            continue
        suffix, family = found
        preset = _preset_for_mx(suffix, family)
        if preset is None:
            return _guess(address, domain, gateway=family if family in _GATEWAYS else None, had_mx=True)
        return _from_preset(
            preset,
            email=address,
            domain=domain,
            source=SetupSource.MX,
            extra_notes=(f"{domain} receives its mail at {preset.name} ({_normal_host(host)}).",),
        )
    return _guess(address, domain, gateway=None, had_mx=bool(mx_hosts))
