#!/usr/bin/env bash
# The system packages the tests run for real, from Debian: Dovecot (IMAP), PostgreSQL,
# Chromium (the widget page's browser tests) and Thunderbird with Xvfb and openbox (the
# extension's own test). Installs only what is missing, runs
# `apt-get update` only when an install needs it, prints nothing when all is there, and
# fails with one line (details in the log) when an install fails. Idempotent; `make test`
# runs it as root. npm packages (addons-linter) are the widget's Makefile target's job.
set -euo pipefail

LOG="${TMPDIR:-/tmp}/mailwidget-test-deps.log"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

missing=()
{ [ -x /usr/lib/dovecot/imap ] && { command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ]; }; } \
  || installed dovecot-imapd || missing+=(dovecot-imapd)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || installed postgresql || missing+=(postgresql)
command -v chromium >/dev/null || installed chromium || missing+=(chromium)
# The extension's proof in a real mail client: Thunderbird under a virtual display, with a
# window manager (without one a click inside the extension's popup closes it).
command -v thunderbird >/dev/null || installed thunderbird || missing+=(thunderbird)
command -v Xvfb >/dev/null || installed xvfb || missing+=(xvfb)
command -v openbox >/dev/null || installed openbox || missing+=(openbox)
# A Japanese font, so the screenshots in test-artifacts/ show Japanese mail as text.
fc-list :lang=ja 2>/dev/null | grep -q . || installed fonts-ipafont-gothic || missing+=(fonts-ipafont-gothic)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "test-deps: need root to install ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() { $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; }

echo "test-deps: installing ${missing[*]}"
: >"$LOG"
# The package lists may be missing or stale (fresh container): update once, only then.
if ! apt_install; then
  $SUDO apt-get update -qq >>"$LOG" 2>&1 || true
  apt_install || { echo "test-deps: could not install ${missing[*]} (see $LOG)" >&2; exit 1; }
fi
# Debian starts the packaged services on their standard ports; the tests start their own
# on free ports and need none of them.
for service in dovecot postgresql; do
  $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || $SUDO service "$service" stop >/dev/null 2>&1 || true
done
