/**
 * What the status bar item shows, computed from the server's `$/progress` and `codesearch/status`
 * messages and the client's own life cycle. Pure logic (no `vscode` import): `StatusTracker` keeps
 * the state, `render` turns it into text/tooltip/command.
 */

export interface StatusNotification {
  state: 'indexing' | 'ready' | 'error';
  message?: string;
  model?: string;
  provider?: string;
  files?: number;
  chunks?: number;
  embedded?: number;
  percentage?: number;
}

/** `$/progress` work-done values (begin/report/end). */
export interface WorkDoneProgressValue {
  kind: 'begin' | 'report' | 'end';
  title?: string;
  message?: string;
  percentage?: number;
}

export type Phase =
  | 'starting'
  | 'running'
  | 'indexing'
  | 'ready'
  | 'error'
  | 'restarting'
  | 'stopped'
  | 'notFound';

export interface StatusState {
  phase: Phase;
  message?: string;
  percentage?: number;
  model?: string;
  provider?: string;
  files?: number;
  chunks?: number;
  embedded?: number;
}

export type Severity = 'none' | 'warning' | 'error';

export interface StatusView {
  text: string;
  tooltip: string;
  /** A command id run on click. */
  command: string;
  severity: Severity;
  /** Screen-reader label; starts with "Code Search <phase>" (the E2E test reads it too). */
  accessibilityLabel: string;
}

export const COMMAND_SEARCH = 'codesearch.search';
export const COMMAND_SHOW_LOG = 'codesearch.showLog';

export function providerLabel(provider: string | undefined): string | undefined {
  if (!provider) {
    return undefined;
  }
  const short = provider.replace(/ExecutionProvider$/, '');
  return short === '' ? provider : short;
}

export function compactNumber(n: number): string {
  if (n < 1000) {
    return String(n);
  }
  if (n < 10000) {
    return `${(n / 1000).toFixed(1).replace(/\.0$/, '')}k`;
  }
  if (n < 1_000_000) {
    return `${Math.round(n / 1000)}k`;
  }
  return `${(n / 1_000_000).toFixed(1).replace(/\.0$/, '')}M`;
}

function clampPercentage(p: number | undefined): number | undefined {
  if (typeof p !== 'number' || !Number.isFinite(p)) {
    return undefined;
  }
  return Math.max(0, Math.min(100, Math.round(p)));
}

export class StatusTracker {
  private state: StatusState = { phase: 'starting' };
  private readonly progressTokens = new Set<string | number>();
  private lastServerState: { state: StatusNotification['state']; message?: string } | undefined;

  get current(): StatusState {
    return { ...this.state };
  }

  starting(): StatusState {
    this.progressTokens.clear();
    this.state = { ...this.keepInfo(), phase: 'starting', message: undefined, percentage: undefined };
    return this.current;
  }

  restarting(attempt: number, max: number): StatusState {
    this.progressTokens.clear();
    this.state = {
      ...this.keepInfo(),
      phase: 'restarting',
      message: `The server stopped unexpectedly; restarting (${attempt}/${max})`,
    };
    return this.current;
  }

  failed(message: string): StatusState {
    this.progressTokens.clear();
    this.state = { ...this.keepInfo(), phase: 'error', message, percentage: undefined };
    return this.current;
  }

  notFound(message: string): StatusState {
    this.progressTokens.clear();
    this.state = { phase: 'notFound', message };
    return this.current;
  }

  stopped(): StatusState {
    this.progressTokens.clear();
    this.state = { ...this.keepInfo(), phase: 'stopped', message: undefined, percentage: undefined };
    return this.current;
  }

  /** The client is running; the server has not said anything about its index yet. */
  running(): StatusState {
    if (this.state.phase === 'starting' || this.state.phase === 'restarting') {
      this.state = { ...this.state, phase: 'running', message: undefined };
    }
    return this.current;
  }

  progress(token: string | number, value: WorkDoneProgressValue): StatusState {
    if (value.kind === 'begin' || value.kind === 'report') {
      this.progressTokens.add(token);
      const message = value.message ?? (value.kind === 'begin' ? value.title : undefined) ?? this.state.message;
      const percentage = clampPercentage(value.percentage) ?? this.state.percentage;
      // A report can arrive after the server already said the run ended in an error; only a new
      // `begin` leaves the error state.
      if (value.kind === 'report' && this.state.phase === 'error') {
        return this.current;
      }
      this.state = { ...this.state, phase: 'indexing', message, percentage };
    } else if (value.kind === 'end') {
      this.progressTokens.delete(token);
      if (this.progressTokens.size === 0 && this.state.phase === 'indexing') {
        // The server's own status decides between ready and error; until it says otherwise the
        // end of the progress means ready.
        const failed = this.lastServerState?.state === 'error';
        this.state = {
          ...this.state,
          phase: failed ? 'error' : 'ready',
          message: failed ? this.lastServerState?.message : value.message,
          percentage: undefined,
        };
      }
    }
    return this.current;
  }

  status(n: StatusNotification): StatusState {
    this.lastServerState = { state: n.state, message: n.message };
    const info: Partial<StatusState> = {};
    for (const key of ['model', 'provider', 'files', 'chunks', 'embedded'] as const) {
      if (n[key] !== undefined && n[key] !== null) {
        (info as Record<string, unknown>)[key] = n[key];
      }
    }
    const phase: Phase = n.state === 'indexing' ? 'indexing' : n.state === 'error' ? 'error' : 'ready';
    this.state = {
      ...this.state,
      ...info,
      phase,
      message: n.message,
      percentage: phase === 'indexing' ? (clampPercentage(n.percentage) ?? this.state.percentage) : undefined,
    };
    return this.current;
  }

  private keepInfo(): Partial<StatusState> {
    const { model, provider, files, chunks, embedded } = this.state;
    return { model, provider, files, chunks, embedded };
  }
}

/** Known failures, most specific first: what the status bar says (the tooltip has the whole message). */
const SHORT_REASONS: ReadonlyArray<readonly [RegExp, string]> = [
  [/model could not be loaded/i, 'model not loaded'],
  [/failed to start/i, 'server failed to start'],
  [/crashed|stopped unexpectedly/i, 'server crashed'],
  [/cannot index|indexing failed/i, 'indexing failed'],
];
export const SHORT_REASON_MAX = 32;

/** A few words for the status bar text from the server's (or client's) error message. */
export function shortReason(message: string | undefined): string {
  const text = (message ?? '').trim();
  for (const [pattern, reason] of SHORT_REASONS) {
    if (pattern.test(text)) {
      return reason;
    }
  }
  // Otherwise the message's first clause, without a leading "Code Search:" or folder names.
  const clause = text.replace(/^Code Search:\s*/i, '').split(/[;\n]/)[0].replace(/^[^:]{1,40}:\s+/, '').trim();
  if (clause === '') {
    return 'error';
  }
  return clause.length > SHORT_REASON_MAX ? `${clause.slice(0, SHORT_REASON_MAX - 1).trimEnd()}…` : clause;
}

function detailLines(s: StatusState): string[] {
  const lines: string[] = [];
  if (s.files !== undefined || s.chunks !== undefined) {
    const parts = [];
    if (s.files !== undefined) parts.push(`${s.files.toLocaleString('en-US')} files`);
    if (s.chunks !== undefined) parts.push(`${s.chunks.toLocaleString('en-US')} chunks`);
    if (s.embedded !== undefined) parts.push(`${s.embedded.toLocaleString('en-US')} embedded`);
    lines.push(`Index: ${parts.join(', ')}`);
  }
  if (s.model) lines.push(`Model: ${s.model}`);
  if (s.provider) lines.push(`Execution provider: ${s.provider}`);
  return lines;
}

function renderView(s: StatusState): Omit<StatusView, 'accessibilityLabel'> {
  const provider = providerLabel(s.provider);
  const details = detailLines(s);
  switch (s.phase) {
    case 'starting':
      return {
        text: '$(loading~spin) Code Search',
        tooltip: 'Code Search: starting the codesearch-ls server…',
        command: COMMAND_SHOW_LOG,
        severity: 'none',
      };
    case 'restarting':
      return {
        text: '$(loading~spin) Code Search',
        tooltip: `Code Search: ${s.message ?? 'restarting the server'}`,
        command: COMMAND_SHOW_LOG,
        severity: 'warning',
      };
    case 'indexing': {
      const pct = s.percentage !== undefined ? ` ${s.percentage}%` : '';
      return {
        text: `$(sync~spin) Code Search: indexing${pct}`,
        tooltip: [`Code Search: indexing${pct}${s.message ? ` — ${s.message}` : ''}`, ...details, 'Click to show the server log'].join('\n'),
        command: COMMAND_SHOW_LOG,
        severity: 'none',
      };
    }
    case 'running':
    case 'ready': {
      const counts: string[] = [];
      if (s.files !== undefined) counts.push(`${compactNumber(s.files)} files`);
      if (s.chunks !== undefined) counts.push(`${compactNumber(s.chunks)} chunks`);
      const tail = [...counts, ...(provider ? [provider] : [])].join(' · ');
      return {
        text: `$(search) Code Search${tail ? `: ${tail}` : ''}`,
        tooltip: [s.phase === 'ready' ? 'Code Search: ready' : 'Code Search: the server is running', ...(s.message ? [s.message] : []), ...details, 'Click to search by meaning'].join('\n'),
        command: COMMAND_SEARCH,
        severity: 'none',
      };
    }
    case 'error':
      return {
        text: `$(error) Code Search: ${shortReason(s.message)}`,
        tooltip: [`Code Search error: ${s.message ?? 'unknown error'}`, ...details, 'Click to show the server log'].join('\n'),
        command: COMMAND_SHOW_LOG,
        severity: 'error',
      };
    case 'notFound':
      return {
        text: '$(error) Code Search: server not found',
        tooltip: `${s.message ?? 'The codesearch-ls server was not found.'}\nClick to show the log`,
        command: COMMAND_SHOW_LOG,
        severity: 'error',
      };
    case 'stopped':
      return {
        text: '$(circle-slash) Code Search',
        tooltip: 'Code Search: the server is stopped. Click to show the log',
        command: COMMAND_SHOW_LOG,
        severity: 'warning',
      };
  }
}

export function render(s: StatusState): StatusView {
  const view = renderView(s);
  const plain = view.text.replace(/\$\([^)]*\)\s*/g, '').replace(/^Code Search:?\s*/, '');
  return { ...view, accessibilityLabel: `Code Search ${s.phase}${plain ? `: ${plain}` : ''}` };
}
