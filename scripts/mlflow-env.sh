#!/usr/bin/env bash
# Installs MLflow (pinned) into a cached venv for the MLflow backend's tests and
# prints the path of its `mlflow` executable. The venv is reused while the pin is
# unchanged (.cache/ is git-ignored); a fresh machine needs PyPI and ~2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
MLFLOW_VERSION="3.17.2"
venv=".cache/mlflow-venv"
stamp="$venv/.installed-$MLFLOW_VERSION"
if [ ! -f "$stamp" ]; then
    echo "==> installing mlflow==$MLFLOW_VERSION into $venv (once)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow==$MLFLOW_VERSION" >&2
    touch "$stamp"
fi
echo "$PWD/$venv/bin/mlflow"
