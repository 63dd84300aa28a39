"""Shared test configuration. Area fixtures live in their own modules (tests/integration/*.py) and are
imported where needed, so that areas do not edit one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.secrets_scan import pytest_sessionfinish  # noqa: F401  (the end-of-session secrets scan)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the labelled mail corpus is not at {CORPUS}")
    return CORPUS
