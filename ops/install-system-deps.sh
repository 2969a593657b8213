#!/usr/bin/env bash
# System packages the tests need: Chromium (the browser tests of the published pages and
# `capkit report --screenshots`) and DejaVu fonts (figures and pages render the same everywhere).
# Installs with apt-get when run as root or under CI=true; otherwise says what to run and exits 0.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1 || { [ -n "${CAPKIT_CHROMIUM:-}" ] && command -v "$CAPKIT_CHROMIUM" >/dev/null 2>&1; }
}

if have_chromium; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: Chromium is missing and apt-get is not available; install Chromium and set CAPKIT_CHROMIUM" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = "true" ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-system-deps: Chromium is missing; the browser tests will skip. Install it with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y chromium fonts-dejavu-core" >&2
    exit 0
  fi
fi
echo "install-system-deps: installing chromium and fonts-dejavu-core (apt-get)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
