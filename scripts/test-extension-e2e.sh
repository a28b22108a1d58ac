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

log() { printf '\n==> %s\n' "$*" >&2; }

check_prereqs() {
  local missing=()
  [ -x "$CHROMIUM" ] || missing+=(chromium)
  command -v rg >/dev/null || missing+=(ripgrep)
  [ -e /usr/include/krb5.h ] || [ -e /usr/include/gssapi/gssapi.h ] || missing+=(libkrb5-dev)
  command -v g++ >/dev/null && command -v make >/dev/null || missing+=(build-essential)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "Installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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
  log "Installing code-server $CS_VERSION into $CS_PREFIX (one-off, a few minutes)"
  rm -rf "$CS_PREFIX"
  mkdir -p "$CS_PREFIX"
  echo '{"name":"codesearch-e2e-code-server","private":true}' >"$CS_PREFIX/package.json"
  export npm_config_unsafe_perm=true npm_config_yes=true npm_config_audit=false npm_config_fund=false
  # --ignore-scripts: the postinstall would download ripgrep from GitHub (no internet here).
  (cd "$CS_PREFIX" && npm install --ignore-scripts "code-server@$CS_VERSION" && npm rebuild --foreground-scripts argon2)
  # What code-server's postinstall.sh does, minus the ripgrep download.
  (
    cd "$CS_PKG/lib/vscode"
    npm install --omit=dev --ignore-scripts
    mkdir -p node_modules/@vscode/ripgrep/bin
    ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
    # Build the native modules (node-pty, spdlog, kerberos, watcher, ...) for this Node.
    npm rebuild --foreground-scripts \
      @parcel/watcher @vscode/spdlog @vscode/deviceid kerberos native-watchdog node-pty
    rm -rf node_modules.asar && ln -s node_modules node_modules.asar
    (cd bin/remote-cli && rm -f code-server && ln -s code-linux.sh code-server)
    (cd bin/helpers && rm -f browser.sh && ln -s browser-linux.sh browser.sh)
    cd extensions
    npm install --omit=dev --ignore-scripts
  )
  touch "$CS_PREFIX/.installed"
}

build_vsix() {
  log "Building and packaging the extension"
  (cd "$EXT" && { [ -d node_modules ] || npm ci; } && npm run package)
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
