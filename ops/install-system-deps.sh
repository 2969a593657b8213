#!/usr/bin/env bash
# Install the Debian packages capkit's real parts need, only those missing.
# Usage: ops/install-system-deps.sh [PACKAGE…]   (no arguments: every package of PACKAGES below)
# Installs with apt-get when run as root (or with passwordless sudo). Otherwise it names what is
# missing: under CI=true that is an error (exit 1: CI must run every test), elsewhere a warning
# (exit 0: the tests that need the package skip). Packages already installed are left alone, so it
# is cheap to call before every `make test`.
set -euo pipefail

# one line per part that needs a system package
PACKAGES=(
  chromium           # the browser checks of the published pages, capkit report --screenshots
  fonts-dejavu-core  # figures and pages render the same everywhere
  pgbouncer          # ops/plan-postgres.sh --pgbouncer, tests/service/test_pgbouncer.py, --replicas --pgbouncer
  haproxy            # the load balancer of a --replicas fleet (docs/fleet.md), tests/runs/test_fleet.py
)

wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=("${PACKAGES[@]}")

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

give_up() {
  echo "install-system-deps: $1" >&2
  [[ "${CI:-}" == "true" ]] && exit 1
  exit 0
}
command -v apt-get >/dev/null || give_up "no apt-get here; install ${missing[*]} with this system's package manager"
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  give_up "missing Debian packages: ${missing[*]}; run as root: sudo $0 ${missing[*]}"
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
