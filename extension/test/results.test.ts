import { describe, expect, it } from 'vitest';
import {
  folderGlob,
  kindIcon,
  languagesForLanguageId,
  MIN_LISTED,
  nearBest,
  SCORE_MARGIN,
  type SearchResult,
  snippetLine,
  toResultItem,
  toResultItems,
} from '../src/results';

const rel = (uri: string) => uri.replace('file:///ws/', '');

function result(over: Partial<SearchResult> = {}): SearchResult {
  return {
    uri: 'file:///ws/src/config.py',
    range: { start: { line: 41, character: 0 }, end: { line: 55, character: 10 } },
    symbol: 'load_config',
    kind: 'function',
    language: 'python',
    score: 0.83,
    snippet: '@cache\ndef load_config(path: str) -> dict:\n    """Read the YAML config."""\n',
    ...over,
  };
}

describe('toResultItem', () => {
  it('shows symbol, relative path with 1-based line, and a one-line snippet', () => {
    const item = toResultItem(result(), rel);
    expect(item.label).toBe('$(symbol-function) load_config');
    expect(item.description).toBe('src/config.py:42');
    expect(item.detail).toBe('def load_config(path: str) -> dict:');
    expect(item.result.range.start.line).toBe(41);
  });

  it('always sets alwaysShow so VS Code does not fuzzy-filter natural-language results away', () => {
    const items = toResultItems(
      { results: [result(), result({ symbol: 'Parser', kind: 'class' }), result({ symbol: '', kind: 'module' })], indexing: false },
      rel,
    );
    expect(items).toHaveLength(3);
    expect(items.every((i) => i.alwaysShow === true)).toBe(true);
  });

  it('keeps the server order', () => {
    const items = toResultItems(
      { results: [result({ symbol: 'b', score: 0.2 }), result({ symbol: 'a', score: 0.9 })], indexing: false },
      rel,
    );
    expect(items.map((i) => i.result.symbol)).toEqual(['b', 'a']);
  });

  it('shows the qualified name of a method', () => {
    const item = toResultItem(result({ symbol: 'acquire', qualified_name: 'ConnectionPool.acquire', kind: 'method' }), rel);
    expect(item.label).toBe('$(symbol-method) ConnectionPool.acquire');
  });

  it('names results without a symbol after the file and kind', () => {
    const item = toResultItem(result({ symbol: '', kind: 'module', uri: 'file:///ws/src/my%20file.py' }), rel);
    expect(item.label).toBe('$(symbol-module) my file.py (module)');
  });

  it('escapes codicon syntax coming from code', () => {
    const item = toResultItem(result({ symbol: '$(weird)', snippet: 'x = "$(echo hi)"' }), rel);
    expect(item.label).toBe('$(symbol-function) \\$(weird)');
    expect(item.detail).toBe('x = "\\$(echo hi)"');
  });

  it('copes with a missing or malformed response', () => {
    expect(toResultItems(undefined, rel)).toEqual([]);
    expect(toResultItems({ results: undefined as never, indexing: true }, rel)).toEqual([]);
  });
});

describe('nearBest', () => {
  const scored = (...scores: number[]) => scores.map((score, i) => ({ id: i, score }));
  const ids = (rs: { id: number }[]) => rs.map((r) => r.id);

  it('keeps every result within the margin of the best, in the server order', () => {
    expect(ids(nearBest(scored(0.9, 0.8, 0.7, 0.65, 0.1, 0.05), 0.25, 1))).toEqual([0, 1, 2, 3]);
    expect(ids(nearBest(scored(0.2, 0.9, 0.1), 0.25, 1))).toEqual([0, 1]); // the first is always listed
  });

  it('always lists the first few, however far below the best they are', () => {
    // an exact-name hit (+1.0) must not hide the next results
    expect(ids(nearBest(scored(1.6, 0.5, 0.45, 0.4, 0.1), 0.25, 3))).toEqual([0, 1, 2]);
    expect(nearBest(scored(0.5, 0.4), 0.01, 5)).toHaveLength(2);
  });

  it('uses the shipped margin and minimum by default', () => {
    const many = scored(...Array.from({ length: 50 }, (_, i) => 1 - i * 0.05));
    const kept = nearBest(many);
    expect(kept.length).toBe(Math.max(MIN_LISTED, many.filter((r) => r.score >= 1 - SCORE_MARGIN).length));
  });

  it('copes with negative, missing and odd scores', () => {
    expect(ids(nearBest(scored(-0.1, -0.2, -0.9), 0.25, 1))).toEqual([0, 1]);
    expect(ids(nearBest([{ id: 0, score: 0.9 }, { id: 1, score: Number.NaN }, { id: 2, score: 0.1 }], 0.25, 1))).toEqual([0, 1]);
    expect(nearBest([], 0.25, 1)).toEqual([]);
    expect(ids(nearBest(scored(Number.NaN, Number.NaN), 0.25, 1))).toEqual([0, 1]);
  });
});

describe('snippetLine', () => {
  it('collapses whitespace, skips blank and decorator lines, truncates', () => {
    expect(snippetLine('\n\n   fn   main()  {\n}')).toBe('fn main() {');
    expect(snippetLine('#[derive(Debug)]\nstruct A;')).toBe('struct A;');
    expect(snippetLine('@decorator')).toBe('@decorator');
    expect(snippetLine('')).toBe('');
    const long = snippetLine(`def f(${'x, '.repeat(100)}):`, 40);
    expect(long).toHaveLength(40);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('kindIcon', () => {
  it('maps kinds to codicons with a fallback', () => {
    expect(kindIcon('method')).toBe('symbol-method');
    expect(kindIcon('Class')).toBe('symbol-class');
    expect(kindIcon('window')).toBe('file-code');
    expect(kindIcon('something')).toBe('symbol-misc');
  });
});

describe('languagesForLanguageId', () => {
  it('maps VS Code language ids to server names', () => {
    expect(languagesForLanguageId('python')).toEqual(['python']);
    expect(languagesForLanguageId('typescriptreact')).toEqual(['tsx']);
    expect(languagesForLanguageId('csharp')).toEqual(['csharp']);
    expect(languagesForLanguageId('shellscript')).toEqual(['bash']);
    expect(languagesForLanguageId('go')).toEqual(['go']);
    expect(languagesForLanguageId(undefined)).toBeUndefined();
    expect(languagesForLanguageId('Log')).toBeUndefined();
  });
});

describe('folderGlob', () => {
  it('builds a recursive glob for a folder relative to the workspace folder', () => {
    expect(folderGlob('src/utils')).toBe('src/utils/**');
    expect(folderGlob('src\\utils\\')).toBe('src/utils/**');
    expect(folderGlob('')).toBeUndefined();
    expect(folderGlob('.')).toBeUndefined();
    expect(folderGlob('a[1]/b*')).toBe('a[[]1[]]/b[*]/**');
  });
});
