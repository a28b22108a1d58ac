#!/usr/bin/env bash
# End-to-end test of the VS Code extension in a real VS Code (code-server 4.100.3 = VS Code 1.100.3),
# driven by playwright-core in Debian's headless Chromium.
#
#   scripts/test-extension-e2e.sh            # build + package the .vsix, install code-server if needed, run
#   scripts/test-extension-e2e.sh --install-only   # only prepare the cached code-server
#
# Needs: Node 20, Debian packages `chromium ripgrep libkrb5-dev build-essential python3`, and the
# language server at $CODESEARCH_LS (default: <repo>/.venv/bin/codesearch-ls).
# code-server is installed once into $CODESEARCH_E2E_CACHE (default ~/.cache/codesearch-e2e) and reused.
# Screenshots and logs land in extension/test-artifacts/e2e/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXT="$REPO/extension"
CACHE="${CODESEARCH_E2E_CACHE:-$HOME/.cache/codesearch-e2e}"
CS_VERSION="4.100.3"
CS_PREFIX="$CACHE/code-server-$CS_VERSION"
CS_PKG="$CS_PREFIX/node_modules/code-server"
CS_BIN="$CS_PKG/out/node/entry.js"
export CODESEARCH_LS="${CODESEARCH_LS:-$REPO/.venv/bin/codesearch-ls}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

log() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*" >&2; }

# Network steps (Debian and npm registries) are retried: a fresh CI machine must not fail on one
# dropped connection.
retry() {
  local attempt
  for attempt in 1 2 3; do
    "$@" && return 0
    [ "$attempt" = 3 ] || { log "failed (attempt $attempt of 3), retrying in $((attempt * 10))s: $*"; sleep $((attempt * 10)); }
  done
  return 1
}

check_prereqs() {
  local missing=()
  [ -x "$CHROMIUM" ] || missing+=(chromium)
  command -v rg >/dev/null || missing+=(ripgrep)
  [ -e /usr/include/krb5.h ] || [ -e /usr/include/gssapi/gssapi.h ] || missing+=(libkrb5-dev)
  command -v g++ >/dev/null && command -v make >/dev/null || missing+=(build-essential)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "Installing Debian packages: ${missing[*]}"
      retry apt-get update -qq
      retry env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "Missing Debian packages: ${missing[*]}" >&2
      echo "Install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
      exit 2
    fi
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" != 20 ]; then
    echo "code-server $CS_VERSION needs Node 20 (found $(node -v))" >&2
    exit 2
  fi
}

install_code_server() {
  if [ -f "$CS_PREFIX/.installed" ]; then
    return 0
  fi
  log "Installing code-server $CS_VERSION into $CS_PREFIX (one-off, a few minutes; log: $CACHE/install.log)"
  rm -rf "$CS_PREFIX"
  mkdir -p "$CS_PREFIX"
  local rc
  # A plain command (not in an `if` or `||`, where bash ignores `set -e`): stops at the first failure.
  set +e
  (set -e; code_server_steps) >"$CACHE/install.log" 2>&1
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    tail -n 60 "$CACHE/install.log" >&2
    echo "Installing code-server failed; the whole log: $CACHE/install.log" >&2
    exit 1
  fi
  touch "$CS_PREFIX/.installed"
  log "code-server installed"
}

code_server_steps() {
  echo '{"name":"codesearch-e2e-code-server","private":true}' >"$CS_PREFIX/package.json"
  export npm_config_yes=true npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
  # Native modules are compiled here (Node's headers come with Debian's nodejs): a prebuilt binary
  # would be fetched from GitHub, and only the package registries are reachable.
  export npm_config_build_from_source=true
  # --ignore-scripts: the postinstall would download ripgrep from GitHub.
  cd "$CS_PREFIX"
  retry npm install --ignore-scripts "code-server@$CS_VERSION"
  npm rebuild --foreground-scripts argon2
  # What code-server's postinstall.sh does, minus the ripgrep download.
  cd "$CS_PKG/lib/vscode"
  retry npm install --omit=dev --ignore-scripts
  mkdir -p node_modules/@vscode/ripgrep/bin
  ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  # Build the native modules (node-pty, spdlog, kerberos, watcher, ...) for this Node.
  npm rebuild --foreground-scripts \
    @parcel/watcher @vscode/spdlog @vscode/deviceid kerberos native-watchdog node-pty
  rm -rf node_modules.asar && ln -s node_modules node_modules.asar
  (cd bin/remote-cli && rm -f code-server && ln -s code-linux.sh code-server)
  (cd bin/helpers && rm -f browser.sh && ln -s browser-linux.sh browser.sh)
  cd extensions
  retry npm install --omit=dev --ignore-scripts
}

build_vsix() {
  log "Building and packaging the extension"
  (cd "$EXT" && { [ -d node_modules ] || retry npm ci --no-audit --no-fund --loglevel=error; } \
    && npm run package --silent)
}

check_prereqs
install_code_server
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi
build_vsix
VSIX="$(ls -t "$EXT"/*.vsix | head -1)"

if [ ! -x "$CODESEARCH_LS" ] && [ "$CODESEARCH_LS" = "$REPO/.venv/bin/codesearch-ls" ]; then
  log "Creating the Python environment (scripts/setup.sh)"
  "$REPO/scripts/setup.sh"
fi
if [ ! -x "$CODESEARCH_LS" ]; then
  echo "Language server not found at $CODESEARCH_LS (run scripts/setup.sh, or set CODESEARCH_LS)" >&2
  exit 2
fi

log "Running the E2E test (vsix: $(basename "$VSIX"))"
export CODE_SERVER_ENTRY="$CS_BIN" VSIX
cd "$EXT"
exec node e2e/run.mjs
