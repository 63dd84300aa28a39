"""PendingRuntime: the window's runtime while the real one opens. Calls wait for it, listeners reach it,
a failure ends every wait with the same sentence, and closing never leaves the real runtime open."""

from __future__ import annotations

import asyncio

import pytest

from cadence.core import views as v
from cadence.core.ports import ProgressiveCampaignCreator, UserFacingError
from cadence.services.demo_runtime import DemoRuntime
from cadence.services.pending_runtime import PendingRuntime


@pytest.mark.asyncio
async def test_calls_wait_for_the_real_runtime_then_return_its_answers() -> None:
    pending = PendingRuntime()
    real = DemoRuntime(pending=12)
    waiting = asyncio.ensure_future(pending.count_pending())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # nothing to answer with yet: no made-up zero
    pending.attach(real)
    assert await waiting == 12
    assert await pending.count_pending() == 12
    campaigns = await pending.list_campaigns()
    assert campaigns == await real.list_campaigns()


@pytest.mark.asyncio
async def test_listeners_subscribed_before_attach_hear_the_real_runtime() -> None:
    pending = PendingRuntime()
    heard: list[v.RuntimeEvent] = []
    dropped: list[v.RuntimeEvent] = []
    pending.subscribe(heard.append)
    pending.subscribe(dropped.append)()  # unsubscribed before the runtime came
    real = DemoRuntime(pending=1)
    pending.attach(real)
    real.add_pending(2)
    assert heard == [v.QueueChanged(pending=3)]
    assert dropped == []


@pytest.mark.asyncio
async def test_unsubscribing_after_attach_detaches_from_the_real_runtime() -> None:
    pending = PendingRuntime()
    heard: list[v.RuntimeEvent] = []
    unsubscribe = pending.subscribe(heard.append)
    real = DemoRuntime(pending=0)
    pending.attach(real)
    unsubscribe()
    real.add_pending(1)
    assert heard == []


@pytest.mark.asyncio
async def test_a_failure_to_open_ends_every_wait_with_its_sentence() -> None:
    pending = PendingRuntime()
    waiting = asyncio.ensure_future(pending.status())
    await asyncio.sleep(0)
    pending.fail(OSError("The data folder cannot be created: read-only file system"))
    with pytest.raises(UserFacingError, match="data folder cannot be created"):
        await waiting
    with pytest.raises(UserFacingError, match="data folder cannot be created"):
        await pending.list_accounts()
    await pending.aclose()  # nothing was opened: nothing to close, no wait
    with pytest.raises(RuntimeError):
        pending.attach(DemoRuntime())


@pytest.mark.asyncio
async def test_closing_while_opening_waits_and_closes_the_real_runtime() -> None:
    pending = PendingRuntime()
    closing = asyncio.ensure_future(pending.aclose())
    await asyncio.sleep(0.01)
    assert not closing.done()
    real = DemoRuntime()
    pending.attach(real)
    await closing
    assert real._closed


@pytest.mark.asyncio
async def test_only_runtime_api_coroutines_exist_before_attach_then_the_real_runtimes_attributes() -> None:
    pending = PendingRuntime()
    with pytest.raises(AttributeError):
        pending.no_such_method  # noqa: B018
    assert not isinstance(pending, ProgressiveCampaignCreator)  # unknown until the real runtime is there
    real = DemoRuntime()
    pending.attach(real)
    assert pending.now == real.now  # a demo-only attribute, reached through the proxy
    assert isinstance(pending, ProgressiveCampaignCreator) == isinstance(real, ProgressiveCampaignCreator)
