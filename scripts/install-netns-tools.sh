#!/usr/bin/env bash
# Installs what netns mode uses (idempotent): nftables (`nft`, istio-init's capture and kube-proxy rules),
# iproute2 (`ip`: namespaces, veths, the bridge) and dnsutils (`dig`, for the DNS tests).
set -euo pipefail
missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}" >/dev/null; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -q "${missing[@]}" >/dev/null
fi
