#!/usr/bin/env bash
# Installs the built bundle (dist/cadence/, from packaging/build.sh) for one user, or under any prefix:
#   packaging/linux/install-bundle.sh                 into ~/.local (the menu entry appears at next login)
#   packaging/linux/install-bundle.sh --prefix DIR    into DIR/lib/cadence, DIR/bin/cadence, DIR/share/…
# Run it again to upgrade; remove DIR/lib/cadence, DIR/bin/cadence and the share/ files to uninstall.
set -euo pipefail
cd "$(dirname "$0")/../.."

prefix="$HOME/.local"
if [ "${1:-}" = "--prefix" ]; then
  [ -n "${2:-}" ] || { echo "install-bundle: --prefix needs a folder" >&2; exit 2; }
  prefix=$2
elif [ -n "${1:-}" ]; then
  echo "install-bundle: unknown argument $1 (use --prefix DIR)" >&2
  exit 2
fi

bundle=dist/cadence
if [ ! -x "$bundle/cadence" ]; then
  echo "install-bundle: no bundle in $bundle; run packaging/build.sh first" >&2
  exit 1
fi

mkdir -p "$prefix/lib" "$prefix/bin" "$prefix/share"
rm -rf "$prefix/lib/cadence.new"
cp -a "$bundle" "$prefix/lib/cadence.new"
rm -rf "$prefix/lib/cadence.new/share"
rm -rf "$prefix/lib/cadence"
mv "$prefix/lib/cadence.new" "$prefix/lib/cadence"
ln -sfn "../lib/cadence/cadence" "$prefix/bin/cadence"
cp -a "$bundle/share/." "$prefix/share/"
# The menu entry names the installed command by its full path: a session's PATH may lack $prefix/bin.
desktop_file="$prefix/share/applications/io.github.cadence_outreach.Cadence.desktop"
sed -i -e "s|^Exec=cadence|Exec=\"$prefix/bin/cadence\"|" -e "s|^TryExec=cadence|TryExec=$prefix/bin/cadence|" \
  "$desktop_file"

# Refresh the desktop's caches where the tools exist; a missing tool only delays the menu entry.
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database -q "$prefix/share/applications" || true
fi
if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$prefix/share/icons/hicolor/index.theme" ]; then
  gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" || true
fi
echo "install-bundle: installed into $prefix (command: $prefix/bin/cadence)"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "install-bundle: note: $prefix/bin is not on PATH; add it to run 'cadence' from a terminal" ;;
esac
