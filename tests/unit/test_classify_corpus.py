"""The classifier measured on the labelled corpus (../shared/corpus): the goals are asserted so that a
regression fails. The scoring functions are shared with benchmarks/classify_corpus.py."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cadence.core.classify import classify
from cadence.core.model import InboundKind, Verdict

CATEGORY_KIND = {
    "hard_bounce": InboundKind.HARD_BOUNCE,
    "soft_bounce": InboundKind.SOFT_BOUNCE,
    "feedback_report": InboundKind.COMPLAINT,
    "unsubscribe_request": InboundKind.UNSUBSCRIBE,
    "unsubscribe": InboundKind.UNSUBSCRIBE,
    "not_interested": InboundKind.NOT_INTERESTED,
    "human_reply": InboundKind.REPLY,
    "reply": InboundKind.REPLY,
    "auto_reply": InboundKind.AUTO_REPLY,
    "normal_message": InboundKind.OTHER,
    "delivery_success_dsn": InboundKind.OTHER,
}
BOUNCE_KINDS = frozenset({InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE})


@dataclass
class Sample:
    folder: str
    path: Path
    label: dict[str, object]

    @property
    def category(self) -> str:
        return str(self.label["category"])


def load_samples(corpus: Path) -> Iterator[Sample]:
    for folder, label_file in (
        ("bounces", "labels.jsonl"),
        ("bounces", "labels_crlf_variants.jsonl"),
        ("replies", "labels.jsonl"),
        ("replies-written", "labels.jsonl"),
    ):
        labels = corpus / folder / label_file
        if not labels.is_file():
            continue
        for line in labels.read_text(encoding="utf-8").splitlines():
            if line.strip():
                label = json.loads(line)
                yield Sample(
                    folder if "crlf" not in label_file else "bounces-crlf",
                    corpus / folder / label["file"],
                    label,
                )


@dataclass
class Scores:
    hard_recipients: int = 0
    hard_found: int = 0
    predicted_addresses: int = 0
    correct_addresses: int = 0
    soft_mails: int = 0
    soft_called_soft: int = 0
    non_bounces: int = 0
    non_bounce_called_bounce: list[str] = field(default_factory=list)
    reply_mails: int = 0
    reply_correct: int = 0
    unsubscribes: int = 0
    unsubscribes_missed: list[str] = field(default_factory=list)
    per_category: dict[str, list[int]] = field(default_factory=dict)
    mistakes: list[str] = field(default_factory=list)

    @property
    def hard_recall(self) -> float:
        return self.hard_found / self.hard_recipients if self.hard_recipients else 1.0

    @property
    def address_precision(self) -> float:
        return self.correct_addresses / self.predicted_addresses if self.predicted_addresses else 1.0

    @property
    def soft_rate(self) -> float:
        return self.soft_called_soft / self.soft_mails if self.soft_mails else 1.0

    @property
    def reply_rate(self) -> float:
        return self.reply_correct / self.reply_mails if self.reply_mails else 1.0


def _accepted(label: dict[str, object]) -> set[str]:
    """Every accepted spelling of every failed recipient (address and alternates), lower-cased."""
    accepted: set[str] = set()
    details = label.get("details") or []
    assert isinstance(details, list)
    for detail in details:
        accepted.add(str(detail["address"]).lower())
        accepted.update(str(a).lower() for a in detail.get("alternates") or [])
    for address in label.get("recipients") or []:  # type: ignore[union-attr]
        accepted.add(str(address).lower())
    return accepted


def score(samples: list[Sample], verdict_of: Callable[[Sample], Verdict]) -> Scores:
    scores = Scores()
    for sample in samples:
        verdict = verdict_of(sample)
        expected = CATEGORY_KIND[sample.category]
        tally = scores.per_category.setdefault(f"{sample.folder}:{sample.category}", [0, 0])
        tally[1] += 1
        if verdict.kind is expected:
            tally[0] += 1
        elif sample.category not in ("hard_bounce",):
            scores.mistakes.append(f"{sample.path.name} [{sample.category}] → {verdict.kind.value}")
        predicted = [a.lower() for a in verdict.recipients]
        if sample.category in ("hard_bounce", "soft_bounce"):
            accepted = _accepted(sample.label)
            not_recipients = {str(a).lower() for a in sample.label.get("not_recipients") or []}  # type: ignore[union-attr]
            scores.predicted_addresses += len(predicted)
            scores.correct_addresses += sum(1 for a in predicted if a in accepted and a not in not_recipients)
            wrong = [a for a in predicted if a not in accepted or a in not_recipients]
            if wrong:
                scores.mistakes.append(f"{sample.path.name}: wrong address(es) {wrong}")
            if sample.category == "hard_bounce":
                details = sample.label.get("details") or []
                for detail in details:  # type: ignore[union-attr]
                    if detail["hard_or_soft"] != "hard":
                        continue
                    scores.hard_recipients += 1
                    spellings = {
                        str(detail["address"]).lower(),
                        *(str(a).lower() for a in detail["alternates"]),
                    }
                    if verdict.kind is InboundKind.HARD_BOUNCE and spellings & set(predicted):
                        scores.hard_found += 1
                    else:
                        scores.mistakes.append(
                            f"{sample.path.name} [hard] missed {detail['address']} → {verdict.kind.value} "
                            f"{list(predicted)}"
                        )
            else:
                scores.soft_mails += 1
                if verdict.kind is InboundKind.SOFT_BOUNCE:
                    scores.soft_called_soft += 1
        else:
            scores.non_bounces += 1
            if verdict.kind in BOUNCE_KINDS:
                scores.non_bounce_called_bounce.append(sample.path.name)
            if predicted and sample.category not in ("feedback_report",):
                scores.predicted_addresses += len(predicted)
        if sample.folder.startswith("replies"):
            scores.reply_mails += 1
            if verdict.kind is expected:
                scores.reply_correct += 1
            if expected is InboundKind.UNSUBSCRIBE:
                scores.unsubscribes += 1
                if verdict.kind is not InboundKind.UNSUBSCRIBE:
                    scores.unsubscribes_missed.append(sample.path.name)
    return scores


def cadence_verdict(sample: Sample) -> Verdict:
    return classify(sample.path.read_bytes())


@functools.lru_cache(maxsize=2)
def _corpus_scores(corpus: Path) -> Scores:
    return score(list(load_samples(corpus)), cadence_verdict)


@pytest.fixture
def corpus_scores(corpus_dir: Path) -> Scores:
    """Scores over the whole corpus, computed once per session (the classifier is pure)."""
    return _corpus_scores(corpus_dir)


def test_hard_bounce_recipient_recall(corpus_scores: Scores) -> None:
    assert corpus_scores.hard_recall >= 0.98, corpus_scores.mistakes


def test_address_precision(corpus_scores: Scores) -> None:
    assert corpus_scores.address_precision >= 0.995, corpus_scores.mistakes


def test_soft_bounces_called_soft(corpus_scores: Scores) -> None:
    assert corpus_scores.soft_rate >= 0.95, corpus_scores.mistakes


def test_no_non_bounce_called_a_bounce(corpus_scores: Scores) -> None:
    assert corpus_scores.non_bounce_called_bounce == []


def test_reply_categories(corpus_scores: Scores) -> None:
    assert corpus_scores.reply_rate >= 0.95, corpus_scores.mistakes
    assert corpus_scores.unsubscribes_missed == []
