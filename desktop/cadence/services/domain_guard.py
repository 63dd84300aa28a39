"""Recipient domains are checked once before their first send, so a dead domain never costs a bounce.

A domain with no MX and no A/AAAA record, a null MX (RFC 7505) or NXDOMAIN is put on the suppression list as
`@domain` with the resolver's reason as evidence; the engine then blocks every lead there as suppressed. An
answer the resolver could not get (timeout, SERVFAIL, a resolver that seems broken) blocks nothing and is
asked again on a later pass. The resolver caches answers for days, so a pass costs a query per new domain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cadence.core.domain_health import Deliverability, DomainCheck
from cadence.core.model import MessageState, SuppressionReason
from cadence.core.ports import Clock, DomainChecker, Store, SystemClock

log = logging.getLogger(__name__)

T = TypeVar("T")
DbCall = Callable[..., Awaitable[Any]]

# Messages that may still go out: their recipients' domains are worth checking.
WAITING_STATES = (
    MessageState.PENDING_APPROVAL,
    MessageState.APPROVED,
    MessageState.QUEUED,
    MessageState.DEFERRED,
)


class RecipientDomainGuard:
    """Call it with an account id before a sending pass (the scheduler's `before_batch` hook)."""

    def __init__(
        self,
        *,
        store: Store,
        db_call: DbCall,
        checker: DomainChecker,
        clock: Clock | None = None,
        max_messages: int = 500,
        concurrency: int = 8,
        timeout_s: float = 10.0,
    ) -> None:
        self._store = store
        self._db_call = db_call
        self._checker = checker
        self._clock = clock or SystemClock()
        self._max_messages = max_messages
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._settled: set[str] = set()  # domains with a definite answer in this session

    async def __call__(self, account_id: int) -> None:
        messages = await self._db_call(
            self._store.list_messages,
            states=WAITING_STATES,
            account_id=account_id,
            limit=self._max_messages,
        )
        domains = sorted(
            {m.recipient.rpartition("@")[2].lower() for m in messages if m.step_index == 1} - self._settled
        )
        if not domains:
            return
        limit = asyncio.Semaphore(self._concurrency)

        async def check(domain: str) -> DomainCheck | None:
            async with limit:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        return await self._checker.check_recipient_domain(domain)
                except TimeoutError:
                    log.info("recipient domain %s: no answer within %.0f s", domain, self._timeout_s)
                    return None

        for result in await asyncio.gather(*(check(d) for d in domains)):
            if result is None or result.deliverability is Deliverability.UNKNOWN:
                continue
            self._settled.add(result.domain)
            if result.undeliverable:
                await self._suppress(result)

    async def _suppress(self, result: DomainCheck) -> None:
        value = f"@{result.domain}"
        existing = await self._db_call(self._store.find_suppression, f"postmaster{value}")
        if existing is not None:
            return
        log.warning("recipient domain %s cannot receive mail (%s): suppressed", result.domain, result.reason)
        await self._db_call(
            self._store.add_suppression,
            value,
            reason=SuppressionReason.UNDELIVERABLE_DOMAIN,
            now=self._clock.now(),
            source="DNS check before the first send",
            evidence=result.reason.encode("utf-8"),
        )
