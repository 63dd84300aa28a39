"""Fixtures for tests against the real mail stack (Postfix + Dovecot + the fake internet).

`mail_stack` is one stack for the whole session: tests that only submit and read share it (they tell their
mail apart by Message-ID and `+tag` addresses). `private_mail_stack` is one per module, for tests that stop,
restart or reconfigure a piece. Both skip, with the reason, when not root or a binary is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack.stack import MailStack, missing_requirements


def _started_stack() -> MailStack:
    problem = missing_requirements()
    if problem:
        pytest.skip(f"mail stack not available: {problem}")
    return MailStack().start()


@pytest.fixture(scope="session")
def mail_stack() -> Iterator[MailStack]:
    stack = _started_stack()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def private_mail_stack() -> Iterator[MailStack]:
    stack = _started_stack()
    try:
        yield stack
    finally:
        stack.stop()
