"""The watcher says which message it could not make sense of (malformed MIME, a bounce naming no readable
recipient, a classifier failure) instead of passing over it in silence."""

from __future__ import annotations

import logging

import pytest

from cadence.core.model import FolderRole, InboundItem, InboundKind, Verdict
from cadence.services.inbox import _warn_unreadable


def item(verdict: Verdict, *, role: FolderRole = FolderRole.INBOX, uid: int = 7) -> InboundItem:
    folder = "Sent" if role is FolderRole.SENT else "INBOX"
    return InboundItem(folder=folder, role=role, uid=uid, raw=b"", message_id="<m@x>", verdict=verdict)


def test_a_bounce_naming_no_readable_recipient_and_a_classifier_failure_are_each_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = [
        item(Verdict(kind=InboundKind.HARD_BOUNCE, status="5.0.0"), uid=3),
        item(Verdict(kind=InboundKind.OTHER, error="classifier error: ValueError: bad"), uid=4),
        item(Verdict(kind=InboundKind.HARD_BOUNCE, recipients=("a@example.com",), status="5.1.1"), uid=5),
        item(Verdict(kind=InboundKind.SOFT_BOUNCE, delayed=True), uid=6),  # a delay notice names no one
        item(Verdict(kind=InboundKind.HARD_BOUNCE), role=FolderRole.SENT, uid=8),  # our own copy
        item(Verdict(kind=InboundKind.REPLY), uid=9),
    ]
    with caplog.at_level(logging.WARNING, logger="cadence.services.inbox"):
        _warn_unreadable(1, items)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "INBOX UID 3 (Message-ID <m@x>) is malformed: a bounce that names no recipient" in messages[0]
    assert "INBOX UID 4" in messages[1] and "classifier error: ValueError: bad" in messages[1]
