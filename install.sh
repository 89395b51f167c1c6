#!/usr/bin/env bash
# Installs gw from this checkout: the built package into PREFIX/lib/gw, a `gw` launcher into
# PREFIX/bin, and completions for bash, zsh and fish. Running it again updates in place.
#
#   ./install.sh                   # into ~/.local (/usr/local as root), or $GW_PREFIX
#   ./install.sh --prefix DIR      # into DIR/bin, DIR/lib/gw, DIR/share/...
#   ./install.sh --no-build        # install dist/ as it is (no npm ci, no build)
#   ./install.sh --uninstall       # removes what an install put there (same --prefix)
#
# Needs Node.js 20 or newer (and npm, to build). The checkout can be moved or deleted afterwards.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [[ -n "${GW_PREFIX:-}" ]]; then
  prefix="$GW_PREFIX"
elif [[ $(id -u) -eq 0 ]]; then
  prefix=/usr/local
else
  prefix="$HOME/.local"
fi
uninstall=0
build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix)
      [[ $# -ge 2 ]] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
      prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#*=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

bindir="$prefix/bin"
libdir="$prefix/lib/gw"
launcher="$bindir/gw"
bash_completion="$prefix/share/bash-completion/completions/gw"
zsh_completion="$prefix/share/zsh/site-functions/_gw"
# fish reads vendor_completions.d under its own prefix and XDG data dirs only; for a user
# install the per-user completions dir is the one it always reads.
if [[ "$prefix" == "$HOME/.local" ]]; then
  fish_completion="${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions/gw.fish"
else
  fish_completion="$prefix/share/fish/vendor_completions.d/gw.fish"
fi
# Marks what install.sh wrote, so --uninstall removes only that.
marker="# gw launcher, written by install.sh"

say() { printf '%s\n' "$*"; }

if [[ $uninstall -eq 1 ]]; then
  removed=0
  if [[ -f "$launcher" ]] && grep -qF "$marker" "$launcher"; then
    rm -f "$launcher"; say "removed $launcher"; removed=1
  elif [[ -L "$launcher" && "$(readlink "$launcher")" == */bin/gw ]]; then
    rm -f "$launcher"; say "removed $launcher (link from an older install.sh)"; removed=1
  fi
  if [[ -f "$libdir/.gw-install" ]]; then
    rm -rf "$libdir"; say "removed $libdir"; removed=1
  fi
  for f in "$bash_completion" "$zsh_completion" "$fish_completion"; do
    if [[ -f "$f" ]] && grep -q "completion for gw, generated" "$f"; then
      rm -f "$f"; say "removed $f"; removed=1
    fi
  done
  [[ $removed -eq 1 ]] || say "gw is not installed in $prefix"
  exit 0
fi

# --- Node.js ---------------------------------------------------------------------------------
node_help() {
  cat >&2 <<'EOF'
  Get it from your package manager or nodejs.org:
    Debian/Ubuntu: curl -fsSL https://deb.nodesource.com/setup_22.x | sudo -E bash - && sudo apt-get install -y nodejs
    macOS:         brew install node
    any OS:        nvm install 22   (https://github.com/nvm-sh/nvm)
EOF
}
if ! command -v node >/dev/null 2>&1; then
  echo "install.sh: gw needs Node.js 20 or newer, and node was not found on PATH." >&2
  node_help
  exit 1
fi
node_bin="$(command -v node)"
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
  echo "install.sh: Node.js $(node --version) is too old; gw needs Node.js 20 or newer." >&2
  node_help
  exit 1
fi

# --- build in the checkout (only what is out of date) ------------------------------------------
cd "$here"
if [[ $build -eq 1 ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: npm is needed to build gw (it comes with Node.js)." >&2
    exit 1
  fi
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    say "installing dependencies (npm ci)..."
    npm ci --no-audit --no-fund --loglevel=error
  fi
  if [[ ! -f dist/src/cli/main.js ]] || [[ -n "$(find src -newer dist/src/cli/main.js -name '*.ts' -print -quit)" ]]; then
    say "building..."
    npm run --silent build
  fi
fi
if [[ ! -f dist/src/cli/main.js || ! -d node_modules ]]; then
  echo "install.sh: no build in $here (dist/ or node_modules/ missing); run without --no-build." >&2
  exit 1
fi

# --- copy the package: dist, bin, production dependencies ------------------------------------
mkdir -p "$prefix/lib" "$bindir"
stage="$(mktemp -d "$prefix/lib/.gw-install.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp -R bin dist package.json "$stage/"
[[ -f README.md ]] && cp README.md "$stage/"
mkdir -p "$stage/completions"
for shell in bash zsh fish; do
  if [[ -f "completions/gw.$shell" ]]; then
    cp "completions/gw.$shell" "$stage/completions/"
  else
    "$node_bin" bin/gw completion "$shell" >"$stage/completions/gw.$shell"
  fi
done
# Production dependencies only (no compilers, linters or test runners): the top-level
# node_modules entries `npm ls --omit=dev` names, copied whole.
mkdir -p "$stage/node_modules"
deps="$(npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s|^$here/node_modules/||p" |
  awk -F/ '{ if ($1 ~ /^@/) print $1 "/" $2; else print $1 }' | sort -u || true)"
if [[ -z "$deps" ]]; then
  cp -R node_modules/. "$stage/node_modules/"
else
  while IFS= read -r dep; do
    [[ -n "$dep" && -e "node_modules/$dep" ]] || continue
    mkdir -p "$stage/node_modules/$(dirname "$dep")"
    cp -R "node_modules/$dep" "$stage/node_modules/$dep"
  done <<<"$deps"
fi
printf 'installed from %s\n' "$here" >"$stage/.gw-install"

action=installed
if [[ -e "$libdir" ]]; then
  action=updated
  old="$prefix/lib/.gw-old.$$"
  mv "$libdir" "$old"
  mv "$stage" "$libdir"
  rm -rf "$old"
else
  mv "$stage" "$libdir"
fi
trap - EXIT

# --- launcher -----------------------------------------------------------------------------------
tmp_launcher="$(mktemp "$bindir/.gw.XXXXXX")"
cat >"$tmp_launcher" <<EOF
#!/bin/sh
$marker
# Runs $libdir with the Node.js it was installed with, else the one on PATH.
node="$node_bin"
[ -x "\$node" ] || node=node
exec "\$node" "$libdir/bin/gw" "\$@"
EOF
chmod 755 "$tmp_launcher"
mv -f "$tmp_launcher" "$launcher"

# --- completions ---------------------------------------------------------------------------------
install_file() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}
install_file "$libdir/completions/gw.bash" "$bash_completion"
install_file "$libdir/completions/gw.zsh" "$zsh_completion"
install_file "$libdir/completions/gw.fish" "$fish_completion"

version="$("$launcher" --version)"
say "$action gw $version"
say "  $launcher"
say "  $libdir"
say "  completions: $bash_completion"
say "               $zsh_completion"
say "               $fish_completion"

# --- next steps ----------------------------------------------------------------------------------
say ""
case ":$PATH:" in
  *":$bindir:"*) ;;
  *) say "Add $bindir to your PATH:  export PATH=\"$bindir:\$PATH\"  (in your shell's rc file)" ;;
esac
case "$(basename "${SHELL:-}")" in
  zsh)
    say "zsh: completion needs $prefix/share/zsh/site-functions in \$fpath before compinit, e.g. in ~/.zshrc:"
    say "     fpath=($prefix/share/zsh/site-functions \$fpath); autoload -Uz compinit; compinit"
    ;;
  bash)
    if [[ "$prefix" != /usr && "$prefix" != /usr/local && "$prefix" != "$HOME/.local" ]]; then
      say "bash: completion is in $bash_completion; add to ~/.bashrc:  source $bash_completion"
    else
      say "bash: completion works in new shells (with the bash-completion package)."
    fi
    ;;
  fish) say "fish: completion works in new shells." ;;
esac
say ""
say "Next:"
say "  gw demo                                    # everything on this machine, with a guided tour"
say "  gw login --broker https://gw.example.com   # or sign in to your broker"
say "  gw --help"
