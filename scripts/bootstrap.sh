#!/usr/bin/env bash
# Installs everything mailout needs to build, run and test on Debian 12.
# Idempotent: apt-get skips what is installed, npm ci/installs only when missing.
#   scripts/bootstrap.sh          build + run dependencies
#   scripts/bootstrap.sh --demo   also what the README's demo server needs
#   scripts/bootstrap.sh --test   also the test servers, fuzzing and benchmark tools
set -euo pipefail
want_test=0
want_demo=0
[ "${1:-}" = "--test" ] && want_test=1
[ "${1:-}" = "--demo" ] && want_demo=1

export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

build_pkgs=(build-essential meson ninja-build pkg-config ca-certificates
  libssl-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev libsodium-dev libidn2-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev llvm
  postfix dovecot-core python3 python3-aiosmtpd openssl curl msmtp swaks
  valgrind time procps python3-pytest dnsmasq-base tmux
  php-cli php-mbstring chromium wrk)

pkgs=("${build_pkgs[@]}")
[ "$want_test" -eq 1 ] && pkgs+=("${test_pkgs[@]}")
[ "$want_demo" -eq 1 ] && pkgs+=(python3 python3-aiosmtpd openssl)
# Node.js may come from elsewhere (with its own npm); take Debian's only when none is there.
if [ "$want_test" -eq 1 ] && ! command -v npm >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Postfix asks a question on install; we only use its binaries in tests, never as a system MTA.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$want_test" -eq 1 ]; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  if [ ! -d "$here/tests/node/node_modules/smtp-server" ] || [ ! -d "$here/tests/node/node_modules/nodemailer" ]; then
    (cd "$here/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # playwright-core drives Debian's chromium; it never downloads a browser of its own.
  if [ ! -d "$here/tests/browser/node_modules/playwright-core" ]; then
    (cd "$here/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
