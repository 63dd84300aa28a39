"""The services' event bus: what happened (a send, a deferral, a pause, an inbox batch), published to any
number of listeners. Listeners may be called from the event loop thread; the Qt bridge and the CLI log
re-dispatch as they need. A listener's bug is logged, never raised into the service that published."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")


class SendEventKind(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    BLOCKED = "blocked"
    SUPPRESSED = "suppressed"
    PAUSED = "paused"  # the account paused itself (breaker, provider block, auth) or was paused
    RESUMED = "resumed"
    IDLE = "idle"  # nothing to send until `until` (None: not by itself)
    FOLLOW_UP = "follow_up"  # the next step's draft was created
    INBOX = "inbox"  # an inbox batch changed leads or suppressions
    CAP_REACHED = "cap_reached"  # the daily cap stops sending until `until` (published once a local day)
    CAMPAIGN_FINISHED = "campaign_finished"  # the campaign's last message settled (detail: its name)
    DRAFTS_WAITING = "drafts_waiting"  # drafts newly over 24 h in the approval queue (detail: how many)


@dataclass(frozen=True, slots=True)
class SendEvent:
    kind: SendEventKind
    account_id: int | None
    at: datetime
    outbox_id: int | None = None
    recipient: str = ""
    detail: str = ""
    until: datetime | None = None
    campaign_id: int | None = None  # CAMPAIGN_FINISHED


class EventBus(Generic[E]):
    def __init__(self) -> None:
        self._listeners: list[Callable[[E], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[E], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: E) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %r", event)
