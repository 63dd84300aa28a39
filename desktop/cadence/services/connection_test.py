"""The account settings' "Test connection": step by step, each step timed, bounded and explained.

For the SMTP server: DNS → TCP connect → TLS handshake → certificate → login; for the IMAP server the same
plus "Sent folder found". A failed step skips the steps of that server that depend on it (the other server
is still tested). Every step runs under its own timeout; failures carry advice from
`cadence.core.connection_advice`, never a traceback. The I/O is done by a `ConnectionProbe` (the adapter
`cadence.adapters.connection_probe.NetworkProbe`); this module only orchestrates, so the window can await it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from cadence.core.connection_advice import (
    Advice,
    LoginInfo,
    ProbeFailure,
    Problem,
    TestCredentials,
    TlsInfo,
    advise,
)
from cadence.core.model import AccountSettings, ConnectionSecurity

__all__ = [
    "DEFAULT_STEP_TIMEOUT_S",
    "STEP_TITLES",
    "ConnectionProbe",
    "ConnectionTestReport",
    "ImapSession",
    "LoginInfo",
    "Server",
    "Step",
    "StepResult",
    "StepStatus",
    "TestCredentials",
    "TlsInfo",
    "iter_connection_test",
    "run_connection_test",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_STEP_TIMEOUT_S = 20.0


class Server(StrEnum):
    SMTP = "SMTP"
    IMAP = "IMAP"


class Step(StrEnum):
    DNS = "dns"
    TCP = "tcp"
    TLS = "tls"
    CERTIFICATE = "certificate"
    LOGIN = "login"
    SENT_FOLDER = "sent_folder"


STEP_TITLES = {
    Step.DNS: "Find the server (DNS)",
    Step.TCP: "Connect",
    Step.TLS: "Secure the connection (TLS)",
    Step.CERTIFICATE: "Check the certificate",
    Step.LOGIN: "Sign in",
    Step.SENT_FOLDER: "Find the Sent folder",
}


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class StepResult:
    server: Server
    step: Step
    status: StepStatus
    elapsed_s: float
    message: str  # success: what was found; failure: the advice text; skipped: why
    advice: Advice | None = None

    @property
    def ok(self) -> bool:
        return self.status is StepStatus.OK

    @property
    def title(self) -> str:
        return f"{self.server.value}: {STEP_TITLES[self.step]}"


@dataclass(frozen=True, slots=True)
class ConnectionTestReport:
    steps: tuple[StepResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.status is StepStatus.OK for step in self.steps)

    @property
    def failures(self) -> tuple[StepResult, ...]:
        return tuple(step for step in self.steps if step.status is StepStatus.FAILED)

    def step(self, server: Server, step: Step) -> StepResult:
        return next(s for s in self.steps if s.server is server and s.step is step)


class ImapSession(Protocol):
    """A logged-in IMAP connection held open between the login and the Sent-folder steps."""

    async def sent_folder(self) -> str | None: ...

    async def close(self) -> None: ...


class ConnectionProbe(Protocol):
    """The network side of the connection test. Every method raises only ProbeFailure (and cancellation)."""

    async def resolve(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses of `host`, as the system resolver gives them to connections."""
        ...

    async def connect(self, address: str, port: int) -> None:
        """Open a TCP connection and close it again."""
        ...

    async def tls(
        self, *, host: str, address: str, port: int, starttls: bool, ca_file: str | None
    ) -> TlsInfo:
        """Handshake (after SMTP STARTTLS when `starttls`), verifying the certificate for `host`. A
        certificate that fails verification is reported in TlsInfo, any other TLS failure raised."""
        ...

    async def smtp_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> LoginInfo: ...

    async def imap_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> ImapSession: ...


class _StepFailed(Exception):
    def __init__(self, result: StepResult) -> None:
        super().__init__(result.message)
        self.result = result


class _Runner:
    def __init__(self, settings: AccountSettings, server: Server, *, step_timeout_s: float) -> None:
        self.settings = settings
        self.server = server
        self.step_timeout_s = step_timeout_s
        if server is Server.SMTP:
            self.host, self.port, self.security = (
                settings.smtp_host,
                settings.smtp_port,
                settings.smtp_security,
            )
        else:
            self.host, self.port, self.security = (
                settings.imap_host,
                settings.imap_port,
                settings.imap_security,
            )

    def advice(self, problem: Problem, detail: str = "") -> Advice:
        return advise(
            problem,
            protocol=self.server.value,
            host=self.host,
            port=self.port,
            provider_key=self.settings.provider_key,
            detail=detail,
            timeout_s=self.step_timeout_s if problem is Problem.TIMEOUT else None,
        )

    def failed(self, step: Step, started: float, advice: Advice) -> StepResult:
        return StepResult(self.server, step, StepStatus.FAILED, _since(started), advice.text, advice)

    def ok(self, step: Step, started: float, message: str) -> StepResult:
        return StepResult(self.server, step, StepStatus.OK, _since(started), message)

    def skipped(self, step: Step, why: str) -> StepResult:
        return StepResult(self.server, step, StepStatus.SKIPPED, 0.0, why)

    async def bounded(self, step: Step, started: float, work: Awaitable[T]) -> T:
        """Await `work` under the step timeout; a ProbeFailure or timeout becomes _StepFailed."""
        try:
            async with asyncio.timeout(self.step_timeout_s):
                return await work
        except TimeoutError:
            raise _StepFailed(self.failed(step, started, self.advice(Problem.TIMEOUT))) from None
        except ProbeFailure as failure:
            raise _StepFailed(
                self.failed(step, started, self.advice(failure.problem, failure.detail))
            ) from None
        except Exception as error:  # a bug in a probe: report it plainly, log the traceback
            log.exception("connection test step %s/%s failed unexpectedly", self.server, step)
            detail = f"internal error ({type(error).__name__})"
            raise _StepFailed(self.failed(step, started, self.advice(Problem.SERVER_ERROR, detail))) from None


def _since(started: float) -> float:
    return max(0.0, asyncio.get_running_loop().time() - started)


def _now() -> float:
    return asyncio.get_running_loop().time()


def _steps_for(server: Server) -> tuple[Step, ...]:
    common = (Step.DNS, Step.TCP, Step.TLS, Step.CERTIFICATE, Step.LOGIN)
    return (*common, Step.SENT_FOLDER) if server is Server.IMAP else common


async def _server_steps(
    runner: _Runner, probe: ConnectionProbe, credentials: TestCredentials
) -> AsyncGenerator[StepResult, None]:
    server = runner.server
    remaining = list(_steps_for(server))

    def done(result: StepResult) -> StepResult:
        remaining.remove(result.step)
        return result

    try:
        if not runner.host or not (0 < runner.port < 65536):
            started = _now()
            raise _StepFailed(
                runner.failed(
                    Step.DNS, started, runner.advice(Problem.BAD_SETTINGS, f"{server.value} server")
                )
            )

        started = _now()
        addresses = await runner.bounded(Step.DNS, started, probe.resolve(runner.host, runner.port))
        shown = ", ".join(addresses[:3]) + (" …" if len(addresses) > 3 else "")
        yield done(runner.ok(Step.DNS, started, f"{runner.host} is at {shown}."))

        started = _now()
        address: str | None = None
        last_failure: _StepFailed | None = None
        for candidate in addresses:
            try:
                await runner.bounded(Step.TCP, started, probe.connect(candidate, runner.port))
            except _StepFailed as failed:
                last_failure = failed
                if failed.result.advice is not None and failed.result.advice.problem is Problem.TIMEOUT:
                    break  # the step's time is used up
                continue
            address = candidate
            break
        if address is None:
            assert last_failure is not None
            raise last_failure
        yield done(runner.ok(Step.TCP, started, f"Connected to {address} port {runner.port}."))

        if runner.security is ConnectionSecurity.NONE:
            for step in (Step.TLS, Step.CERTIFICATE):
                yield done(
                    runner.skipped(step, "The connection is not encrypted (allowed for local test servers).")
                )
        elif server is Server.IMAP and runner.security is ConnectionSecurity.STARTTLS:
            started = _now()
            raise _StepFailed(
                runner.failed(Step.TLS, started, runner.advice(Problem.IMAP_STARTTLS_UNSUPPORTED))
            )
        else:
            started = _now()
            starttls = runner.security is ConnectionSecurity.STARTTLS
            info = await runner.bounded(
                Step.TLS,
                started,
                probe.tls(
                    host=runner.host,
                    address=address,
                    port=runner.port,
                    starttls=starttls,
                    ca_file=runner.settings.ca_file,
                ),
            )
            how = "after STARTTLS" if starttls else "from the first byte"
            yield done(runner.ok(Step.TLS, started, f"Encrypted with {info.version} ({how})."))
            cert_started = _now()
            if info.certificate_problem is not None:
                advice = runner.advice(info.certificate_problem, info.certificate_detail)
                raise _StepFailed(runner.failed(Step.CERTIFICATE, cert_started, advice))
            valid = f", valid until {info.expires}" if info.expires else ""
            yield done(
                runner.ok(
                    Step.CERTIFICATE,
                    cert_started,
                    f"The certificate is trusted and issued for {info.subject or runner.host}{valid}.",
                )
            )

        started = _now()
        if server is Server.SMTP:
            login = await runner.bounded(
                Step.LOGIN,
                started,
                probe.smtp_login(runner.settings, credentials=credentials, timeout_s=runner.step_timeout_s),
            )
            how = f" with {login.mechanism}" if login.mechanism else ""
            yield done(
                runner.ok(Step.LOGIN, started, f"Signed in{how}.{' ' + login.note if login.note else ''}")
            )
            return

        imap = await runner.bounded(
            Step.LOGIN,
            started,
            probe.imap_login(runner.settings, credentials=credentials, timeout_s=runner.step_timeout_s),
        )
        try:
            yield done(runner.ok(Step.LOGIN, started, "Signed in."))
            started = _now()
            sent = await runner.bounded(Step.SENT_FOLDER, started, imap.sent_folder())
            if not sent:
                raise _StepFailed(
                    runner.failed(Step.SENT_FOLDER, started, runner.advice(Problem.SENT_FOLDER_MISSING))
                )
            yield done(runner.ok(Step.SENT_FOLDER, started, f"Sent mail is in “{sent}”."))
        finally:
            try:
                async with asyncio.timeout(5):
                    await imap.close()
            except (TimeoutError, ProbeFailure):
                pass
    except _StepFailed as failed:
        yield done(failed.result)
        first = failed.result.step
        for step in list(remaining):
            yield done(runner.skipped(step, f"Skipped: “{STEP_TITLES[first]}” failed."))


async def iter_connection_test(
    settings: AccountSettings,
    *,
    credentials: TestCredentials,
    probe: ConnectionProbe,
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S,
    servers: tuple[Server, ...] = (Server.SMTP, Server.IMAP),
) -> AsyncGenerator[StepResult, None]:
    """Yield each step's result as soon as it is known (for a live checklist in the window). A listener
    that stops early should close the stream (`contextlib.aclosing`) so an open IMAP session is logged out."""
    if step_timeout_s <= 0:
        raise ValueError("step_timeout_s must be positive")
    for server in servers:
        runner = _Runner(settings, server, step_timeout_s=step_timeout_s)
        async with contextlib.aclosing(_server_steps(runner, probe, credentials)) as steps:
            async for result in steps:
                yield result


async def run_connection_test(
    settings: AccountSettings,
    *,
    credentials: TestCredentials,
    probe: ConnectionProbe,
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S,
    servers: tuple[Server, ...] = (Server.SMTP, Server.IMAP),
    on_step: Callable[[StepResult], None] | None = None,
) -> ConnectionTestReport:
    """Run every step; `on_step` sees each result as it arrives. Never raises for a failing server."""
    results: list[StepResult] = []
    async for result in iter_connection_test(
        settings, credentials=credentials, probe=probe, step_timeout_s=step_timeout_s, servers=servers
    ):
        results.append(result)
        if on_step is not None:
            on_step(result)
    return ConnectionTestReport(tuple(results))
