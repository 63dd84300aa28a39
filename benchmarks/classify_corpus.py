"""Classifier figures on the labelled corpus: per-category scores, throughput of Cadence and flufl.bounce on
the same mails in the same run, and flufl.bounce's own bounce detection for comparison.

    .venv/bin/python benchmarks/classify_corpus.py [--corpus DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import email
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "desktop"), str(REPO)]

from tests.unit.test_classify_corpus import Sample, load_samples, score  # noqa: E402

from cadence.core.classify import classify  # noqa: E402
from cadence.core.model import InboundKind, Verdict  # noqa: E402


def _throughput(
    contenders: dict[str, Callable[[bytes], object]], messages: list[bytes], rounds: int
) -> dict[str, float]:
    """Messages per second of CPU time, best of `rounds`. The contenders take turns round by round so
    that load from other processes on a shared machine hits both alike."""
    best_cpu = dict.fromkeys(contenders, float("inf"))
    best_wall = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, work in contenders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for raw in messages:
                work(raw)
            best_cpu[name] = min(best_cpu[name], time.process_time() - cpu)
            best_wall[name] = min(best_wall[name], time.perf_counter() - wall)
    rates = {}
    for name in contenders:
        rates[name] = len(messages) / best_cpu[name]
        print(
            f"  {name:<14} {rates[name]:7.0f} messages/s of CPU  (best of {rounds}: "
            f"{best_cpu[name] * 1000:.0f} ms CPU, {best_wall[name] * 1000:.0f} ms wall)"
        )
    return rates


def _row(label: str, value: str, detail: str) -> None:
    print(f"  {label:<31}{value:>8}  {detail}")


def _flufl_failures(raw: bytes) -> tuple[frozenset[bytes], frozenset[bytes]]:
    from flufl.bounce import all_failures

    try:
        return all_failures(email.message_from_bytes(raw))
    except Exception:  # flufl raises on some broken mail; count it as 'nothing found'
        return frozenset(), frozenset()


def _flufl_verdict(sample: Sample) -> Verdict:
    temporary, permanent = _flufl_failures(sample.path.read_bytes())
    if permanent:
        recipients = tuple(a.decode("utf-8", "replace").lower() for a in sorted(permanent))
        return Verdict(kind=InboundKind.HARD_BOUNCE, recipients=recipients)
    if temporary:
        recipients = tuple(a.decode("utf-8", "replace").lower() for a in sorted(temporary))
        return Verdict(kind=InboundKind.SOFT_BOUNCE, recipients=recipients)
    return Verdict(kind=InboundKind.OTHER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    samples = list(load_samples(args.corpus))
    if not samples:
        print(f"no labelled mail under {args.corpus}", file=sys.stderr)
        return 1
    print(f"corpus: {args.corpus} ({len(samples)} labelled mails)\n")

    scores = score(samples, lambda s: classify(s.path.read_bytes()))
    print("Cadence, per category (folder:category  correct/total):")
    for key, (correct, total) in sorted(scores.per_category.items()):
        print(f"  {key:<40} {correct:4d}/{total:<4d} {correct / total:7.1%}")
    print("\nCadence against the goals:")
    _row(
        "hard-bounce recipient recall",
        f"{scores.hard_recall:.2%}",
        f"({scores.hard_found}/{scores.hard_recipients}; goal >= 98 %)",
    )
    _row(
        "address precision",
        f"{scores.address_precision:.2%}",
        f"({scores.correct_addresses}/{scores.predicted_addresses}; goal >= 99.5 %)",
    )
    _row(
        "soft bounces called soft",
        f"{scores.soft_rate:.2%}",
        f"({scores.soft_called_soft}/{scores.soft_mails}; goal >= 95 %)",
    )
    _row(
        "non-bounces called a bounce",
        str(len(scores.non_bounce_called_bounce)),
        f"of {scores.non_bounces} (goal 0)",
    )
    _row(
        "reply categories correct",
        f"{scores.reply_rate:.2%}",
        f"({scores.reply_correct}/{scores.reply_mails}; goal >= 95 %)",
    )
    _row(
        "unsubscribe requests missed",
        str(len(scores.unsubscribes_missed)),
        f"of {scores.unsubscribes} (goal 0)",
    )

    flufl = score(samples, _flufl_verdict)
    print("\nflufl.bounce 6 on the same mails:")
    _row(
        "hard-bounce recipient recall",
        f"{flufl.hard_recall:.2%}",
        f"({flufl.hard_found}/{flufl.hard_recipients})",
    )
    _row(
        "address precision",
        f"{flufl.address_precision:.2%}",
        f"({flufl.correct_addresses}/{flufl.predicted_addresses})",
    )
    _row(
        "non-bounces called a bounce",
        str(len(flufl.non_bounce_called_bounce)),
        f"of {flufl.non_bounces} ({', '.join(flufl.non_bounce_called_bounce) or '-'})",
    )

    messages = [sample.path.read_bytes() for sample in samples]
    print("\nThroughput (parse + classify from raw bytes, same mails, same run):")
    rates = _throughput({"cadence": classify, "flufl.bounce": _flufl_failures}, messages, args.rounds)
    cadence_rate, flufl_rate = rates["cadence"], rates["flufl.bounce"]
    print(f"  ratio: Cadence is {cadence_rate / flufl_rate:.2f}x flufl.bounce (goal >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
