#!/usr/bin/env bash
# Install the Debian packages capkit's real parts need, only those missing.
# Usage: ops/install-system-deps.sh [PACKAGE…]   (no arguments: every package of PACKAGES below)
# Installs with apt-get when run as root (or with passwordless sudo); otherwise names what is
# missing and exits 1. Packages already installed are left alone, so it is cheap to call often.
set -euo pipefail

# one line per part that needs a system package: merge others' entries here
PACKAGES=(
  pgbouncer  # ops/plan-postgres.sh --pgbouncer, tests/service/test_pgbouncer.py
)

wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=("${PACKAGES[@]}")

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-system-deps: missing Debian packages: ${missing[*]}; run as root: sudo $0 ${missing[*]}" >&2
  exit 1
fi
command -v apt-get >/dev/null || {
  echo "install-system-deps: no apt-get here; install ${missing[*]} with this system's package manager" >&2
  exit 1
}
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
