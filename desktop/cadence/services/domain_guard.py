"""Recipient domains are checked once before their first send, so a dead domain never costs a bounce.

A domain with no MX and no A/AAAA record, a null MX (RFC 7505) or NXDOMAIN is put on the suppression list as
`@domain` with the resolver's reason as evidence; the engine then blocks every lead there as suppressed. An
answer the resolver could not get (timeout, SERVFAIL, a resolver that seems broken) blocks nothing and is
asked again after a while (offline laptops must not wait for DNS before every send). The resolver caches
answers for days, so a pass costs a query per new domain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from cadence.core.domain_health import Deliverability, DomainCheck
from cadence.core.model import MessageState, SuppressionReason
from cadence.core.ports import Clock, DomainChecker, Store, SystemClock

log = logging.getLogger(__name__)

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
        retry_unknown_after: timedelta = timedelta(minutes=15),
    ) -> None:
        self._store = store
        self._db_call = db_call
        self._checker = checker
        self._clock = clock or SystemClock()
        self._max_messages = max_messages
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._retry_unknown_after = retry_unknown_after
        self._settled: set[str] = set()  # domains with a definite answer in this session
        self._unknown_until: dict[str, datetime] = {}  # no answer: not asked again before then

    async def __call__(self, account_id: int) -> None:
        messages = await self._db_call(
            self._store.list_messages,
            states=WAITING_STATES,
            account_id=account_id,
            limit=self._max_messages,
        )
        now = self._clock.now()
        domains = sorted(
            domain
            for domain in {m.recipient.rpartition("@")[2].lower() for m in messages if m.step_index == 1}
            if domain not in self._settled and self._unknown_until.get(domain, now) <= now
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

        for domain, result in zip(domains, await asyncio.gather(*(check(d) for d in domains)), strict=True):
            if result is None or result.deliverability is Deliverability.UNKNOWN:
                self._unknown_until[domain] = now + self._retry_unknown_after
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
