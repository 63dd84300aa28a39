"""cadence.services.connection_test orchestration: step order, skipping, per-step timeouts, and a probe bug
turned into advice. The network itself is exercised in tests/integration/test_connection_test.py; here a
scripted ConnectionProbe stands in for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from cadence.core.connection_advice import LoginInfo, ProbeFailure, Problem, TestCredentials, TlsInfo
from cadence.core.model import AccountSettings, ConnectionSecurity
from cadence.services.connection_test import (
    Server,
    Step,
    StepStatus,
    iter_connection_test,
    run_connection_test,
)

SETTINGS = AccountSettings(
    email="a@example.test",
    smtp_host="smtp.example.test",
    smtp_port=587,
    imap_host="imap.example.test",
    imap_port=993,
)
CREDENTIALS = TestCredentials(password="pw")


@dataclass
class Session:
    sent: str | None = "Sent"
    fail: ProbeFailure | None = None
    closed: bool = False

    async def sent_folder(self) -> str | None:
        if self.fail is not None:
            raise self.fail
        return self.sent

    async def close(self) -> None:
        self.closed = True


async def _hang() -> None:
    await asyncio.Event().wait()


@dataclass
class ScriptedProbe:
    """Each step does what its entry in `script` says: "hang", a ProbeFailure, an exception, or succeeds."""

    script: dict[tuple[str, str], object] = field(default_factory=dict)
    refused_addresses: set[str] = field(default_factory=set)
    addresses: tuple[str, ...] = ("192.0.2.1",)
    session: Session = field(default_factory=Session)
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def _act(self, server: str, step: str) -> None:
        self.calls.append((server, step))
        action = self.script.get((server, step))
        if action == "hang":
            await _hang()
        if isinstance(action, BaseException):
            raise action

    @staticmethod
    def _server(host: str) -> str:
        return "SMTP" if host.startswith("smtp") else "IMAP"

    async def resolve(self, host: str, port: int) -> tuple[str, ...]:
        await self._act(self._server(host), "dns")
        return self.addresses

    async def connect(self, address: str, port: int) -> None:
        await self._act("SMTP" if port == 587 else "IMAP", "tcp")
        if address in self.refused_addresses:
            raise ProbeFailure(Problem.CONNECTION_REFUSED, f"{address} refused")

    async def tls(
        self, *, host: str, address: str, port: int, starttls: bool, ca_file: str | None
    ) -> TlsInfo:
        await self._act(self._server(host), "tls")
        problem = self.script.get((self._server(host), "certificate"))
        if isinstance(problem, Problem):
            return TlsInfo(version="TLSv1.3", certificate_problem=problem, certificate_detail="checked")
        return TlsInfo(version="TLSv1.3", subject=host, expires="Jan 1 00:00:00 2030 GMT")

    async def smtp_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> LoginInfo:
        await self._act("SMTP", "login")
        return LoginInfo(mechanism="PLAIN")

    async def imap_login(
        self, settings: AccountSettings, *, credentials: TestCredentials, timeout_s: float
    ) -> Session:
        await self._act("IMAP", "login")
        return self.session


def by_step(report_steps: object, server: Server) -> dict[Step, StepStatus]:
    return {s.step: s.status for s in report_steps if s.server is server}  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_all_steps_in_order() -> None:
    probe = ScriptedProbe()
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe)
    assert report.ok
    assert [(s.server, s.step) for s in report.steps] == [
        *[(Server.SMTP, step) for step in (Step.DNS, Step.TCP, Step.TLS, Step.CERTIFICATE, Step.LOGIN)],
        *[
            (Server.IMAP, step)
            for step in (Step.DNS, Step.TCP, Step.TLS, Step.CERTIFICATE, Step.LOGIN, Step.SENT_FOLDER)
        ],
    ]
    assert probe.session.closed
    assert "valid until Jan 1 00:00:00 2030 GMT" in report.step(Server.SMTP, Step.CERTIFICATE).message


@pytest.mark.asyncio
async def test_a_hanging_step_times_out_and_the_other_server_is_still_tested() -> None:
    probe = ScriptedProbe(script={("SMTP", "dns"): "hang"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, step_timeout_s=0.2)
    assert loop.time() - started < 2
    failed = report.step(Server.SMTP, Step.DNS)
    assert failed.status is StepStatus.FAILED and failed.advice is not None
    assert failed.advice.problem is Problem.TIMEOUT
    assert 0.15 < failed.elapsed_s < 1.5
    assert set(by_step(report.steps, Server.SMTP).values()) == {StepStatus.FAILED, StepStatus.SKIPPED}
    assert all(status is StepStatus.OK for status in by_step(report.steps, Server.IMAP).values())
    assert [s.step for s in report.failures] == [Step.DNS]


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["SMTP", "IMAP"])
@pytest.mark.parametrize("step", ["dns", "tcp", "tls", "login"])
async def test_every_step_is_bounded(server: str, step: str) -> None:
    probe = ScriptedProbe(script={(server, step): "hang"})
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, step_timeout_s=0.05)
    failed = report.failures
    assert len(failed) == 1 and failed[0].server.value == server and failed[0].step.value == step
    assert failed[0].advice is not None and failed[0].advice.problem is Problem.TIMEOUT


@pytest.mark.asyncio
async def test_a_bug_in_the_probe_becomes_advice_not_a_crash() -> None:
    probe = ScriptedProbe(script={("SMTP", "tls"): RuntimeError("boom at 0xdeadbeef")})
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe)
    failed = report.step(Server.SMTP, Step.TLS)
    assert failed.status is StepStatus.FAILED and failed.advice is not None
    assert failed.advice.problem is Problem.SERVER_ERROR
    assert "0xdeadbeef" not in failed.message and "internal error (RuntimeError)" in failed.message


@pytest.mark.asyncio
async def test_each_address_is_tried_until_one_connects() -> None:
    probe = ScriptedProbe(addresses=("2001:db8::1", "192.0.2.7"), refused_addresses={"2001:db8::1"})
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, servers=(Server.SMTP,))
    assert report.ok
    assert "192.0.2.7" in report.step(Server.SMTP, Step.TCP).message
    probe = ScriptedProbe(addresses=("192.0.2.1", "192.0.2.2"), refused_addresses={"192.0.2.1", "192.0.2.2"})
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, servers=(Server.SMTP,))
    failed = report.step(Server.SMTP, Step.TCP)
    assert failed.advice is not None and failed.advice.problem is Problem.CONNECTION_REFUSED


@pytest.mark.asyncio
async def test_certificate_problem_stops_before_login() -> None:
    probe = ScriptedProbe(script={("SMTP", "certificate"): Problem.CERT_EXPIRED})
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, servers=(Server.SMTP,))
    assert by_step(report.steps, Server.SMTP) == {
        Step.DNS: StepStatus.OK,
        Step.TCP: StepStatus.OK,
        Step.TLS: StepStatus.OK,
        Step.CERTIFICATE: StepStatus.FAILED,
        Step.LOGIN: StepStatus.SKIPPED,
    }
    assert ("SMTP", "login") not in probe.calls


@pytest.mark.asyncio
async def test_unencrypted_test_relays_skip_tls_steps() -> None:
    settings = AccountSettings(
        email="a@example.test", smtp_host="smtp.local", smtp_port=2525, smtp_security=ConnectionSecurity.NONE
    )
    report = await run_connection_test(
        settings, credentials=CREDENTIALS, probe=ScriptedProbe(), servers=(Server.SMTP,)
    )
    assert by_step(report.steps, Server.SMTP)[Step.TLS] is StepStatus.SKIPPED
    assert by_step(report.steps, Server.SMTP)[Step.LOGIN] is StepStatus.OK
    assert not report.ok  # skipped steps are not a pass


@pytest.mark.asyncio
async def test_missing_host_is_bad_settings() -> None:
    settings = AccountSettings(email="a@example.test")
    report = await run_connection_test(
        settings, credentials=CREDENTIALS, probe=ScriptedProbe(), servers=(Server.IMAP,)
    )
    failed = report.step(Server.IMAP, Step.DNS)
    assert failed.advice is not None and failed.advice.problem is Problem.BAD_SETTINGS


@pytest.mark.asyncio
async def test_missing_sent_folder_and_the_session_is_closed() -> None:
    probe = ScriptedProbe(session=Session(sent=None))
    report = await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, servers=(Server.IMAP,))
    failed = report.step(Server.IMAP, Step.SENT_FOLDER)
    assert failed.advice is not None and failed.advice.problem is Problem.SENT_FOLDER_MISSING
    assert probe.session.closed


@pytest.mark.asyncio
async def test_the_session_is_closed_when_the_listener_stops_early() -> None:
    probe = ScriptedProbe()
    stream = iter_connection_test(SETTINGS, credentials=CREDENTIALS, probe=probe, servers=(Server.IMAP,))
    async for result in stream:
        if result.step is Step.LOGIN:
            break
    await stream.aclose()
    assert probe.session.closed


@pytest.mark.asyncio
async def test_on_step_sees_results_live() -> None:
    seen: list[str] = []
    record: Callable[[object], None] = lambda result: seen.append(result.step.value)  # type: ignore[attr-defined]  # noqa: E731
    await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=ScriptedProbe(), on_step=record)
    assert seen[:2] == ["dns", "tcp"] and len(seen) == 11


@pytest.mark.asyncio
async def test_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError):
        await run_connection_test(SETTINGS, credentials=CREDENTIALS, probe=ScriptedProbe(), step_timeout_s=0)


def test_credentials_keep_secrets_out_of_repr() -> None:
    assert "pw" not in repr(TestCredentials(password="pw", imap_password="pw2"))
