#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs the VS Code extension's
# unit tests, pytest and the extension's end-to-end test in a real VS Code. CI (.ci/run) runs this.
#
#   scripts/test.sh               everything
#   scripts/test.sh -x -k engine  pytest only, with these arguments
#
# CODESEARCH_E2E=0 leaves out the end-to-end test (it installs Chromium and build tools as root,
# or needs them installed; see scripts/test-extension-e2e.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# The scale extra (Ray), so that the index shards tests run here and in CI.
.venv/bin/python -c "import ray" 2>/dev/null || .venv/bin/python -m pip install -q -e ".[scale]"
# Neovim (Debian's 0.7 build) drives the language server as a real third-party client.
if ! command -v nvim >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq neovim >/dev/null) \
    || echo "warning: could not install neovim; its test will be skipped" >&2
fi
export CODESEARCH_CACHE_DIR="${CODESEARCH_CACHE_DIR:-$HOME/.cache/codesearch-tests}"
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi

e2e=${CODESEARCH_E2E:-1}
if [ "$e2e" != 0 ]; then
  # The end-to-end test's Chromium and code-server are installed while the other tests run (mostly
  # downloads; a fresh machine saves about 3 minutes this way).
  e2e_install_log=$(mktemp)
  scripts/test-extension-e2e.sh --install-only >"$e2e_install_log" 2>&1 &
  e2e_install=$!
fi

failed=()
# The VS Code extension's own unit tests (vitest, fake vscode module).
(cd extension && npm ci --no-audit --no-fund --loglevel=error && npm test --silent) || failed+=(extension-unit)
.venv/bin/python -m pytest -q -p no:cacheprovider || failed+=(pytest)

# The extension in a real VS Code (code-server in headless Chromium) with the real language server;
# it shares the model pytest exported. It runs even when something above failed.
if [ "$e2e" != 0 ]; then
  if wait "$e2e_install"; then
    CODESEARCH_MODELS_DIR="$CODESEARCH_CACHE_DIR/models" scripts/test-extension-e2e.sh || failed+=(e2e)
  else
    cat "$e2e_install_log" >&2
    echo "preparing the end-to-end test failed (above); CODESEARCH_E2E=0 leaves it out" >&2
    failed+=(e2e-install)
  fi
  rm -f "$e2e_install_log"
else
  echo "note: CODESEARCH_E2E=0: the extension's end-to-end test was not run" >&2
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
