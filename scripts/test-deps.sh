#!/usr/bin/env bash
# Installs, from Debian's packages, the servers the tests run for real: Dovecot (IMAP),
# PostgreSQL and Chromium (the widget's browser tests). Only what is missing; quiet.
set -euo pipefail

missing=()
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/test-deps.log 2>&1; then
    $SUDO apt-get update -qq >>/tmp/test-deps.log 2>&1 || true
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/test-deps.log 2>&1 \
      || { echo "test-deps: could not install ${missing[*]} (see /tmp/test-deps.log)" >&2; exit 1; }
  fi
  # Debian starts the packaged services; the tests start their own on free ports.
  $SUDO systemctl disable --now dovecot postgresql >/dev/null 2>&1 || true
fi
