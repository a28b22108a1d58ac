#!/usr/bin/env bash
# Creates .venv (if missing) and installs codesearch with everything its tests and exports need.
# Idempotent: a second run only checks. torch is pinned to the CPU build that this project's
# machines carry; a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.codesearch-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==${CODESEARCH_TORCH_VERSION:-2.13.0}"
  .venv/bin/python -m pip install -q -e ".[train,dev]"
  echo "$want" > "$stamp"
fi
