"""`cadence classify`: bounce / reply verdicts for .eml files, one JSON object per line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cadence.core.classify import classify
from cadence.core.model import InboundKind, Verdict

NAME = "classify"
HELP = "classify .eml files (bounces, complaints, auto-replies, unsubscribes, replies) as JSON lines"

# A mail bigger than this is not read whole: the verdict lives in its first part.
MAX_READ_BYTES = 4_000_000
_RECIPIENT_KINDS = frozenset({InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE, InboundKind.COMPLAINT})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=".eml files, directories (searched recursively for *.eml) or - for one message on stdin",
    )


def _record(file: str, verdict: Verdict) -> dict[str, Any]:
    record: dict[str, Any] = {
        "file": file,
        "kind": verdict.kind.value,
        "recipients": list(verdict.recipients) if verdict.kind in _RECIPIENT_KINDS else [],
        "status": verdict.status,
        "reason": verdict.reason,
        "address_dead": verdict.address_dead,
    }
    if verdict.error:
        record["error"] = verdict.error
    return record


def _error_record(file: str, message: str) -> dict[str, Any]:
    return {
        "file": file,
        "kind": InboundKind.OTHER.value,
        "recipients": [],
        "status": None,
        "reason": None,
        "address_dead": None,
        "error": message,
    }


def _eml_files(directory: Path) -> Iterator[Path]:
    """*.eml below `directory`, streamed in a stable order (sorted per directory), symlink loops skipped."""
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(".eml"):
                yield Path(root) / name


def _read(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_READ_BYTES)


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, without a traceback at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace) -> int:
    failures = 0
    for argument in args.paths:
        if argument == "-":
            data = sys.stdin.buffer.read(MAX_READ_BYTES)
            _emit(_record("-", classify(data)))
            continue
        path = Path(argument)
        if path.is_dir():
            for file in _eml_files(path):
                failures += _classify_file(file)
        elif path.exists():
            failures += _classify_file(path)
        else:
            _emit(_error_record(argument, "no such file or directory"))
            failures += 1
        sys.stdout.flush()
    return 1 if failures else 0


def _classify_file(path: Path) -> int:
    try:
        data = _read(path)
    except OSError as exc:
        _emit(_error_record(str(path), f"cannot read: {exc.strerror or exc}"))
        return 1
    _emit(_record(str(path), classify(data)))
    return 0
