/**
 * A small fake of the `vscode` module: just what the extension's own logic touches, with hooks
 * so tests can look at what happened. vitest aliases `vscode` to this file (vitest.config.mts).
 */

export class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  static from(...ds: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => ds.forEach((d) => d.dispose()));
  }
  dispose(): void {
    this.fn();
  }
}

export type Event<T> = (listener: (e: T) => unknown) => Disposable;

export class EventEmitter<T> {
  private listeners = new Set<(e: T) => unknown>();
  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return new Disposable(() => this.listeners.delete(listener));
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
  isEqual(o: Position): boolean {
    return o.line === this.line && o.character === this.character;
  }
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    if (typeof a === 'number') {
      this.start = new Position(a, b as number);
      this.end = new Position(c as number, d as number);
    } else {
      this.start = a;
      this.end = b as Position;
    }
  }
}

export class Selection extends Range {}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query = '',
    readonly fragment = '',
  ) {}
  static parse(value: string): Uri {
    const m = /^([a-zA-Z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(value);
    if (!m) throw new Error(`bad uri ${value}`);
    return new Uri(m[1], m[2] ?? '', decodeURIComponent(m[3] ?? ''), m[4] ?? '', m[5] ?? '');
  }
  static file(p: string): Uri {
    return new Uri('file', '', p);
  }
  static joinPath(base: Uri, ...segments: string[]): Uri {
    return new Uri(base.scheme, base.authority, [base.path.replace(/\/$/, ''), ...segments].join('/'));
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${this.authority}${this.path}`;
  }
}

export class ThemeIcon {
  constructor(readonly id: string) {}
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum TextEditorRevealType {
  Default = 0,
  InCenter = 1,
  InCenterIfOutsideViewport = 2,
  AtTop = 3,
}

export enum ViewColumn {
  Active = -1,
  One = 1,
}

export interface CancellationToken {
  isCancellationRequested: boolean;
  onCancellationRequested: Event<void>;
}

export class CancellationTokenSource {
  private emitter = new EventEmitter<void>();
  readonly token: CancellationToken = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    if (!this.token.isCancellationRequested) {
      this.token.isCancellationRequested = true;
      this.emitter.fire();
    }
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

// ---- QuickPick ---------------------------------------------------------------------------------

export interface QuickPickItem {
  label: string;
  description?: string;
  detail?: string;
  alwaysShow?: boolean;
}

export interface QuickInputButton {
  iconPath: ThemeIcon;
  tooltip?: string;
}

export class FakeQuickPick<T extends QuickPickItem> {
  value = '';
  placeholder = '';
  title: string | undefined;
  busy = false;
  matchOnDescription = true;
  matchOnDetail = true;
  ignoreFocusOut = false;
  buttons: QuickInputButton[] = [];
  visible = false;
  disposed = false;
  activeItems: T[] = [];
  selectedItems: T[] = [];
  private _items: T[] = [];
  readonly valueEmitter = new EventEmitter<string>();
  readonly activeEmitter = new EventEmitter<readonly T[]>();
  readonly acceptEmitter = new EventEmitter<void>();
  readonly buttonEmitter = new EventEmitter<QuickInputButton>();
  readonly hideEmitter = new EventEmitter<void>();
  onDidChangeValue = this.valueEmitter.event;
  onDidChangeActive = this.activeEmitter.event;
  onDidAccept = this.acceptEmitter.event;
  onDidTriggerButton = this.buttonEmitter.event;
  onDidHide = this.hideEmitter.event;

  get items(): T[] {
    return this._items;
  }
  set items(items: T[]) {
    this._items = items;
    // Like VS Code: the first item becomes active after an update.
    this.activeItems = items.slice(0, 1);
    if (items.length > 0) this.activeEmitter.fire(this.activeItems);
  }
  show(): void {
    this.visible = true;
  }
  hide(): void {
    if (this.visible) {
      this.visible = false;
      this.hideEmitter.fire();
    }
  }
  dispose(): void {
    this.disposed = true;
  }
  // test helpers
  type(value: string): void {
    this.value = value;
    this.valueEmitter.fire(value);
  }
  arrowTo(index: number): void {
    this.activeItems = [this._items[index]];
    this.activeEmitter.fire(this.activeItems);
  }
  accept(): void {
    this.selectedItems = this.activeItems;
    this.acceptEmitter.fire();
  }
}

// ---- window / workspace / commands -------------------------------------------------------------

export interface ShownDocument {
  uri: string;
  options: { preview?: boolean; preserveFocus?: boolean; selection?: Range };
}

export const calls = {
  showTextDocument: [] as ShownDocument[],
  revealRange: [] as { range: Range; type: TextEditorRevealType }[],
  executeCommand: [] as unknown[][],
  infoMessages: [] as string[],
  errorMessages: [] as string[],
  quickPicks: [] as FakeQuickPick<QuickPickItem>[],
  inputBoxValue: undefined as string | undefined,
};

export function resetFake(): void {
  calls.showTextDocument.length = 0;
  calls.revealRange.length = 0;
  calls.executeCommand.length = 0;
  calls.infoMessages.length = 0;
  calls.errorMessages.length = 0;
  calls.quickPicks.length = 0;
  calls.inputBoxValue = undefined;
  window.activeTextEditor = undefined;
  workspace.workspaceFolders = [{ uri: Uri.file('/ws'), name: 'ws', index: 0 }];
}

function fakeEditor(uri: Uri, languageId = 'python') {
  return {
    document: { uri, languageId },
    viewColumn: ViewColumn.One,
    selection: new Selection(0, 0, 0, 0),
    revealRange(range: Range, type: TextEditorRevealType) {
      calls.revealRange.push({ range, type });
    },
    setDecorations() {},
  };
}

export const window = {
  activeTextEditor: undefined as ReturnType<typeof fakeEditor> | undefined,
  createQuickPick<T extends QuickPickItem>(): FakeQuickPick<T> {
    const qp = new FakeQuickPick<T>();
    calls.quickPicks.push(qp as unknown as FakeQuickPick<QuickPickItem>);
    return qp;
  },
  async showTextDocument(target: Uri | { uri: Uri }, options: ShownDocument['options'] = {}) {
    const uri = target instanceof Uri ? target : target.uri;
    calls.showTextDocument.push({ uri: uri.toString(), options });
    return fakeEditor(uri);
  },
  createTextEditorDecorationType() {
    return { dispose() {} };
  },
  createStatusBarItem() {
    return {
      text: '',
      tooltip: '',
      command: undefined,
      backgroundColor: undefined,
      name: '',
      show() {},
      dispose() {},
    };
  },
  async showInformationMessage(message: string) {
    calls.infoMessages.push(message);
    return undefined;
  },
  async showErrorMessage(message: string) {
    calls.errorMessages.push(message);
    return undefined;
  },
  async showInputBox() {
    return calls.inputBoxValue;
  },
};

export const workspace = {
  workspaceFolders: [{ uri: Uri.file('/ws'), name: 'ws', index: 0 }] as
    | { uri: Uri; name: string; index: number }[]
    | undefined,
  asRelativePath(target: Uri | string, includeWorkspaceFolder?: boolean): string {
    const p = typeof target === 'string' ? target : target.path;
    for (const f of this.workspaceFolders ?? []) {
      const root = f.uri.path.replace(/\/$/, '') + '/';
      if (p.startsWith(root)) {
        const rel = p.slice(root.length);
        return includeWorkspaceFolder ? `${f.name}/${rel}` : rel;
      }
    }
    return p;
  },
};

export const commands = {
  async executeCommand(...args: unknown[]) {
    calls.executeCommand.push(args);
    return undefined;
  },
  registerCommand() {
    return new Disposable();
  },
};

export const extensions = {
  getExtension() {
    return undefined;
  },
};

export { fakeEditor };
