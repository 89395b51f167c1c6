#!/usr/bin/env bash
# Installs gw from this checkout: checks Node, installs dependencies, builds, and links `gw`
# into a bin directory on your PATH.
#
#   ./install.sh                  # into ~/.local (or /usr/local as root)
#   ./install.sh --prefix DIR     # into DIR/bin
#   ./install.sh --uninstall      # removes the link
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [[ $(id -u) -eq 0 ]]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
uninstall=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
bindir="$prefix/bin"

if [[ $uninstall -eq 1 ]]; then
  if [[ -L "$bindir/gw" ]]; then rm "$bindir/gw"; echo "removed $bindir/gw"; else echo "no gw link in $bindir"; fi
  exit 0
fi

if ! command -v node >/dev/null; then
  echo "install.sh: Node.js 20 or newer is required and was not found." >&2
  echo "  Debian/Ubuntu: sudo apt-get install nodejs npm   (or use nvm: https://github.com/nvm-sh/nvm)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if (( major < 20 )); then
  echo "install.sh: Node.js $(node --version) is too old; gw needs Node.js 20 or newer." >&2
  exit 1
fi

cd "$here"
echo "installing dependencies..."
npm ci --no-audit --no-fund --loglevel=error
echo "building..."
npm run --silent build

mkdir -p "$bindir"
ln -sfn "$here/bin/gw" "$bindir/gw"
echo "installed: $bindir/gw -> $here/bin/gw ($("$bindir/gw" --version))"
case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo "note: $bindir is not on your PATH; add it: export PATH=\"$bindir:\$PATH\"" ;;
esac
echo
echo "next: gw --help"
