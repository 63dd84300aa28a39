#!/usr/bin/env bash
# Builds the one-folder bundle dist/cadence/ with PyInstaller (installed into .venv if missing), then runs
# the bundle's own self-check unless --no-check is given.
#   packaging/build.sh              build, add the Linux desktop files under dist/cadence/share/, self-check
#   packaging/build.sh --no-check   build only
# Needs the virtualenv from packaging/setup.sh. The self-check needs a Secret Service session for its keyring
# check (tests/run.sh and tests/integration/test_bundle.py provide one).
set -euo pipefail
cd "$(dirname "$0")/.."

run_check=1
[ "${1:-}" = "--no-check" ] && run_check=0

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "build: no virtualenv in .venv; run packaging/setup.sh first" >&2
  exit 1
fi
if ! "$PY" -c 'import PyInstaller' 2>/dev/null; then
  echo "build: installing PyInstaller into .venv"
  "$PY" -m pip install -q "pyinstaller>=6.10"
fi
if "$PY" -c 'import keyrings.alt' 2>/dev/null; then
  echo "build: note: keyrings.alt is installed in .venv; the bundle excludes it (it stores secrets in plain files)"
fi

"$PY" packaging/render_icons.py --check

"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/cadence.spec

# The Python runtime and some wheels carry debug sections (libpython alone: ~20 MB). Drop only those:
# a full strip of every library can break wheels that append data to their ELF files.
if command -v strip >/dev/null 2>&1 && command -v file >/dev/null 2>&1; then
  find dist/cadence/_internal -type f -name '*.so*' -exec file {} + | grep 'with debug_info' | cut -d: -f1 |
    while read -r library; do strip --strip-debug "$library"; done
fi

# Desktop integration files, laid out as under /usr (or ~/.local): copy share/ there to install them.
app_id=io.github.cadence_outreach.Cadence
share=dist/cadence/share
mkdir -p "$share/applications" "$share/metainfo" "$share/icons/hicolor/scalable/apps"
cp packaging/linux/$app_id.desktop "$share/applications/"
cp packaging/linux/$app_id.metainfo.xml "$share/metainfo/"
cp resources/icons/cadence.svg "$share/icons/hicolor/scalable/apps/$app_id.svg"
for size in 16 32 48 64 128 256 512; do
  mkdir -p "$share/icons/hicolor/${size}x${size}/apps"
  cp "resources/icons/cadence-$size.png" "$share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done

echo "build: dist/cadence/ is $(du -sh dist/cadence | cut -f1) ($(find dist/cadence -type f | wc -l) files)"
if [ "$run_check" = 1 ]; then
  if ! dist/cadence/cadence self-check; then
    echo "build: the bundle is built, but its self-check failed (see above)" >&2
    exit 1
  fi
fi
