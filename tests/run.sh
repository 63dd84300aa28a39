#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: lint, types, then pytest inside a private D-Bus
# session with an unlocked gnome-keyring (the real Secret Service backend) and Qt offscreen.
# The keyring, Qt settings and data directories live in a throw-away HOME, never in the user's own.
# Arguments go to pytest: `./tests/run.sh tests/stack` runs only the chaos suite (and prints its figures).
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/setup.sh --test

echo "== ruff"
.venv/bin/ruff check desktop tests benchmarks
echo "== mypy (strict on core and services)"
.venv/bin/mypy desktop/cadence

echo "== pytest"
test_home=$(mktemp -d /tmp/cadence-test-home.XXXXXX)
trap 'rm -rf "$test_home"' EXIT
mkdir -m 700 "$test_home/run"
export HOME="$test_home" XDG_RUNTIME_DIR="$test_home/run" XDG_DATA_HOME="$test_home/.local/share" \
  XDG_CONFIG_HOME="$test_home/.config" XDG_CACHE_HOME="$test_home/.cache" QT_QPA_PLATFORM=offscreen
# the chaos suite (tests/stack) appends its figures here; they are printed after the run
export CADENCE_CHAOS_REPORT="$test_home/chaos-figures.jsonl"
status=0
dbus-run-session -- sh -c '
  printf "cadence-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
  exec "$0" -m pytest "$@"' "$PWD/.venv/bin/python" "$@" || status=$?
if [ -s "$CADENCE_CHAOS_REPORT" ]; then
  echo "== chaos figures"
  .venv/bin/python -m tests.stack.chaos --figures-only "$CADENCE_CHAOS_REPORT" || true
fi
exit "$status"
