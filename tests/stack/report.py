"""Figures the chaos suite reports (kills, duplicates, lost, faults survived, bad inputs tried).

A test calls `record(name, **figures)`; when `CADENCE_CHAOS_REPORT` names a file, one JSON line is appended
to it (the figures script reads them back), and the line is always printed so `pytest -s` shows it too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPORT_ENV = "CADENCE_CHAOS_REPORT"


def record(name: str, **figures: Any) -> None:
    line = json.dumps({"name": name, "at": time.time(), **figures}, default=str, sort_keys=True)
    print(f"chaos-figure {line}")
    target = os.environ.get(REPORT_ENV)
    if target:
        with Path(target).open("a", encoding="utf-8") as report:
            report.write(line + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
