#!/usr/bin/env bash
# The token cache against a real OS keychain on a headless Linux box: a Secret Service
# (gnome-keyring) on a private D-Bus session, with a throwaway HOME so nothing touches the
# user's own keyring. CI runs this; so can anyone as root on Debian/Ubuntu.
#
#   scripts/test-keychain.sh            (builds first if dist/ is missing)
#
# Without it, test/identity/token-cache-keychain.test.ts is skipped (GW_TEST_KEYCHAIN unset).
set -euo pipefail

cd "$(dirname "$0")/.."

need=()
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v dbus-run-session >/dev/null || need+=(dbus-x11)
command -v secret-tool >/dev/null || need+=(libsecret-tools)
if ((${#need[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends gnome-keyring dbus-x11 libsecret-tools >/dev/null
  else
    echo "missing: ${need[*]} (install them, e.g. sudo apt-get install gnome-keyring dbus-x11 libsecret-tools)" >&2
    exit 1
  fi
fi

# The CLI part of the test runs bin/gw, which loads dist/.
[[ -f dist/src/cli/main.js ]] || npm run build

home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
mkdir -p "$home/.local/share/keyrings" "$home/.cache"
chmod 700 "$home"

export HOME="$home" XDG_DATA_HOME="$home/.local/share" XDG_CACHE_HOME="$home/.cache"
export XDG_CONFIG_HOME="$home/.config" XDG_RUNTIME_DIR="$home/run"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset DBUS_SESSION_BUS_ADDRESS

exec dbus-run-session -- sh -c '
  echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
  GW_TEST_KEYCHAIN=1 npx vitest run test/identity/token-cache-keychain.test.ts "$@"
' sh "$@"
