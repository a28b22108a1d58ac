#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The scale extra (Ray), so that the index shards tests run here and in CI.
.venv/bin/python -c "import ray" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[scale]"
# Neovim (Debian's 0.7 build) drives the language server as a real third-party client.
if ! command -v nvim >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq neovim >/dev/null) \
    || echo "warning: could not install neovim; its test will be skipped" >&2
fi
export CODESEARCH_CACHE_DIR="${CODESEARCH_CACHE_DIR:-$HOME/.cache/codesearch-tests}"
if [ "$#" -eq 0 ]; then
  # The VS Code extension's own unit tests (vitest, fake vscode module).
  (cd extension && npm ci --no-audit --no-fund --loglevel=error && npm test --silent)
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
