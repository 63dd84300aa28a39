#!/usr/bin/env bash
# Sets up Cadence on a Debian/Ubuntu machine: system packages, a virtualenv in .venv, the app itself.
#   packaging/setup.sh          what the app needs to run (Qt's xcb libraries, a keyring daemon)
#   packaging/setup.sh --test   plus what the tests need (Dovecot, Postfix, Xvfb, the test extras)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

run_packages=(python3 python3-venv python3-pip libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0
  libxcb-image0 libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 gnome-keyring dbus)
test_packages=(dovecot-imapd dovecot-lmtpd postfix xvfb xauth dbus-x11 desktop-file-utils appstream file binutils)

packages=("${run_packages[@]}")
[ "$want_test" = 1 ] && packages+=("${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # Postfix asks a question on install; the tests bring their own configuration.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged Dovecot starts a system instance on 143/993; the tests start their own.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now dovecot postfix >/dev/null 2>&1 || true
  fi
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
  echo "setup: Cadence needs Python 3.11 to 3.13 (qasync does not run on 3.14); set PYTHON=python3.12" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$want_test" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "setup: ready ($(.venv/bin/python --version))"
