#!/usr/bin/env bash
# What `npm test` runs (after `npm run build`): the tools npm cannot bring, then vitest.
#
# The tests start real PostgreSQL and OpenSSH servers and make real certificates, so they need
# the PostgreSQL server and client binaries, openssh-server (with its clients) and openssl. As root with apt (CI, a fresh Debian 12),
# they are installed; otherwise the missing Debian packages are named and we stop.
set -euo pipefail

cd "$(dirname "$0")/.."

# The newest /usr/lib/postgresql/N/bin holding `tool`, else PATH; empty when neither has it.
find_pg_tool() {
  local tool=$1 dir
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4,4 -rV); do
    if [[ -x "$dir/$tool" ]]; then
      echo "$dir/$tool"
      return
    fi
  done
  command -v "$tool" || true
}

missing_packages() {
  local pkgs=()
  if [[ -z "$(find_pg_tool initdb)" || -z "$(find_pg_tool pg_ctl)" ]]; then pkgs+=(postgresql); fi
  # pgbench ships with the server package on Debian 12 (postgresql-15); contrib for older layouts.
  if [[ -z "$(find_pg_tool pgbench)" ]]; then pkgs+=(postgresql-contrib); fi
  if [[ -z "$(find_pg_tool psql)" ]]; then pkgs+=(postgresql-client); fi
  if ! command -v openssl >/dev/null; then pkgs+=(openssl); fi
  # The terminal UIs are tested in a real terminal.
  if ! command -v tmux >/dev/null; then pkgs+=(tmux); fi
  # Replay exports asciicast files; the tests play them with the real asciinema.
  if ! command -v asciinema >/dev/null; then pkgs+=(asciinema); fi
  if ! command -v script >/dev/null; then pkgs+=(bsdutils); fi
  # ssh connections are tested against a real sshd with the real ssh, scp and sftp clients.
  if [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null; then pkgs+=(openssh-server); fi
  if ((${#pkgs[@]} > 0)); then echo "${pkgs[*]}"; fi
}

missing=$(missing_packages)
if [[ -n "$missing" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test.sh: installing missing system packages ($missing)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # The postgresql package may create and start a cluster on port 5432; the tests do not use
    # it (each starts its own server on a free port), so it is left alone.
    apt-get install -y --no-install-recommends postgresql postgresql-contrib postgresql-client openssl tmux asciinema bsdutils openssh-server
    missing=$(missing_packages)
    if [[ -n "$missing" ]]; then
      echo "test.sh: still missing after apt-get install: $missing" >&2
      exit 1
    fi
  else
    echo "test.sh: the tests need these Debian packages, which are not installed: $missing" >&2
    echo "test.sh: install them with: sudo apt-get install -y $missing (or run npm test as root)" >&2
    exit 1
  fi
fi

# A full run (no arguments) also holds the tree to its static checks, as CI does.
if [[ $# -eq 0 ]]; then
  echo "test.sh: typecheck, lint, format" >&2
  npx tsc --noEmit -p .
  npx eslint .
  npx prettier --check . >/dev/null || { npx prettier --list-different .; echo "test.sh: run npm run format" >&2; exit 1; }
fi

if [[ $# -gt 0 ]]; then exec npx vitest run "$@"; fi

npx vitest run
# The real OS keychain needs a Secret Service on a D-Bus session: a separate process tree.
echo "test.sh: token cache against a real keychain (gnome-keyring)" >&2
bash scripts/test-keychain.sh
