/**
 * The "Search by Meaning" QuickPick: search as you type (debounced, stale responses dropped),
 * preview on arrow keys, open on Enter, filters (current file's language, a path glob, a folder).
 */
import * as vscode from 'vscode';
import { LatestOnlySearch } from './debounce';
import {
  languagesForLanguageId,
  nearBest,
  type ResultItem,
  type SearchParams,
  type SearchResponse,
  type SearchResult,
  toResultItems,
} from './results';

export interface SearchBackend {
  search(params: SearchParams, token: vscode.CancellationToken): Promise<SearchResponse>;
}

export interface SearchScope {
  /** Restrict to this workspace folder. */
  folder?: vscode.WorkspaceFolder;
  /** Restrict to paths matching this glob (relative to the workspace folder). */
  pathGlob?: string;
  /** Restrict to these server language names; `languageLabel` is what the user sees. */
  languages?: string[];
  languageLabel?: string;
}

export interface SearchPickerOptions {
  scope?: SearchScope;
  initialValue?: string;
  debounceMs?: number;
  limit?: number;
  /** Called with a log line (e.g. the output channel). */
  log?: (line: string) => void;
}

interface InfoItem extends vscode.QuickPickItem {
  result?: undefined;
}

type Item = ResultItem | InfoItem;

export const DEFAULT_DEBOUNCE_MS = 200;
export const DEFAULT_LIMIT = 50;
export const PICKER_CONTEXT_KEY = 'codesearch.searchPickerOpen';

export function toVsRange(r: SearchResult['range']): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

export function relativePathOf(uri: string): string {
  const parsed = vscode.Uri.parse(uri);
  const multiRoot = (vscode.workspace.workspaceFolders?.length ?? 0) > 1;
  return vscode.workspace.asRelativePath(parsed, multiRoot);
}

let current: SearchPicker | undefined;

/** The picker that is open now, if any (for the filter keybindings). */
export function activePicker(): SearchPicker | undefined {
  return current;
}

export class SearchPicker implements vscode.Disposable {
  readonly quickPick: vscode.QuickPick<Item>;
  private readonly runner: LatestOnlySearch<string, SearchResponse>;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly originalEditor: vscode.TextEditor | undefined;
  private readonly originalLanguageId: string | undefined;
  private readonly scope: SearchScope;
  private readonly limit: number;
  private readonly highlight: vscode.TextEditorDecorationType;
  private highlightedEditor: vscode.TextEditor | undefined;
  private suppressActive: Item | undefined;
  private previewed = false;
  private accepted = false;
  private suspended = false;
  private indexing = false;
  private disposed = false;
  private readonly log: (line: string) => void;

  private readonly languageButton: vscode.QuickInputButton;
  private readonly languageButtonOn: vscode.QuickInputButton;
  private readonly globButton: vscode.QuickInputButton;
  private readonly globButtonOn: vscode.QuickInputButton;
  private readonly clearButton: vscode.QuickInputButton;

  constructor(
    private readonly backend: SearchBackend,
    options: SearchPickerOptions = {},
  ) {
    current?.dispose();
    current = this;
    this.log = options.log ?? (() => undefined);
    this.scope = { ...options.scope };
    this.limit = options.limit ?? DEFAULT_LIMIT;
    this.originalEditor = vscode.window.activeTextEditor;
    this.originalLanguageId = this.originalEditor?.document.languageId;
    this.highlight = vscode.window.createTextEditorDecorationType({
      isWholeLine: true,
      backgroundColor: new vscode.ThemeColor('editor.rangeHighlightBackground'),
    });

    const lang = this.originalLanguageId ?? 'current file';
    this.languageButton = { iconPath: new vscode.ThemeIcon('symbol-namespace'), tooltip: `Only ${lang} (Alt+L)` };
    this.languageButtonOn = { iconPath: new vscode.ThemeIcon('pass-filled'), tooltip: `Search all languages (Alt+L)` };
    this.globButton = { iconPath: new vscode.ThemeIcon('folder'), tooltip: 'Only paths matching a glob… (Alt+G)' };
    this.globButtonOn = { iconPath: new vscode.ThemeIcon('folder-active'), tooltip: 'Change the path glob… (Alt+G)' };
    this.clearButton = { iconPath: new vscode.ThemeIcon('clear-all'), tooltip: 'Clear filters' };

    const qp = vscode.window.createQuickPick<Item>();
    this.quickPick = qp;
    qp.placeholder = 'Describe what the code does, e.g. "parse the config file"';
    qp.matchOnDescription = false;
    qp.matchOnDetail = false;
    qp.ignoreFocusOut = false;

    this.runner = new LatestOnlySearch<string, SearchResponse>({
      delayMs: options.debounceMs ?? DEFAULT_DEBOUNCE_MS,
      run: (query, signal) => this.runSearch(query, signal),
      onResult: (response) => this.showResponse(response),
      onError: (error) => this.showError(error),
      onBusyChange: (busy) => {
        qp.busy = busy;
      },
    });

    this.disposables.push(
      qp.onDidChangeValue((value) => this.onValue(value)),
      qp.onDidChangeActive((items) => this.onActive(items)),
      qp.onDidAccept(() => this.onAccept()),
      qp.onDidTriggerButton((button) => this.onButton(button)),
      qp.onDidHide(() => this.onHide()),
    );
    this.updateChrome();
    void vscode.commands.executeCommand('setContext', PICKER_CONTEXT_KEY, true);
    qp.show();
    if (options.initialValue) {
      qp.value = options.initialValue;
      this.onValue(options.initialValue);
    }
  }

  get filters(): Readonly<SearchScope> {
    return this.scope;
  }

  // --- searching -----------------------------------------------------------------------------

  params(query: string): SearchParams {
    const params: SearchParams = { query, limit: this.limit };
    if (this.scope.languages && this.scope.languages.length > 0) params.languages = this.scope.languages;
    if (this.scope.pathGlob) params.pathGlob = this.scope.pathGlob;
    if (this.scope.folder) params.folder = this.scope.folder.uri.toString();
    return params;
  }

  private async runSearch(query: string, signal: AbortSignal): Promise<SearchResponse> {
    const cts = new vscode.CancellationTokenSource();
    const onAbort = () => cts.cancel();
    signal.addEventListener('abort', onAbort);
    try {
      return await this.backend.search(this.params(query), cts.token);
    } finally {
      signal.removeEventListener('abort', onAbort);
      cts.dispose();
    }
  }

  private onValue(value: string): void {
    if (value.trim() === '') {
      this.runner.cancel();
      this.setItems([]);
      return;
    }
    this.runner.trigger(value);
  }

  /** Runs the current query again now (after a filter change). */
  refresh(): void {
    this.updateChrome();
    const value = this.quickPick.value;
    if (value.trim() !== '') {
      this.runner.trigger(value, true);
    }
  }

  private showResponse(response: SearchResponse): void {
    this.indexing = !!response?.indexing;
    const results = Array.isArray(response?.results) ? nearBest(response.results) : [];
    const items: Item[] = toResultItems({ results, indexing: this.indexing }, relativePathOf);
    if (items.length === 0) {
      items.push({
        label: this.indexing ? '$(sync~spin) No results yet: the workspace is still being indexed' : 'No results',
        alwaysShow: true,
      });
    }
    this.setItems(items);
    this.updateChrome();
  }

  private showError(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.log(`Search failed: ${message}`);
    this.setItems([{ label: '$(error) Search failed', detail: message, alwaysShow: true }]);
  }

  private setItems(items: Item[]): void {
    // VS Code makes the first item active after an update; that is not the user moving the
    // selection, so it must not open a preview.
    this.suppressActive = items[0];
    this.quickPick.items = items;
  }

  // --- preview / open ------------------------------------------------------------------------

  private onActive(items: readonly Item[]): void {
    const item = items[0];
    if (item !== undefined && item === this.suppressActive) {
      this.suppressActive = undefined;
      return;
    }
    this.suppressActive = undefined;
    if (item?.result) {
      void this.preview(item.result);
    }
  }

  private async preview(result: SearchResult): Promise<void> {
    try {
      const range = toVsRange(result.range);
      const editor = await vscode.window.showTextDocument(vscode.Uri.parse(result.uri), {
        preview: true,
        preserveFocus: true,
        viewColumn: this.originalEditor?.viewColumn,
        selection: new vscode.Range(range.start, range.start),
      });
      if (this.disposed && !this.accepted) {
        return;
      }
      this.previewed = true;
      editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      this.highlightedEditor?.setDecorations(this.highlight, []);
      editor.setDecorations(this.highlight, [range]);
      this.highlightedEditor = editor;
    } catch (e) {
      this.log(`Preview failed for ${result.uri}: ${String(e)}`);
    }
  }

  private onAccept(): void {
    const item = this.quickPick.selectedItems[0] ?? this.quickPick.activeItems[0];
    if (!item?.result) {
      return;
    }
    this.accepted = true;
    const result = item.result;
    this.quickPick.hide();
    void openResult(result, this.originalEditor?.viewColumn).catch((e) =>
      this.log(`Opening ${result.uri} failed: ${String(e)}`),
    );
  }

  // --- filters -------------------------------------------------------------------------------

  toggleLanguage(): void {
    if (this.scope.languages) {
      this.scope.languages = undefined;
      this.scope.languageLabel = undefined;
    } else {
      const languages = languagesForLanguageId(this.originalLanguageId);
      if (!languages) {
        void vscode.window.showInformationMessage('Code Search: open a file first to filter by its language.');
        return;
      }
      this.scope.languages = languages;
      this.scope.languageLabel = this.originalLanguageId;
    }
    this.refresh();
  }

  async promptGlob(): Promise<void> {
    if (this.suspended) {
      return; // the glob input box is already open
    }
    const value = this.quickPick.value;
    this.suspended = true;
    let glob: string | undefined;
    try {
      glob = await vscode.window.showInputBox({
        title: 'Code Search: only search paths matching a glob',
        prompt: 'Relative to the workspace folder, e.g. src/** or **/*.py (empty = no path filter)',
        value: this.scope.pathGlob ?? '',
        placeHolder: 'src/**',
      });
    } finally {
      this.suspended = false;
    }
    if (this.disposed) {
      return;
    }
    if (glob !== undefined) {
      this.scope.pathGlob = glob.trim() === '' ? undefined : glob.trim();
    }
    this.quickPick.show();
    this.quickPick.value = value;
    this.refresh();
  }

  clearFilters(): void {
    this.scope.languages = undefined;
    this.scope.languageLabel = undefined;
    this.scope.pathGlob = undefined;
    this.scope.folder = undefined;
    this.refresh();
  }

  private onButton(button: vscode.QuickInputButton): void {
    if (button === this.languageButton || button === this.languageButtonOn) {
      this.toggleLanguage();
    } else if (button === this.globButton || button === this.globButtonOn) {
      void this.promptGlob();
    } else if (button === this.clearButton) {
      this.clearFilters();
    }
  }

  private updateChrome(): void {
    const parts: string[] = [];
    if (this.scope.folder) parts.push(`folder: ${this.scope.folder.name}`);
    if (this.scope.pathGlob) parts.push(`path: ${this.scope.pathGlob}`);
    if (this.scope.languageLabel) parts.push(`language: ${this.scope.languageLabel}`);
    if (this.indexing) parts.push('indexing, results may be incomplete');
    this.quickPick.title = ['Code Search', ...parts].join(' · ');
    const buttons: vscode.QuickInputButton[] = [
      this.scope.languages ? this.languageButtonOn : this.languageButton,
      this.scope.pathGlob ? this.globButtonOn : this.globButton,
    ];
    if (this.scope.languages || this.scope.pathGlob || this.scope.folder) {
      buttons.push(this.clearButton);
    }
    this.quickPick.buttons = buttons;
  }

  // --- life cycle ----------------------------------------------------------------------------

  private onHide(): void {
    if (this.suspended) {
      return; // hidden by our own input box; it comes back
    }
    if (!this.accepted && this.previewed && this.originalEditor) {
      const e = this.originalEditor;
      void vscode.window
        .showTextDocument(e.document, { viewColumn: e.viewColumn, selection: e.selection, preserveFocus: false })
        .then(undefined, () => undefined);
    }
    this.dispose();
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    if (current === this) {
      current = undefined;
      void vscode.commands.executeCommand('setContext', PICKER_CONTEXT_KEY, false);
    }
    this.runner.dispose();
    this.highlightedEditor?.setDecorations(this.highlight, []);
    this.highlight.dispose();
    for (const d of this.disposables) d.dispose();
    this.quickPick.dispose();
  }
}

/** Opens a result at its function: cursor on the first line, the range scrolled into view. */
export async function openResult(
  result: SearchResult,
  viewColumn?: vscode.ViewColumn,
): Promise<vscode.TextEditor> {
  const range = toVsRange(result.range);
  const editor = await vscode.window.showTextDocument(vscode.Uri.parse(result.uri), {
    preview: false,
    preserveFocus: false,
    viewColumn,
    selection: new vscode.Range(range.start, range.start),
  });
  editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  return editor;
}
