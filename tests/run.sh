#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: lint, types, then pytest inside a private D-Bus
# session with an unlocked gnome-keyring (the real Secret Service backend) and Qt offscreen.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/setup.sh --test

echo "== ruff"
.venv/bin/ruff check desktop tests benchmarks
echo "== mypy (strict on core and services)"
.venv/bin/mypy desktop/cadence

echo "== pytest"
export QT_QPA_PLATFORM=offscreen
exec dbus-run-session -- sh -c '
  printf "cadence-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
  exec .venv/bin/python -m pytest "$@"' sh "$@"
