"""Connecting a mailbox: the runtime's account-setup methods over injected collaborators.

`AccountSetupService` proposes server settings for an address (well-known domain, else the domain's MX
hosts, else a guess that says so), runs the step-by-step connection test, runs an OAuth browser sign-in
and keeps its refresh token in the keyring only, removes an account together with its secrets, and checks
the sending domain's SPF / DKIM / DMARC. Everything with I/O is passed in (the DNS resolver's `mx_hosts`,
a `ConnectionProbe`, the keyring store, the sign-in flow), so this module stays free of I/O libraries.

The real runtime gets the five RuntimeApi methods by inheriting `AccountSetupMethods` and setting
`self.account_setup`; `AccountSetupFactory` lets the composition root (app.py) supply the adapters while
the runtime supplies its store and database worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from cadence.core import views as v
from cadence.core.autoconfig import (
    AddressError,
    MailSetup,
    ServerEndpoint,
    SetupSource,
    address_domain,
    known_domain_setup,
    propose,
)
from cadence.core.connection_advice import TestCredentials, TokenProvider
from cadence.core.domain_health import CheckStatus, DnsLookupError, HealthReport
from cadence.core.model import Account, AccountSettings, ConnectionSecurity
from cadence.core.oauth import (
    ENDPOINTS,
    AccessToken,
    OAuthError,
    OAuthProvider,
    TokenGrant,
    provider_for_key,
    provider_for_method,
)
from cadence.core.ports import (
    AccountSecretStore,
    Clock,
    RecordNotFound,
    SecretKind,
    SecretStoreError,
    SystemClock,
    UserFacingError,
)
from cadence.services.connection_test import (
    DEFAULT_STEP_TIMEOUT_S,
    ConnectionProbe,
    StepResult,
    iter_connection_test,
)
from cadence.services.dbworker import DbWorker

__all__ = [
    "MX_LOOKUP_TIMEOUT_S",
    "AccountRows",
    "AccountSetupFactory",
    "AccountSetupMethods",
    "AccountSetupService",
    "HealthLookup",
    "MxLookup",
    "SignInFlow",
    "SignInOutcome",
    "TokenSourceFactory",
    "proposal_view",
    "settings_from_view",
    "step_view",
]

log = logging.getLogger(__name__)

MX_LOOKUP_TIMEOUT_S = 8.0

MxLookup = Callable[[str], Awaitable[Sequence[str]]]
"""domain → MX hosts in preference order (DnsResolver.mx_hosts); may raise DnsLookupError."""


class HealthLookup(Protocol):
    """DnsResolver.sending_domain_health."""

    def __call__(
        self, email_or_domain: str, *, provider_key: str | None = None
    ) -> Awaitable[HealthReport]: ...


class SignInOutcome(Protocol):
    """What a browser sign-in gives back (adapters.oauth.SignInResult)."""

    @property
    def username(self) -> str: ...

    @property
    def grant(self) -> TokenGrant: ...


SignInFlow = Callable[[OAuthProvider, str], Awaitable[SignInOutcome]]
"""(provider, address) → the finished sign-in; raises OAuthError. Runs the browser flow off the loop."""

TokenSourceFactory = Callable[[AccountSettings], TokenProvider]
"""An OAuth account's access-token source (adapters.oauth.OAuthTokenSource over the keyring)."""


class AccountRows(Protocol):
    """The store's account rows (SqliteStore); called on the database worker only."""

    def get_account(self, account_id: int) -> Account: ...

    def delete_account(self, account_id: int) -> Account: ...


class AccountSetupFactory(Protocol):
    """`functools.partial(AccountSetupService, secrets=…, mx_hosts=…, probe=…)`: the runtime adds the rest."""

    def __call__(self, *, store: AccountRows, db: DbWorker) -> AccountSetupService: ...


# --- view conversions ------------------------------------------------------------------------------------


def _tls_mode(security: ConnectionSecurity) -> v.TlsMode:
    return v.TlsMode.IMPLICIT if security is ConnectionSecurity.TLS else v.TlsMode.STARTTLS


def _choice(endpoint: ServerEndpoint) -> v.ServerChoice:
    return v.ServerChoice(endpoint.host, endpoint.port, _tls_mode(endpoint.security))


def _headline(setup: MailSetup, oauth: OAuthProvider | None) -> str:
    name = setup.provider_name
    if setup.source is SetupSource.GUESS:
        return "Guessed from your domain: please check the server names with your provider or administrator."
    if setup.provider_key in {"gmail", "google_workspace"}:
        return f"{name}: use an app password or sign in with Google."
    if setup.provider_key == "microsoft365":
        return f"{name}: sign in with Microsoft; passwords stop working for SMTP in 2026."
    if oauth is OAuthProvider.MICROSOFT and not setup.password_accepted:
        return f"{name}: sign in with Microsoft (passwords are refused)."
    if setup.needs_app_password:
        return f"{name}: use an app password, not your normal password."
    if setup.source is SetupSource.MX:
        return f"{name}: found from your domain's mail servers."
    return f"{name}: settings filled in."


def proposal_view(setup: MailSetup) -> v.AccountProposal:
    oauth = provider_for_key(setup.provider_key) if setup.oauth_available else None
    limits = setup.limits
    limit_text = ""
    if limits is not None and limits.per_day:
        limit_text = f"{limits.name} allows about {limits.per_day:,} messages per day"
        if limits.per_hour:
            limit_text += f" and {limits.per_hour:,} per hour"
        limit_text += "; Cadence stays well below that."
    return v.AccountProposal(
        email=setup.email,
        provider_name=setup.provider_name,
        provider_key=setup.provider_key,
        smtp=_choice(setup.smtp),
        imap=_choice(setup.imap),
        smtp_alternatives=tuple(_choice(e) for e in setup.smtp_alternatives),
        guessed=setup.guessed,
        oauth_provider=oauth,
        password_accepted=setup.password_accepted,
        needs_app_password=setup.needs_app_password,
        daily_limit=limits.per_day if limits is not None else None,
        limits=limit_text,
        note=_headline(setup, oauth),
        notes=setup.notes,
    )


def settings_from_view(settings: v.AccountSettings) -> AccountSettings:
    """The dialog's settings as the adapters need them (IMAP is always implicit TLS in Cadence)."""
    return AccountSettings(
        email=settings.email.strip().lower(),
        display_name=settings.display_name.strip(),
        smtp_host=settings.smtp_host.strip(),
        smtp_port=settings.smtp_port,
        smtp_security=ConnectionSecurity.TLS
        if settings.smtp_tls is v.TlsMode.IMPLICIT
        else ConnectionSecurity.STARTTLS,
        imap_host=settings.imap_host.strip(),
        imap_port=settings.imap_port,
        imap_security=ConnectionSecurity.TLS,
        ca_file=settings.ca_file or None,
        provider_key=settings.provider_key,
        guardrails=settings.guardrails,
        auth_method=settings.auth_method,
    )


def step_view(result: StepResult) -> v.ConnectionStepView:
    return v.ConnectionStepView(
        server=result.server.value,
        step=result.step.value,
        title=result.title,
        state=v.StepState(result.status.value),
        message=result.message,
        elapsed_s=result.elapsed_s,
    )


_HEALTH_STATES = {
    CheckStatus.OK: v.CheckState.PASS,
    CheckStatus.WARNING: v.CheckState.WARN,
    CheckStatus.PROBLEM: v.CheckState.FAIL,
    CheckStatus.UNKNOWN: v.CheckState.UNKNOWN,
}


# --- the service -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class AccountSetupService:
    secrets: AccountSecretStore
    mx_hosts: MxLookup
    probe: ConnectionProbe
    domain_health_lookup: HealthLookup | None = None
    sign_in: SignInFlow | None = None
    token_source: TokenSourceFactory | None = None
    redact: Callable[[str], None] | None = None  # SecretRedactingFilter.add: typed-in passwords too
    store: AccountRows | None = None
    db: DbWorker | None = None
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    mx_timeout_s: float = MX_LOOKUP_TIMEOUT_S
    clock: Clock = field(default_factory=SystemClock)
    _fresh_tokens: dict[str, AccessToken] = field(default_factory=dict, init=False, repr=False)

    async def propose_account(self, email: str) -> v.AccountProposal:
        try:
            known = known_domain_setup(email)
            if known is not None:
                return proposal_view(known)
            address, domain = address_domain(email)
        except AddressError as error:
            raise UserFacingError(str(error)) from None
        lookup_failed = ""
        hosts: Sequence[str] = ()
        try:
            async with asyncio.timeout(self.mx_timeout_s):
                hosts = tuple(await self.mx_hosts(domain))
        except DnsLookupError as error:
            lookup_failed = str(error) or "DNS did not answer"
        except TimeoutError:
            lookup_failed = f"DNS did not answer within {self.mx_timeout_s:g} s"
        setup = propose(address, mx_hosts=hosts)
        view = proposal_view(setup)
        if lookup_failed:
            notes = tuple(n for n in view.notes if not n.startswith("No mail servers (MX)"))
            notes += (f"The mail servers of {domain} could not be looked up ({lookup_failed}).",)
            view = replace(view, notes=notes)
        return view

    async def test_connection(
        self,
        settings: v.AccountSettings,
        *,
        password: str | None = None,
        on_step: Callable[[v.ConnectionStepView], None] | None = None,
    ) -> v.ConnectionTestView:
        model_settings = settings_from_view(settings)
        credentials = await self._credentials(model_settings, settings.username.strip(), password)
        steps: list[v.ConnectionStepView] = []
        async for result in iter_connection_test(
            model_settings, credentials=credentials, probe=self.probe, step_timeout_s=self.step_timeout_s
        ):
            view = step_view(result)
            steps.append(view)
            if on_step is not None:
                on_step(view)
        return v.ConnectionTestView(tuple(steps))

    async def _credentials(
        self, settings: AccountSettings, username: str, password: str | None
    ) -> TestCredentials:
        login = username or None
        provider = provider_for_method(settings.auth_method)
        if provider is not None:
            if self.token_source is not None:
                try:
                    return TestCredentials(token_provider=self.token_source(settings), username=login)
                except OAuthError as error:
                    raise UserFacingError(str(error)) from None
            fresh = self._fresh_tokens.get(settings.email)
            if fresh is None or fresh.needs_refresh(self.clock.now()):
                name = ENDPOINTS[provider].name
                raise UserFacingError(f"Sign in with {name} (the button above), then test the connection.")

            token: str = fresh.value

            async def fresh_token() -> str:
                return token

            return TestCredentials(token_provider=fresh_token, username=login)
        if password:
            if self.redact is not None:
                self.redact(password)
            return TestCredentials(password=password, username=login)
        try:
            stored = await self.secrets.get(settings.email)
            imap_stored = await self.secrets.get(settings.email, kind=SecretKind.IMAP_PASSWORD)
        except SecretStoreError as error:
            raise UserFacingError(str(error)) from None
        return TestCredentials(password=stored, imap_password=imap_stored, username=login)

    async def sign_in_oauth(self, email: str, provider: OAuthProvider) -> None:
        try:
            address, _domain = address_domain(email)
        except AddressError as error:
            raise UserFacingError(str(error)) from None
        if self.sign_in is None:
            raise UserFacingError("Signing in through the browser is not available in this copy of Cadence.")
        try:
            outcome = await self.sign_in(provider, address)
        except OAuthError as error:
            raise UserFacingError(str(error)) from None
        grant = outcome.grant
        refresh = grant.refresh_token
        if self.redact is not None:
            self.redact(grant.access_token.value)
            if refresh:
                self.redact(refresh)
        if not refresh:
            raise UserFacingError("The sign-in returned no refresh token; sign in again.")
        signed_in_as = outcome.username.strip().lower()
        if signed_in_as and signed_in_as != address.lower():
            raise UserFacingError(
                f"You signed in as {outcome.username}, but this account is {address}. Sign in again and "
                f"pick {address}."
            )
        try:
            await self.secrets.set(address, refresh, kind=SecretKind.OAUTH_REFRESH_TOKEN)
        except SecretStoreError as error:
            raise UserFacingError(str(error)) from None
        self._fresh_tokens[address.lower()] = grant.access_token  # memory only: lets "Test" run right away
        log.info("OAuth sign-in for %s with %s stored in the keyring", address, provider.value)

    async def remove_account(self, account_id: int) -> None:
        if self.store is None or self.db is None:
            raise UserFacingError("Accounts cannot be removed here.")
        try:
            account = await self.db.call(self.store.delete_account, account_id)
        except RecordNotFound:
            raise UserFacingError(f"Account {account_id} no longer exists.") from None
        except ValueError as error:
            raise UserFacingError(str(error)) from None
        try:
            await self.secrets.delete_account(account.email)
        except SecretStoreError as error:
            raise UserFacingError(
                f"The account {account.email} was removed, but its secrets could not be deleted from the "
                f"keyring: {error} Remove the entries for {account.email} in your keyring app."
            ) from None
        log.info("account %s (%s) removed with its keyring entries", account_id, account.email)

    async def domain_health(self, email: str) -> list[v.HealthCheck]:
        if self.domain_health_lookup is None:
            raise UserFacingError("Domain checks are not available here.")
        try:
            known = known_domain_setup(email)
            address, domain = address_domain(email)
        except AddressError as error:
            raise UserFacingError(str(error)) from None
        provider_key = known.provider_key if known is not None else None
        try:
            report = await self.domain_health_lookup(address, provider_key=provider_key)
        except (DnsLookupError, ValueError) as error:
            raise UserFacingError(f"The records of {domain} could not be checked: {error}") from None
        checks = []
        for item in report.items:
            detail = item.summary if not item.fix else f"{item.summary} {item.fix}"
            checks.append(v.HealthCheck(item.name, _HEALTH_STATES[item.status], detail))
        return checks


class AccountSetupMethods:
    """The account-setup part of RuntimeApi, forwarded to `self.account_setup` (mix into a runtime)."""

    account_setup: AccountSetupService

    async def propose_account(self, email: str) -> v.AccountProposal:
        return await self.account_setup.propose_account(email)

    async def test_connection(
        self,
        settings: v.AccountSettings,
        *,
        password: str | None = None,
        on_step: Callable[[v.ConnectionStepView], None] | None = None,
    ) -> v.ConnectionTestView:
        return await self.account_setup.test_connection(settings, password=password, on_step=on_step)

    async def sign_in_oauth(self, email: str, provider: OAuthProvider) -> None:
        await self.account_setup.sign_in_oauth(email, provider)

    async def remove_account(self, account_id: int) -> None:
        await self.account_setup.remove_account(account_id)

    async def domain_health(self, email: str) -> list[v.HealthCheck]:
        return await self.account_setup.domain_health(email)
