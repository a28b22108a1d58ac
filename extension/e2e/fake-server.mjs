#!/usr/bin/env node
// A stand-in for codesearch-ls that speaks the same protocol, for developing and debugging the
// E2E harness and the extension without the Python server: word-overlap "search" over
// `def`/`function`/`class` lines, `$/progress` + `codesearch/status` while "indexing", file events.
// It is NOT what the E2E test checks by default (that is the real server); run it with
//   CODESEARCH_LS=extension/e2e/fake-server.mjs scripts/test-extension-e2e.sh
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

let buffer = Buffer.alloc(0);
let nextId = 1;
let roots = [];
let chunks = [];
let files = 0;
let settings = {};

function send(msg) {
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', ...msg }), 'utf8');
  process.stdout.write(`Content-Length: ${body.length}\r\n\r\n`);
  process.stdout.write(body);
}
const notify = (method, params) => send({ method, params });
const request = (method, params) => send({ id: `s${nextId++}`, method, params });
const log = (message) => notify('window/logMessage', { type: 3, message: `[fake-server] ${message}` });

function words(text) {
  return text
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 2);
}

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.') || name === 'node_modules') continue;
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, out);
    else if (/\.(py|js|ts)$/.test(name)) out.push(p);
  }
}

function index() {
  const token = `index-${nextId}`;
  request('window/workDoneProgress/create', { token });
  notify('$/progress', { token, value: { kind: 'begin', title: 'Indexing', percentage: 0 } });
  const list = [];
  for (const r of roots) walk(r, list);
  chunks = [];
  list.forEach((file, i) => {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, n) => {
      const m = /^\s*(?:def|function|class)\s+([A-Za-z_]\w*)/.exec(line);
      if (m) {
        const body = lines.slice(n, n + 3).join('\n');
        chunks.push({ file, line: n, symbol: m[1], text: body, words: new Set(words(body)) });
      }
    });
    const percentage = Math.round(((i + 1) / list.length) * 100);
    const message = `${i + 1}/${list.length} files, ${chunks.length} chunks`;
    notify('$/progress', { token, value: { kind: 'report', message, percentage } });
    notify('codesearch/status', { state: 'indexing', percentage, files: i + 1, chunks: chunks.length });
  });
  files = list.length;
  notify('$/progress', { token, value: { kind: 'end' } });
  notify('codesearch/status', {
    state: 'ready',
    model: settings.model ?? 'fake',
    provider: 'CPUExecutionProvider',
    files,
    chunks: chunks.length,
    embedded: chunks.length,
  });
}

function search({ query, limit = 50, pathGlob }) {
  const q = words(query);
  return chunks
    .map((c) => ({ c, score: q.filter((w) => [...c.words].some((x) => x.startsWith(w.slice(0, 5)))).length / (q.length || 1) }))
    .filter((x) => x.score > 0 && (!pathGlob || x.c.file.includes(pathGlob.replace(/\*.*$/, ''))))
    .sort((a, b) => b.score - a.score)
    .slice(0, limit)
    .map(({ c, score }) => ({
      uri: pathToFileURL(c.file).toString(),
      range: { start: { line: c.line, character: 0 }, end: { line: c.line + 2, character: 0 } },
      symbol: c.symbol,
      kind: 'function',
      language: c.file.endsWith('.py') ? 'python' : 'javascript',
      score,
      snippet: c.text,
    }));
}

function handle(msg) {
  const { id, method, params } = msg;
  if (method === undefined) return; // a response to one of our requests
  switch (method) {
    case 'initialize':
      settings = params.initializationOptions ?? {};
      roots = (params.workspaceFolders ?? []).map((f) => fileURLToPath(f.uri));
      send({
        id,
        result: {
          capabilities: {
            workspaceSymbolProvider: true,
            executeCommandProvider: { commands: ['codesearch-ls.reindex', 'codesearch-ls.status'] },
            workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
          },
          serverInfo: { name: 'fake-codesearch-ls' },
        },
      });
      return;
    case 'initialized':
      log(`settings ${JSON.stringify(settings)}`);
      setTimeout(index, 200);
      return;
    case 'workspace/didChangeConfiguration':
      settings = params.settings?.codesearch ?? settings;
      log(`settings changed ${JSON.stringify(settings)}`);
      return;
    case 'workspace/didChangeWatchedFiles':
    case 'workspace/didChangeWorkspaceFolders':
      if (params.event) {
        roots = roots.filter((r) => !params.event.removed.some((f) => fileURLToPath(f.uri) === r));
        roots.push(...params.event.added.map((f) => fileURLToPath(f.uri)));
      }
      index();
      return;
    case 'codesearch/search':
      send({ id, result: { results: search(params), indexing: false } });
      return;
    case 'workspace/symbol':
      send({
        id,
        result: search({ query: params.query }).map((r) => ({
          name: r.symbol,
          kind: 12,
          location: { uri: r.uri, range: r.range },
        })),
      });
      return;
    case 'workspace/executeCommand':
      if (params.command === 'codesearch-ls.reindex') {
        setTimeout(index, 10);
        send({ id, result: null });
      } else {
        send({ id, result: { state: 'ready', files, chunks: chunks.length, model: 'fake' } });
      }
      return;
    case 'shutdown':
      send({ id, result: null });
      return;
    case 'exit':
      process.exit(0);
      return;
    default:
      if (id !== undefined) send({ id, error: { code: -32601, message: `unhandled ${method}` } });
  }
}

process.stdin.on('data', (data) => {
  buffer = Buffer.concat([buffer, data]);
  for (;;) {
    const headerEnd = buffer.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const m = /Content-Length: (\d+)/i.exec(buffer.subarray(0, headerEnd).toString());
    const length = Number(m?.[1] ?? 0);
    if (buffer.length < headerEnd + 4 + length) return;
    const body = buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString('utf8');
    buffer = buffer.subarray(headerEnd + 4 + length);
    handle(JSON.parse(body));
  }
});
