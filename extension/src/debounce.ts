/**
 * Search-as-you-type: debounce input, cancel the request that is no longer wanted, and drop any
 * response that isn't for the latest input (a slow old response must never overwrite newer results).
 * Pure logic (no `vscode` import); timers can be injected for tests.
 */

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface LatestOnlyOptions<Q, R> {
  delayMs: number;
  /** Runs one request; must honour `signal` (abort = the result is no longer wanted). */
  run(query: Q, signal: AbortSignal): Promise<R>;
  /** Called only with the response to the latest query. */
  onResult(result: R, query: Q): void;
  /** Called only for a failure of the latest query (never for aborted ones). */
  onError?(error: unknown, query: Q): void;
  /** true while a query is waiting for its debounce delay or its response. */
  onBusyChange?(busy: boolean): void;
  timers?: Timers;
}

export class LatestOnlySearch<Q, R> {
  private seq = 0;
  private timer: unknown;
  private controller: AbortController | undefined;
  private busy = false;
  private disposed = false;
  private readonly timers: Timers;

  constructor(private readonly opts: LatestOnlyOptions<Q, R>) {
    this.timers = opts.timers ?? realTimers;
  }

  /** The sequence number of the latest query (for tests and logging). */
  get latest(): number {
    return this.seq;
  }

  /** Schedules `query` after the debounce delay (or now), replacing anything pending. */
  trigger(query: Q, immediate = false): void {
    if (this.disposed) {
      return;
    }
    const id = ++this.seq;
    this.clearPending();
    this.setBusy(true);
    if (immediate || this.opts.delayMs <= 0) {
      void this.execute(id, query);
    } else {
      this.timer = this.timers.setTimeout(() => {
        this.timer = undefined;
        void this.execute(id, query);
      }, this.opts.delayMs);
    }
  }

  /** Forgets any pending or running query; its result will be dropped. */
  cancel(): void {
    this.seq++;
    this.clearPending();
    this.setBusy(false);
  }

  dispose(): void {
    this.cancel();
    this.disposed = true;
  }

  private clearPending(): void {
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.controller) {
      this.controller.abort();
      this.controller = undefined;
    }
  }

  private async execute(id: number, query: Q): Promise<void> {
    if (id !== this.seq || this.disposed) {
      return;
    }
    const controller = new AbortController();
    this.controller = controller;
    try {
      const result = await this.opts.run(query, controller.signal);
      if (id !== this.seq || controller.signal.aborted || this.disposed) {
        return; // stale
      }
      this.controller = undefined;
      this.setBusy(false);
      this.opts.onResult(result, query);
    } catch (error) {
      if (id !== this.seq || controller.signal.aborted || this.disposed) {
        return;
      }
      this.controller = undefined;
      this.setBusy(false);
      this.opts.onError?.(error, query);
    }
  }

  private setBusy(busy: boolean): void {
    if (busy !== this.busy) {
      this.busy = busy;
      this.opts.onBusyChange?.(busy);
    }
  }
}
