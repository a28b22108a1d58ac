/**
 * The `codesearch/search` protocol types and how a result becomes a QuickPick item.
 * Pure logic (no `vscode` import).
 */

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

export interface SearchParams {
  query: string;
  limit?: number;
  languages?: string[];
  pathGlob?: string;
  /** A workspace folder URI. */
  folder?: string;
}

export interface SearchResult {
  uri: string;
  range: LspRange;
  /** The definition's own name; `qualified_name` adds its class or module (`Pool.acquire`). */
  symbol: string;
  qualified_name?: string;
  kind: string;
  language: string;
  score: number;
  snippet: string;
}

export interface SearchResponse {
  results: SearchResult[];
  indexing: boolean;
}

/** A QuickPick item (structurally compatible with `vscode.QuickPickItem`) carrying its result. */
export interface ResultItem {
  label: string;
  description?: string;
  detail?: string;
  alwaysShow: true;
  result: SearchResult;
}

const KIND_ICON: Record<string, string> = {
  function: 'symbol-function',
  method: 'symbol-method',
  class: 'symbol-class',
  struct: 'symbol-struct',
  interface: 'symbol-interface',
  trait: 'symbol-interface',
  enum: 'symbol-enum',
  module: 'symbol-module',
  namespace: 'symbol-namespace',
  constant: 'symbol-constant',
  variable: 'symbol-variable',
  field: 'symbol-field',
  property: 'symbol-property',
  constructor: 'symbol-constructor',
  window: 'file-code',
};

export function kindIcon(kind: string): string {
  return KIND_ICON[kind.toLowerCase()] ?? 'symbol-misc';
}

export const SNIPPET_MAX = 120;

/** One line of the snippet worth showing: the first non-blank line that isn't a decorator. */
export function snippetLine(snippet: string, max = SNIPPET_MAX): string {
  const lines = snippet
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const line = lines.find((l) => !l.startsWith('@') && !l.startsWith('#[')) ?? lines[0] ?? '';
  const collapsed = line.replace(/\s+/g, ' ');
  return collapsed.length > max ? `${collapsed.slice(0, max - 1)}…` : collapsed;
}

function basename(uri: string): string {
  const clean = uri.split(/[?#]/)[0].replace(/\/+$/, '');
  const last = clean.slice(clean.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** Codicon syntax `$(name)` is interpreted in labels; escape anything that looks like one. */
function escapeIcons(text: string): string {
  return text.replace(/\$\(/g, '\\$(');
}

/**
 * @param relativePath maps a result URI to the path shown to the user (in VS Code
 *   `workspace.asRelativePath(uri, multiRoot)`, which adds the folder name in multi-root workspaces).
 */
export function toResultItem(result: SearchResult, relativePath: (uri: string) => string): ResultItem {
  const symbol = result.qualified_name || result.symbol;
  const name = symbol && symbol.trim() !== '' ? symbol : `${basename(result.uri)} (${result.kind || 'code'})`;
  const line = result.range.start.line + 1;
  return {
    label: `$(${kindIcon(result.kind)}) ${escapeIcons(name)}`,
    description: `${relativePath(result.uri)}:${line}`,
    detail: escapeIcons(snippetLine(result.snippet)),
    alwaysShow: true,
    result,
  };
}

export function toResultItems(
  response: SearchResponse | null | undefined,
  relativePath: (uri: string) => string,
): ResultItem[] {
  if (!response || !Array.isArray(response.results)) {
    return [];
  }
  return response.results.map((r) => toResultItem(r, relativePath));
}

/**
 * Which results the picker lists: the first `MIN_LISTED`, then every further one whose score is
 * within `SCORE_MARGIN` of the best. The picker asks for 50 chunks, and listing all of them showed
 * chunks that have nothing to do with the query. The server's fused score is a cosine plus bounded
 * boosts, so a difference of scores means the same on every query (a ratio would not: scores near
 * zero, or an exact-name boost of 1.0, would make it meaningless).
 *
 * The numbers come from `bench/result_cutoff.py` (docs/benchmarks.md): 0.3 is the smallest margin
 * (in steps of 0.05) that still lists the first relevant hit of at least 97.5 % of the queries whose
 * 50 hold one, on each dev set (fresh/python 98.5 %, fresh/javascript 98.8 %, CoSQA 97.6 %), with
 * the first 10 always listed; the picker then lists a median of 15-21 results instead of 50.
 */
export const SCORE_MARGIN = 0.3;
export const MIN_LISTED = 10;

export function nearBest<T extends { score: number }>(
  results: readonly T[],
  margin = SCORE_MARGIN,
  minListed = MIN_LISTED,
): T[] {
  const scores = results.map((r) => r.score).filter((s) => typeof s === 'number' && Number.isFinite(s));
  if (scores.length === 0) {
    return [...results];
  }
  const best = Math.max(...scores);
  // A result without a usable score is kept: the cut is a convenience, never a reason to hide one.
  return results.filter((r, i) => i < minListed || !(typeof r.score === 'number' && Number.isFinite(r.score)) || r.score >= best - margin);
}

/**
 * VS Code language ids → the language names the server uses (see server/codesearch/languages.py).
 * Ids not listed are the same on both sides (python, go, rust, java, cpp, csharp, ...).
 */
const LANGUAGE_ALIASES: Record<string, string[]> = {
  typescriptreact: ['tsx'],
  javascriptreact: ['javascript'],
  shellscript: ['bash'],
  'objective-c': ['objc'],
  'objective-cpp': ['objc'],
  'cuda-cpp': ['cpp'],
  makefile: ['make'],
  plaintext: ['text'],
  restructuredtext: ['rst'],
  jsonc: ['json'],
  sass: ['scss'],
  bat: ['batch'],
  tex: ['latex'],
  properties: ['ini'],
  proto3: ['protobuf'],
  proto: ['protobuf'],
};

export function languagesForLanguageId(languageId: string | undefined): string[] | undefined {
  if (!languageId || languageId === 'Log' || languageId === 'log' || languageId === 'code-text-binary') {
    return undefined;
  }
  return LANGUAGE_ALIASES[languageId] ?? [languageId];
}

/** The glob that restricts a search to a folder, given its path relative to the workspace folder. */
export function folderGlob(relativeFolder: string): string | undefined {
  const rel = relativeFolder.replace(/\\/g, '/').replace(/^\.\/?/, '').replace(/\/+$/, '');
  if (rel === '' || rel === '.') {
    return undefined;
  }
  const escaped = rel.replace(/[[\]{}*?]/g, (c) => `[${c}]`);
  return `${escaped}/**`;
}
