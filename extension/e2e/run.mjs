// End-to-end test of the extension in a real VS Code (code-server) driven by playwright-core in
// Debian's headless Chromium. Started by scripts/test-extension-e2e.sh, which provides:
//   CODE_SERVER_ENTRY  code-server's out/node/entry.js
//   VSIX               the packaged extension
//   CODESEARCH_LS      the language server executable (codesearch.serverPath)
//   CHROMIUM           the browser (default /usr/bin/chromium)
// Optional: E2E_KEEP=1 keeps the temporary folder; E2E_READY_TIMEOUT_S (default 600) bounds the
// wait for the first index (the first run on a machine may export the model).
// Screenshots and logs go to extension/test-artifacts/e2e/.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { ADDED, FIRST, IN_FOLDER, SECOND, THIRD, addFunction, addThirdFolder, createFixture, lineOf } from './fixture.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXT_ROOT = path.resolve(HERE, '..');
const ART = path.join(EXT_ROOT, 'test-artifacts', 'e2e');
const ENTRY = required('CODE_SERVER_ENTRY');
const VSIX = required('VSIX');
const SERVER = required('CODESEARCH_LS');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const READY_TIMEOUT = Number(process.env.E2E_READY_TIMEOUT_S || 600) * 1000;
const REAL_HOME = os.homedir();
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set (run scripts/test-extension-e2e.sh)`);
    process.exit(2);
  }
  return v;
}

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const log = (...a) => console.log(`[e2e ${elapsed()}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

rmSync(ART, { recursive: true, force: true });
mkdirSync(ART, { recursive: true });

// --- an isolated VS Code: HOME/XDG folders, user data, extensions, fixture -------------------
const tmp = mkdtempSync(path.join(os.tmpdir(), 'codesearch-e2e-'));
const home = path.join(tmp, 'home');
const userData = path.join(tmp, 'user-data');
const extensionsDir = path.join(tmp, 'extensions');
const fixtures = path.join(tmp, 'fixtures');
const serverCache = path.join(tmp, 'codesearch-cache');
// The exported ONNX model is shared with the Python test suite so it is only made once a machine.
const sharedModels = process.env.CODESEARCH_MODELS_DIR || path.join(REAL_HOME, '.cache', 'codesearch-tests', 'models');
for (const d of [home, userData, extensionsDir, serverCache, sharedModels, path.join(userData, 'User')]) {
  mkdirSync(d, { recursive: true });
}
symlinkSync(sharedModels, path.join(serverCache, 'models'), 'dir');
const workspaceFile = createFixture(fixtures);

const childEnv = {
  ...process.env,
  HOME: home,
  XDG_CONFIG_HOME: path.join(home, '.config'),
  XDG_DATA_HOME: path.join(home, '.local', 'share'),
  XDG_CACHE_HOME: path.join(home, '.cache'),
  XDG_STATE_HOME: path.join(home, '.local', 'state'),
  CODESEARCH_CACHE_DIR: serverCache,
  // The workbench must not try to reach the network.
  VSCODE_PROXY_URI: '',
};
delete childEnv.VSCODE_IPC_HOOK_CLI;

const baseSettings = {
      'codesearch.serverPath': SERVER,
      'codesearch.device': 'cpu',
      'codesearch.trace.server': 'messages',
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'workbench.enableExperiments': false,
      'security.workspace.trust.enabled': false,
      'telemetry.telemetryLevel': 'off',
      'update.mode': 'none',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'extensions.ignoreRecommendations': true,
      'workbench.editor.enablePreview': true,
      'window.restoreWindows': 'none',
      'chat.commandCenter.enabled': false,
      'files.simpleDialog.enable': true,
};

function writeSettings(extra) {
  writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({ ...baseSettings, ...extra }, null, 2));
}
writeSettings({});

/** Settings in the .code-workspace file (window-scoped settings of a multi-root workspace live there). */
function writeWorkspaceSettings(settings) {
  const ws = JSON.parse(readFileSync(workspaceFile, 'utf8'));
  writeFileSync(workspaceFile, JSON.stringify({ ...ws, settings }, null, 2));
}

/** Process ids of the language server started under code-server (found by parent chain, not name). */
function serverPids(rootPid) {
  const procs = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      procs.set(Number(name), { ppid, cmd });
    } catch {
      /* exited */
    }
  }
  const descends = (pid) => {
    for (let p = pid, i = 0; p > 1 && i < 50; i++) {
      if (p === rootPid) return true;
      p = procs.get(p)?.ppid ?? 0;
    }
    return false;
  };
  return [...procs].filter(([pid, p]) => p.cmd.includes(SERVER) && pid !== rootPid && descends(pid)).map(([pid]) => pid).sort();
}

async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(300);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const codeServerArgs = ['--user-data-dir', userData, '--extensions-dir', extensionsDir];

function installVsix() {
  log(`installing ${path.basename(VSIX)}`);
  const r = spawnSync(process.execPath, [ENTRY, ...codeServerArgs, '--install-extension', VSIX], {
    env: childEnv,
    encoding: 'utf8',
    timeout: 120000,
  });
  writeFileSync(path.join(ART, 'install-extension.log'), `${r.stdout}\n${r.stderr}`);
  if (r.status !== 0 || !/successfully installed/i.test(r.stdout + r.stderr)) {
    throw new Error(`--install-extension failed (${r.status}): ${r.stdout}${r.stderr}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function startCodeServer() {
  const port = await freePort();
  const out = createWriteStream(path.join(ART, 'code-server.log'));
  const child = spawn(
    process.execPath,
    [
      ENTRY,
      ...codeServerArgs,
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--ignore-last-opened',
    ],
    { env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 120; i++) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}; see code-server.log`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return { child, url };
    } catch {
      /* not up yet */
    }
    await sleep(500);
  }
  throw new Error('code-server did not come up in 60s');
}

/** The extension's "Code Search" output channel, as VS Code writes it to disk. */
function extensionLog() {
  const logs = path.join(userData, 'logs');
  const texts = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name === 'Code Search.log') texts.push(readFileSync(p, 'utf8'));
    }
  };
  if (existsSync(logs)) walk(logs);
  return texts.join('\n');
}

function copyLogs() {
  // VS Code's own logs, including the extension's "Code Search" output channel.
  const logs = path.join(userData, 'logs');
  if (!existsSync(logs)) return;
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/Code Search|exthost|remoteagent|renderer/i.test(name)) {
        const rel = path.relative(logs, p).replace(/[\\/]/g, '__');
        cpSync(p, path.join(ART, 'logs', rel));
      }
    }
  };
  mkdirSync(path.join(ART, 'logs'), { recursive: true });
  walk(logs);
}

// --- page helpers -------------------------------------------------------------------------------
let page;
let shot = 0;
async function screenshot(name) {
  const file = path.join(ART, `${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.mouse.move(700, 860).catch(() => undefined); // no hover tooltips over what matters
  await page.screenshot({ path: file });
  log(`screenshot ${path.basename(file)}`);
}

const quickInput = () => page.locator('.quick-input-widget');
const quickInputBox = () => page.locator('.quick-input-widget .quick-input-box input');
const rows = () => page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
const statusItem = () => page.locator('.part.statusbar [aria-label^="Code Search "]').first();

async function runPaletteCommand(title) {
  await page.keyboard.press('F1');
  await quickInput().waitFor({ state: 'visible' });
  await page.keyboard.type(title);
  const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const row = rows().filter({ has: page.locator('.label-name', { hasText: exact }) }).first();
  await row.waitFor({ timeout: 15000 });
  await row.click();
}

async function waitForReady({ tolerateError = false } = {}) {
  log('waiting for the server to index the workspace');
  const deadline = Date.now() + READY_TIMEOUT;
  let last = '';
  while (Date.now() < deadline) {
    const label = (await statusItem().getAttribute('aria-label', { timeout: 1000 }).catch(() => null)) ?? '(no status item)';
    if (label !== last) {
      log(`status: ${label}`);
      last = label;
    }
    if (label.startsWith('Code Search ready')) return label;
    if (!tolerateError && /^Code Search (error|notFound)/.test(label)) throw new Error(`server failed: ${label}`);
    await sleep(500);
  }
  throw new Error(`the index was not ready after ${READY_TIMEOUT / 1000}s (last status: ${last})`);
}

/** Types `query` into the open picker and waits for a row with `symbol`, retyping until `timeoutMs`. */
async function searchFor(query, symbol, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    await quickInputBox().fill('');
    await page.keyboard.type(query, { delay: 15 }); // key by key: exercises the debouncing
    try {
      await rows().filter({ hasText: symbol }).first().waitFor({ timeout: Math.min(15000, Math.max(1000, deadline - Date.now())) });
      return;
    } catch (e) {
      const listed = await rows().allInnerTexts();
      log(`attempt ${attempt}: ${symbol} not listed yet; rows: ${JSON.stringify(listed.map((r) => r.split('\n')[0]))}`);
      if (Date.now() > deadline) throw new Error(`${symbol} never appeared for "${query}"`);
    }
  }
}

/** Moves the picker's active row onto the row showing `symbol` with arrow keys. */
async function arrowTo(symbol) {
  const target = Number(await rows().filter({ hasText: symbol }).first().getAttribute('data-index'));
  const focusedAttr = await page.locator('.quick-input-widget .quick-input-list .monaco-list-row.focused').first().getAttribute('data-index').catch(() => '0');
  const focused = Number(focusedAttr ?? 0);
  const key = target > focused ? 'ArrowDown' : 'ArrowUp';
  for (let i = 0; i < Math.abs(target - focused); i++) {
    await page.keyboard.press(key);
  }
  await page.locator('.quick-input-widget .monaco-list-row.focused').filter({ hasText: symbol }).waitFor();
}

async function expectEditorAt(file, line) {
  const base = path.basename(file);
  await page.locator('.tabs-container .tab.active').filter({ hasText: base }).waitFor({ timeout: 15000 });
  const selection = page.locator('[id="status.editor.selection"]');
  await selection.filter({ hasText: `Ln ${line},` }).waitFor({ timeout: 15000 }).catch(async (e) => {
    throw new Error(`expected the cursor on line ${line} of ${base}; status bar says "${await selection.innerText().catch(() => '?')}" (${e.message})`);
  });
  // The line under the cursor really is the function's first line.
  const current = await page.evaluate(() => {
    const editor = document.querySelector('.editor-instance .monaco-editor.focused') ?? document.querySelector('.editor-instance .monaco-editor');
    const cursor = editor?.querySelector('.cursor');
    if (!editor || !cursor) return '';
    const top = cursor.getBoundingClientRect().top;
    for (const l of editor.querySelectorAll('.view-line')) {
      const r = l.getBoundingClientRect();
      if (top >= r.top - 1 && top < r.bottom - 1) return l.textContent ?? '';
    }
    return '';
  });
  return current.replace(/\u00a0/g, ' ');
}

const results = [];
async function step(name, fn) {
  const start = Date.now();
  log(`▶ ${name}`);
  try {
    await fn();
    results.push({ name, ok: true, s: (Date.now() - start) / 1000 });
    log(`✔ ${name} (${((Date.now() - start) / 1000).toFixed(1)}s)`);
  } catch (e) {
    results.push({ name, ok: false, s: (Date.now() - start) / 1000, error: e.message });
    log(`✘ ${name}: ${e.stack ?? e}`);
    await screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}`).catch(() => undefined);
    throw e;
  }
}

// --- the test -------------------------------------------------------------------------------------
let codeServer;
let browser;
let failed = false;
try {
  installVsix();
  codeServer = await startCodeServer();
  log(`code-server at ${codeServer.url}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  const consoleLog = createWriteStream(path.join(ART, 'browser-console.log'));
  page.on('console', (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => consoleLog.write(`[pageerror] ${e.stack ?? e}\n`));

  await step('open the fixture workspace', async () => {
    await page.goto(`${codeServer.url}/?workspace=${encodeURIComponent(workspaceFile)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
    await page.locator('.explorer-folders-view, .explorer-viewlet').first().waitFor({ timeout: 60000 }).catch(() => undefined);
    await statusItem().waitFor({ timeout: 60000 });
  });

  await step('the status bar shows the index ready', async () => {
    const label = await waitForReady();
    if (!/files/.test(label)) throw new Error(`ready status without counts: ${label}`);
    await screenshot('workbench-ready');
  });

  await step('palette command finds a function by meaning', async () => {
    await runPaletteCommand('Code Search: Search by Meaning');
    await quickInput().waitFor({ state: 'visible' });
    const placeholder = await quickInputBox().getAttribute('placeholder');
    if (!/Describe what the code does/.test(placeholder ?? '')) throw new Error(`not our picker: placeholder "${placeholder}"`);
    await searchFor(FIRST.query, FIRST.symbol, 60000);
    const row = rows().filter({ hasText: FIRST.symbol }).first();
    const text = await row.innerText();
    // multi-root: the path starts with the folder name
    const where = `${FIRST.folder}/${FIRST.file}:${lineOf(fixtures, FIRST)}`;
    if (!text.includes(where)) throw new Error(`row should show "${where}": ${JSON.stringify(text)}`);
    await screenshot('search-results');
  });

  await step('arrow keys preview without closing the picker', async () => {
    const count = await rows().count();
    if (count < 2) {
      log('only one result: skipping the preview check');
      return;
    }
    const focused = Number((await page.locator('.quick-input-widget .monaco-list-row.focused').first().getAttribute('data-index')) ?? 0);
    await page.keyboard.press(focused + 1 < count ? 'ArrowDown' : 'ArrowUp');
    const activeRow = await page.locator('.quick-input-widget .monaco-list-row.focused').first().innerText();
    const rel = /(\S+):(\d+)/.exec(activeRow.split('\n').find((l) => /:\d+$/.test(l.trim())) ?? activeRow);
    if (!rel) throw new Error(`no path in the active row: ${activeRow}`);
    await page.locator('.tabs-container .tab').filter({ hasText: path.basename(rel[1]) }).first().waitFor({ timeout: 15000 });
    if (!(await quickInput().isVisible())) throw new Error('the picker closed on preview');
    await screenshot('preview');
  });

  await step('Enter opens the file at the function', async () => {
    await arrowTo(FIRST.symbol);
    await page.keyboard.press('Enter');
    await quickInput().waitFor({ state: 'hidden' });
    const current = await expectEditorAt(FIRST.file, lineOf(fixtures, FIRST));
    if (!current.includes(`def ${FIRST.symbol}`)) throw new Error(`cursor line is "${current}"`);
    await screenshot('opened-at-function');
  });

  await step('multi-root: a function in the second folder is found', async () => {
    await runPaletteCommand('Code Search: Search by Meaning');
    await searchFor(SECOND.query, SECOND.symbol, 60000);
    const text = await rows().filter({ hasText: SECOND.symbol }).first().innerText();
    const where = `${SECOND.folder}/${SECOND.file}:${lineOf(fixtures, SECOND)}`;
    if (!text.includes(where)) throw new Error(`row should show "${where}": ${JSON.stringify(text)}`);
    await screenshot('multi-root-results');
    await page.keyboard.press('Escape');
    await quickInput().waitFor({ state: 'hidden' });
  });

  await step('a folder added to the workspace is indexed and searched', async () => {
    addThirdFolder(fixtures);
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: new RegExp(`^${THIRD.folder}$`, 'i') }).first().waitFor({ timeout: 30000 });
    await runPaletteCommand('Code Search: Search by Meaning');
    await searchFor(THIRD.query, THIRD.symbol, 120000);
    const text = await rows().filter({ hasText: THIRD.symbol }).first().innerText();
    if (!text.includes(`${THIRD.folder}/${THIRD.file}:`)) throw new Error(`row should show ${THIRD.folder}/${THIRD.file}: ${text}`);
    await screenshot('added-folder-results');
    await page.keyboard.press('Escape');
    await quickInput().waitFor({ state: 'hidden' });
  });

  await step('Go to Symbol in Workspace is answered by the server', async () => {
    await page.keyboard.press('F1');
    await quickInput().waitFor({ state: 'visible' });
    await quickInputBox().fill('#haversine');
    await rows().filter({ hasText: FIRST.symbol }).first().waitFor({ timeout: 30000 });
    await screenshot('workspace-symbols');
    await page.keyboard.press('Escape');
    await quickInput().waitFor({ state: 'hidden' });
  });

  await step("explorer context menu: search in this folder", async () => {
    const root = page.locator('.explorer-folders-view .monaco-list-row', { hasText: new RegExp(`^${IN_FOLDER.folder}$`, 'i') }).first();
    await root.waitFor();
    const folderRow = page.locator('.explorer-folders-view .monaco-list-row[aria-level="2"]', { hasText: new RegExp(`^${IN_FOLDER.dir}$`) }).first();
    if (!(await folderRow.isVisible().catch(() => false))) await root.click();
    await folderRow.waitFor();
    await folderRow.click({ button: 'right' });
    const item = page.locator('.context-view .monaco-menu .action-item', { hasText: 'Search in This Folder by Meaning' });
    await item.waitFor({ timeout: 10000 });
    await screenshot('explorer-context-menu');
    await item.click();
    await quickInput().waitFor({ state: 'visible' });
    const title = await page.locator('.quick-input-widget .quick-input-title').innerText();
    if (!title.includes(`folder: ${IN_FOLDER.folder}`) || !title.includes(`path: ${IN_FOLDER.dir}/**`)) {
      throw new Error(`picker title "${title}" does not show the folder filter`);
    }
    await searchFor(IN_FOLDER.query, IN_FOLDER.symbol, 60000);
    const listed = await rows().allInnerTexts();
    const outside = listed.filter((r) => !r.includes(`${IN_FOLDER.folder}/${IN_FOLDER.dir}/`));
    if (outside.length) throw new Error(`results outside ${IN_FOLDER.folder}/${IN_FOLDER.dir}: ${JSON.stringify(outside)}`);
    await screenshot('folder-search-results');
    await page.keyboard.press('Escape');
    await quickInput().waitFor({ state: 'hidden' });
  });

  await step("language filter of the current file (Alt+L in the picker)", async () => {
    // The active editor is geo.py (Python); the password hashing function is JavaScript.
    await runPaletteCommand('Code Search: Search by Meaning');
    await searchFor(IN_FOLDER.query, IN_FOLDER.symbol, 60000);
    await page.keyboard.press('Alt+KeyL');
    await page.locator('.quick-input-widget .quick-input-title', { hasText: 'language: python' }).waitFor({ timeout: 10000 });
    await waitFor(async () => {
      const listed = await rows().allInnerTexts();
      return listed.length > 0 && listed.every((r) => /\.py:\d+/.test(r));
    }, 15000, 'only Python results');
    await screenshot('language-filter');
    await page.keyboard.press('Escape');
    await quickInput().waitFor({ state: 'hidden' });
  });

  await step('a function added on disk is found (keybinding Ctrl+Alt+K)', async () => {
    addFunction(fixtures);
    log(`appended ${ADDED.symbol} to ${ADDED.file}`);
    await page.keyboard.press('Control+Alt+KeyK');
    await quickInput().waitFor({ state: 'visible' });
    await searchFor(ADDED.query, ADDED.symbol, 120000);
    await screenshot('new-function-results');
    await arrowTo(ADDED.symbol);
    await page.keyboard.press('Enter');
    await quickInput().waitFor({ state: 'hidden' });
    const current = await expectEditorAt(ADDED.file, lineOf(fixtures, ADDED));
    if (!current.includes(`def ${ADDED.symbol}`)) throw new Error(`cursor line is "${current}"`);
    await screenshot('new-function-opened');
  });

  await step('the default keybinding does not clash with a built-in one', async () => {
    // The "Default Keybindings" JSON lists every default binding of this platform (built-in and
    // from extensions). "ctrl+alt+k" (or a chord starting with it) must occur once: ours.
    await runPaletteCommand('Preferences: Open Default Keyboard Shortcuts (JSON)');
    await page.locator('.tabs-container .tab.active').filter({ hasText: 'Default Keybindings' }).waitFor({ timeout: 15000 });
    await page.locator('.editor-instance .monaco-editor').first().click({ position: { x: 200, y: 100 } });
    await page.keyboard.press('Control+KeyF');
    await page.locator('.find-widget.visible').waitFor();
    await page.keyboard.type('"ctrl+alt+k');
    const counter = page.locator('.find-widget .matchesCount');
    await page.waitForFunction(() => /of|No results/.test(document.querySelector('.find-widget .matchesCount')?.textContent ?? ''));
    await sleep(500);
    const count = (await counter.innerText()).trim();
    await screenshot('default-keybindings');
    if (count !== '1 of 1') throw new Error(`"ctrl+alt+k" occurs ${count} in the default keybindings`);
    await page.keyboard.press('Escape');
    const line = await page.evaluate(() => [...document.querySelectorAll('.editor-instance .view-line')].map((l) => l.textContent ?? '').find((t) => t.includes('"ctrl+alt+k')) ?? '');
    if (!line.includes('codesearch.search')) throw new Error(`the binding found is not ours: ${line}`);
  });

  await step('the server is restarted after a crash', async () => {
    const pids = serverPids(codeServer.child.pid);
    if (pids.length !== 1) throw new Error(`expected one server process, found ${JSON.stringify(pids)}`);
    log(`killing the server process ${pids[0]}`);
    process.kill(pids[0], 'SIGKILL');
    await waitFor(() => serverPids(codeServer.child.pid).some((p) => p !== pids[0]), 30000, 'a new server process');
    await waitForReady();
    await runPaletteCommand('Code Search: Search by Meaning');
    await searchFor(FIRST.query, FIRST.symbol, 60000);
    await page.keyboard.press('Escape');
  });

  await step('a settings change reaches the server live; errors click through to the log', async () => {
    const before = serverPids(codeServer.child.pid);
    // Workspace settings on disk (code-server does not notice user settings edited on disk).
    const badModel = '/nonexistent/codesearch-model';
    writeWorkspaceSettings({ 'codesearch.model': badModel });
    const deadline = Date.now() + 60000;
    let label = '';
    while (Date.now() < deadline) {
      label = (await statusItem().getAttribute('aria-label').catch(() => '')) ?? '';
      if (label.startsWith('Code Search error')) break;
      await sleep(300);
    }
    if (!label.startsWith('Code Search error')) throw new Error(`no error status for a bad model (last: ${label})`);
    const text = await statusItem().innerText();
    if (!text.includes('model not loaded')) throw new Error(`the error status does not say why: "${text}"`);
    // One clear line in the log, not one per folder or per stream.
    const said = () => extensionLog().split('\n').filter((l) => l.includes('could not be loaded') && l.includes(badModel));
    await waitFor(() => said().length > 0, 15000, 'the model error in the extension log');
    await sleep(1500);
    if (said().length !== 1) throw new Error(`the bad model is reported ${said().length} times:\n${said().join('\n')}`);
    // Only what the user set was sent: settings the user left alone have the server's defaults
    // (package.json's defaults are generated from the server's).
    const props = JSON.parse(readFileSync(path.join(EXT_ROOT, 'package.json'), 'utf8')).contributes.configuration.properties;
    const changed = extensionLog().split('\n').find((l) => l.includes('settings changed') && l.includes(badModel)) ?? '';
    for (const key of ['rerankK', 'maxFileSize']) {
      const want = `'${key}': ${props[`codesearch.${key}`].default}`;
      if (!changed.includes(want)) throw new Error(`the server's ${key} is not its default (${want}): ${changed}`);
    }
    const after = serverPids(codeServer.child.pid);
    if (JSON.stringify(before) !== JSON.stringify(after)) throw new Error(`the server was restarted: ${before} -> ${after}`);
    await statusItem().click();
    await page.locator('.part.panel').waitFor({ state: 'visible', timeout: 15000 });
    await page.locator('.part.panel .monaco-editor .view-lines').filter({ hasText: 'codesearch' }).first().waitFor({ timeout: 15000 });
    await screenshot('error-status-and-log');
    writeWorkspaceSettings({});
    await waitForReady({ tolerateError: true });
    await screenshot('ready-again');
  });

  await step('a wrong serverPath gives one clear notification; fixing it restarts the server', async () => {
    writeWorkspaceSettings({ 'codesearch.serverPath': '/nonexistent/codesearch-ls' });
    await waitFor(async () => {
      const label = (await statusItem().getAttribute('aria-label').catch(() => '')) ?? '';
      return label.startsWith('Code Search notFound');
    }, 30000, 'the status bar to say the server was not found').catch(async (e) => {
      const labels = await page.locator('.part.statusbar [aria-label]').evaluateAll((els) => els.map((el) => el.getAttribute('aria-label')));
      throw new Error(`${e.message}; status bar labels: ${JSON.stringify(labels)}`);
    });
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'codesearch-ls language server was not found' });
    await toast.first().waitFor({ timeout: 15000 });
    const text = await toast.first().innerText();
    if (!text.includes('pip install')) throw new Error(`the notification does not say how to install: ${text}`);
    if ((await toast.count()) !== 1) throw new Error(`${await toast.count()} notifications`);
    await screenshot('server-not-found');
    writeWorkspaceSettings({});
    await waitForReady({ tolerateError: true });
  });

  await step('Re-index Workspace command', async () => {
    await runPaletteCommand('Code Search: Re-index Workspace');
    await page.locator('.part.statusbar', { hasText: 're-indexing the workspace' }).waitFor({ timeout: 15000 });
    await waitForReady();
  });
} catch (e) {
  failed = true;
  if (!results.some((r) => !r.ok)) log(`✘ ${e.stack ?? e}`);
} finally {
  await browser?.close().catch(() => undefined);
  if (codeServer?.child.pid) {
    try {
      process.kill(-codeServer.child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await sleep(500);
  copyLogs();
  writeFileSync(path.join(ART, 'results.json'), JSON.stringify({ ok: !failed, steps: results, seconds: (Date.now() - t0) / 1000 }, null, 2));
  if (process.env.E2E_KEEP) log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}

console.log('\nE2E summary:');
for (const r of results) console.log(`  ${r.ok ? 'PASS' : 'FAIL'}  ${r.name} (${r.s.toFixed(1)}s)${r.error ? `: ${r.error}` : ''}`);
console.log(`  ${failed ? 'FAILED' : 'PASSED'} in ${elapsed()}; artefacts in ${path.relative(process.cwd(), ART) || ART}`);
process.exit(failed ? 1 : 0);
