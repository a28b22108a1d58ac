import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';
import type { SearchParams, SearchResponse, SearchResult } from '../src/results';
import { SearchPicker } from '../src/search';
// The fake's test hooks (vitest aliases `vscode` to this module).
import { calls, FakeQuickPick, fakeEditor, resetFake, Uri, window as fakeWindow, workspace as fakeWorkspace } from './fakes/vscode';

function result(symbol: string, line: number, file = 'src/a.py'): SearchResult {
  return {
    uri: `file:///ws/${file}`,
    range: { start: { line, character: 4 }, end: { line: line + 5, character: 0 } },
    symbol,
    kind: 'function',
    language: 'python',
    score: 0.5,
    snippet: `def ${symbol}():`,
  };
}

interface Pending {
  params: SearchParams;
  token: vscode.CancellationToken;
  resolve(r: SearchResponse): void;
}

function backend() {
  const pending: Pending[] = [];
  return {
    pending,
    search(params: SearchParams, token: vscode.CancellationToken) {
      return new Promise<SearchResponse>((resolve) => pending.push({ params, token, resolve }));
    },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

function picker(): FakeQuickPick<vscode.QuickPickItem & { result?: SearchResult }> {
  return calls.quickPicks[calls.quickPicks.length - 1] as never;
}

describe('SearchPicker', () => {
  let opened: SearchPicker | undefined;
  beforeEach(() => {
    resetFake();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    opened?.dispose();
    opened = undefined;
    vi.useRealTimers();
  });

  it('searches as the user types (debounced) and lists every result with alwaysShow', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 150 });
    const qp = picker();
    expect(qp.visible).toBe(true);
    expect(qp.matchOnDescription).toBe(false);
    expect(qp.matchOnDetail).toBe(false);
    qp.type('read');
    qp.type('read the config');
    vi.advanceTimersByTime(150);
    expect(b.pending.map((p) => p.params)).toEqual([{ query: 'read the config', limit: 50 }]);
    expect(qp.busy).toBe(true);
    b.pending[0].resolve({ results: [result('load_config', 41), result('parse_yaml', 9, 'src/b.py')], indexing: false });
    await flush();
    expect(qp.busy).toBe(false);
    expect(qp.items.map((i) => [i.label, i.description, i.detail, i.alwaysShow])).toEqual([
      ['$(symbol-function) load_config', 'src/a.py:42', 'def load_config():', true],
      ['$(symbol-function) parse_yaml', 'src/b.py:10', 'def parse_yaml():', true],
    ]);
  });

  it('lists the results near the best score, not the tail far below it', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 10 });
    const qp = picker();
    qp.type('read the config');
    vi.advanceTimersByTime(10);
    const scored = (i: number, score: number) => ({ ...result(`f${i}`, i), score });
    // 12 close to the best, then 38 far below it
    const results = [...Array.from({ length: 12 }, (_, i) => scored(i, 0.9 - i * 0.01)), ...Array.from({ length: 38 }, (_, i) => scored(12 + i, 0.2))];
    b.pending[0].resolve({ results, indexing: false });
    await flush();
    expect(qp.items.map((i) => i.result?.symbol)).toEqual(Array.from({ length: 12 }, (_, i) => `f${i}`));
  });

  it('discards a stale response and cancels its request', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 100 });
    const qp = picker();
    qp.type('first');
    vi.advanceTimersByTime(100);
    qp.type('second');
    vi.advanceTimersByTime(100);
    expect(b.pending[0].token.isCancellationRequested).toBe(true);
    b.pending[1].resolve({ results: [result('second_fn', 1)], indexing: false });
    await flush();
    b.pending[0].resolve({ results: [result('first_fn', 1)], indexing: false });
    await flush();
    expect(qp.items.map((i) => i.result?.symbol)).toEqual(['second_fn']);
  });

  it('previews on arrow keys without taking focus, but not for the automatic first item', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('x');
    b.pending[0].resolve({ results: [result('f1', 10), result('f2', 20, 'src/c.py')], indexing: false });
    await flush();
    expect(calls.showTextDocument).toEqual([]); // first item became active on its own
    qp.arrowTo(1);
    await flush();
    expect(calls.showTextDocument).toHaveLength(1);
    const shown = calls.showTextDocument[0];
    expect(shown.uri).toBe('file:///ws/src/c.py');
    expect(shown.options.preserveFocus).toBe(true);
    expect(shown.options.preview).toBe(true);
    expect(shown.options.selection?.start).toMatchObject({ line: 20, character: 4 });
    expect(qp.visible).toBe(true);
    qp.arrowTo(0);
    await flush();
    expect(calls.showTextDocument.map((s) => s.uri)).toEqual(['file:///ws/src/c.py', 'file:///ws/src/a.py']);
  });

  it('opens the chosen result at its function on Enter and closes', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('x');
    b.pending[0].resolve({ results: [result('f1', 10), result('f2', 20, 'src/c.py')], indexing: false });
    await flush();
    qp.arrowTo(1);
    qp.accept();
    await flush();
    expect(qp.visible).toBe(false);
    expect(qp.disposed).toBe(true);
    const last = calls.showTextDocument[calls.showTextDocument.length - 1];
    expect(last.uri).toBe('file:///ws/src/c.py');
    expect(last.options.preserveFocus).toBe(false);
    expect(last.options.selection?.start).toMatchObject({ line: 20, character: 4 });
    expect(calls.revealRange[calls.revealRange.length - 1].range.start.line).toBe(20);
  });

  it('restores the original editor when cancelled after a preview', async () => {
    const b = backend();
    const original = fakeEditor(Uri.file('/ws/orig.py'));
    fakeWindow.activeTextEditor = original;
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('x');
    b.pending[0].resolve({ results: [result('f1', 10), result('f2', 20)], indexing: false });
    await flush();
    qp.arrowTo(1);
    await flush();
    qp.hide();
    await flush();
    expect(calls.showTextDocument[calls.showTextDocument.length - 1].uri).toBe('file:///ws/orig.py');
  });

  it('filters by the current file language and shows it in the title', async () => {
    const b = backend();
    fakeWindow.activeTextEditor = { ...fakeEditor(Uri.file('/ws/x.ts')), document: { uri: Uri.file('/ws/x.ts'), languageId: 'typescript' } };
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('sort users');
    opened.toggleLanguage();
    expect(b.pending[1].params.languages).toEqual(['typescript']);
    expect(qp.title).toContain('language: typescript');
    opened.toggleLanguage();
    expect(b.pending[2].params.languages).toBeUndefined();
  });

  it('uses the language button in the title bar', async () => {
    const b = backend();
    fakeWindow.activeTextEditor = fakeEditor(Uri.file('/ws/x.py'));
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('q');
    qp.buttonEmitter.fire(qp.buttons[0]);
    expect(b.pending[1].params.languages).toEqual(['python']);
  });

  it('asks for a path glob and keeps the query', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('open socket');
    calls.inputBoxValue = 'src/net/**';
    await opened.promptGlob();
    expect(qp.visible).toBe(true);
    expect(qp.value).toBe('open socket');
    expect(b.pending[b.pending.length - 1].params).toEqual({ query: 'open socket', limit: 50, pathGlob: 'src/net/**' });
    expect(qp.title).toContain('path: src/net/**');
  });

  it('searches within a folder scope (explorer context menu)', async () => {
    const b = backend();
    fakeWorkspace.workspaceFolders = [
      { uri: Uri.file('/ws'), name: 'ws', index: 0 },
      { uri: Uri.file('/other'), name: 'other', index: 1 },
    ];
    const folder = fakeWorkspace.workspaceFolders[1];
    opened = new SearchPicker(b, { debounceMs: 0, scope: { folder: folder as never, pathGlob: 'lib/**' } });
    const qp = picker();
    qp.type('hash password');
    expect(b.pending[0].params).toEqual({
      query: 'hash password',
      limit: 50,
      pathGlob: 'lib/**',
      folder: 'file:///other',
    });
    expect(qp.title).toBe('Code Search · folder: other · path: lib/**');
    b.pending[0].resolve({ results: [{ ...result('hash_pw', 3), uri: 'file:///other/lib/h.py' }], indexing: false });
    await flush();
    // multi-root: the folder name is part of the shown path
    expect(qp.items[0].description).toBe('other/lib/h.py:4');
  });

  it('shows "no results", indexing state and errors as non-results', async () => {
    const b = {
      n: 0,
      async search(): Promise<SearchResponse> {
        this.n++;
        if (this.n === 1) return { results: [], indexing: true };
        throw new Error('server exploded');
      },
    };
    opened = new SearchPicker(b, { debounceMs: 0 });
    const qp = picker();
    qp.type('a');
    await flush();
    expect(qp.items).toHaveLength(1);
    expect(qp.items[0].result).toBeUndefined();
    expect(qp.items[0].label).toContain('still being indexed');
    expect(qp.title).toContain('indexing');
    qp.type('b');
    await flush();
    expect(qp.items[0].label).toContain('Search failed');
    expect(qp.items[0].detail).toBe('server exploded');
    qp.accept(); // accepting a non-result does nothing
    expect(qp.visible).toBe(true);
  });

  it('clears the list for an empty query without asking the server', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 100 });
    const qp = picker();
    qp.type('abc');
    qp.type('   ');
    vi.advanceTimersByTime(500);
    expect(b.pending).toHaveLength(0);
    expect(qp.items).toEqual([]);
  });

  it('runs an initial query immediately-ish and sets the picker context key', async () => {
    const b = backend();
    opened = new SearchPicker(b, { debounceMs: 10, initialValue: 'retry with backoff' });
    vi.advanceTimersByTime(10);
    expect(b.pending[0].params.query).toBe('retry with backoff');
    expect(calls.executeCommand).toContainEqual(['setContext', 'codesearch.searchPickerOpen', true]);
    opened.dispose();
    expect(calls.executeCommand).toContainEqual(['setContext', 'codesearch.searchPickerOpen', false]);
  });
});
