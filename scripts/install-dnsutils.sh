#!/usr/bin/env bash
# Installs Debian's dnsutils (/usr/bin/dig), which the cluster DNS tests query the server with (idempotent).
set -euo pipefail
if command -v dig >/dev/null 2>&1; then
  exit 0
fi
echo "installing dnsutils (Debian package)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q dnsutils >/dev/null; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -q dnsutils >/dev/null
fi
dig -v
