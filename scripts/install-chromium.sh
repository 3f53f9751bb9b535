#!/usr/bin/env bash
# Installs Debian's Chromium (/usr/bin/chromium), the browser the console's Playwright tests drive (idempotent).
# Playwright's own browser download is never used: it needs the internet, which this machine does not have.
set -euo pipefail
if /usr/bin/chromium --version >/dev/null 2>&1; then
  exit 0
fi
echo "installing chromium (Debian package)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium >/dev/null; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -q chromium >/dev/null
fi
/usr/bin/chromium --version
