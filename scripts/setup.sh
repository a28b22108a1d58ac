#!/usr/bin/env bash
# Creates .venv (if missing) and installs codesearch into it.
#
#   scripts/setup.sh          the engine, CLI and language server. With a shipped default model
#                             (models/codesearch_models/default) that is all searching needs: no torch,
#                             no transformers. Without one, the default is the base model, exported
#                             once on first use, so torch and the export extra are installed too.
#   scripts/setup.sh --dev    also the CPU build of torch and the train/export/dev extras (what the
#                             tests, training and exporting other models need; scripts/test.sh uses it)
#
# Idempotent: a second run only checks a stamp. torch is pinned to the CPU build that this project's
# machines carry; a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mode=base
case "${1:-}" in
  "") ;;
  --dev) mode=dev ;;
  *) echo "usage: scripts/setup.sh [--dev]" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp_base=.venv/.codesearch-installed
stamp_dev=.venv/.codesearch-installed-dev
installed() { [ "$(cat "$1" 2>/dev/null)" = "$want" ]; }
if installed "$stamp_dev" || { [ "$mode" = base ] && installed "$stamp_base"; }; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
torch_pin="torch==${CODESEARCH_TORCH_VERSION:-2.13.0}"
if [ "$mode" = dev ]; then
  .venv/bin/python -m pip install -q "$torch_pin"
  .venv/bin/python -m pip install -q -e ".[train,dev]"
  echo "$want" > "$stamp_dev"
elif [ -f models/codesearch_models/default/manifest.json ]; then
  .venv/bin/python -m pip install -q -e .
else
  .venv/bin/python -m pip install -q "$torch_pin"
  .venv/bin/python -m pip install -q -e ".[export]"
fi
echo "$want" > "$stamp_base"
