#!/usr/bin/env bash
# Installs Debian's prometheus and promtool binaries into .tools/bin (idempotent), unpacked with dpkg -x rather than installed:
# the package would start a system service on :9090, the port sluice's own Prometheus API uses.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/.tools/bin"
mkdir -p "$bin"
if "$bin/prometheus" --version >/dev/null 2>&1 && "$bin/promtool" --version >/dev/null 2>&1; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "installing prometheus (Debian package, unpacked)"
if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
  apt-get update -qq >/dev/null 2>&1 || true
  (cd "$work" && apt-get download prometheus >/dev/null)
fi
dpkg -x "$work"/prometheus_*.deb "$work/deb"
install -m 0755 "$work/deb/usr/bin/prometheus" "$bin/prometheus"
install -m 0755 "$work/deb/usr/bin/promtool" "$bin/promtool"  # backfills the query benchmark's data
"$bin/prometheus" --version 2>&1 | sed -n 1p
