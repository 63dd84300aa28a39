"""Sending limits of the common submission providers, keyed by SMTP host.

The figures are the providers' published limits (see the mail-facts guide). Cadence never plans to the
limit itself: `usable_limits` keeps a share free for the mail the user writes by hand.
"""

from __future__ import annotations

import math

from cadence.core.model import ProviderLimits

GMAIL = ProviderLimits("Gmail", per_day=500)
GOOGLE_WORKSPACE = ProviderLimits("Google Workspace", per_day=2000)
MICROSOFT_365 = ProviderLimits("Microsoft 365", per_day=10_000, per_minute=30)
YAHOO = ProviderLimits("Yahoo", per_day=500, per_hour=100)
ICLOUD = ProviderLimits("iCloud", per_day=1000)
PROTON = ProviderLimits("Proton", per_day=150)
AOL = ProviderLimits("AOL", per_hour=100)
GODADDY = ProviderLimits("GoDaddy", per_day=500, per_hour=300, per_minute=200)
RACKSPACE = ProviderLimits("Rackspace", per_day=10_000, per_minute=30)
PRIVATEEMAIL = ProviderLimits("PrivateEmail", per_hour=1500)
MASS_MAIL = ProviderLimits("Mass-mail service", per_day=2500, per_hour=500)

PRESETS_BY_HOST: dict[str, ProviderLimits] = {
    "smtp.gmail.com": GMAIL,
    "smtp.googlemail.com": GMAIL,
    "smtp.office365.com": MICROSOFT_365,
    "smtp-mail.outlook.com": MICROSOFT_365,
    "smtp.mail.yahoo.com": YAHOO,
    "smtp.mail.me.com": ICLOUD,
    "smtp.protonmail.ch": PROTON,
    "smtp.aol.com": AOL,
    "smtpout.secureserver.net": GODADDY,
    "secure.emailsrvr.com": RACKSPACE,
    "smtp.emailsrvr.com": RACKSPACE,
    "mail.privateemail.com": PRIVATEEMAIL,
    "smtp.sendgrid.net": MASS_MAIL,
    "smtp.mailgun.org": MASS_MAIL,
    "smtp.eu.mailgun.org": MASS_MAIL,
    "smtp.postmarkapp.com": MASS_MAIL,
    "smtp-relay.brevo.com": MASS_MAIL,
    "smtp-relay.sendinblue.com": MASS_MAIL,
    "smtp.sparkpostmail.com": MASS_MAIL,
    "smtp.mandrillapp.com": MASS_MAIL,
    "smtp.mailjet.com": MASS_MAIL,
    "in-v3.mailjet.com": MASS_MAIL,
}

# Hosts named per region or per customer: matched by suffix.
_PRESETS_BY_SUFFIX: tuple[tuple[str, ProviderLimits], ...] = (
    (".amazonaws.com", MASS_MAIL),  # email-smtp.<region>.amazonaws.com (Amazon SES)
    (".sparkpostmail.com", MASS_MAIL),
    (".mailgun.org", MASS_MAIL),
)


def provider_for_host(host: str | None, *, workspace: bool = False) -> ProviderLimits | None:
    """The preset for an SMTP host, or None for a host Cadence has no figures for.

    `workspace`: the Gmail host serves both personal Gmail and Google Workspace; Workspace accounts
    have the higher limit, which only applies when the account is known to be Workspace.
    """
    if not host:
        return None
    key = host.strip().rstrip(".").lower()
    preset = PRESETS_BY_HOST.get(key)
    if preset is None:
        preset = next((limits for suffix, limits in _PRESETS_BY_SUFFIX if key.endswith(suffix)), None)
    if preset is GMAIL and workspace:
        return GOOGLE_WORKSPACE
    return preset


def usable_limits(limits: ProviderLimits, *, manual_mail_buffer: float) -> ProviderLimits:
    """The share of each provider limit Cadence may use; the rest stays free for the user's own mail."""
    if not 0.0 <= manual_mail_buffer < 1.0:
        raise ValueError(f"manual mail buffer must be in [0, 1), got {manual_mail_buffer}")

    def share(limit: int | None) -> int | None:
        return None if limit is None else math.floor(limit * (1.0 - manual_mail_buffer) + 1e-9)

    return ProviderLimits(
        limits.name,
        per_day=share(limits.per_day),
        per_hour=share(limits.per_hour),
        per_minute=share(limits.per_minute),
    )
