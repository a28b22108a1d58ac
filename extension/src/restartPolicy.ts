/**
 * Bounded automatic restarts: after a crash the server is restarted, at most `maxRestarts` times
 * within `windowMs`; one more crash inside that window and we give up (and say so).
 * Pure logic (no `vscode` import).
 */

export type CrashDecision =
  | { action: 'restart'; attempt: number; max: number }
  | { action: 'giveUp'; crashes: number; windowMs: number };

export class RestartPolicy {
  private crashes: number[] = [];

  constructor(
    readonly maxRestarts = 3,
    readonly windowMs = 3 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Call when the server connection closed unexpectedly. */
  onCrash(): CrashDecision {
    const t = this.now();
    this.crashes = this.crashes.filter((c) => t - c < this.windowMs);
    this.crashes.push(t);
    if (this.crashes.length <= this.maxRestarts) {
      return { action: 'restart', attempt: this.crashes.length, max: this.maxRestarts };
    }
    return { action: 'giveUp', crashes: this.crashes.length, windowMs: this.windowMs };
  }

  /** Forget past crashes (after a manual restart). */
  reset(): void {
    this.crashes = [];
  }
}

export function giveUpMessage(crashes: number, windowMs: number): string {
  const minutes = Math.round(windowMs / 60000);
  return (
    `Code Search: the codesearch-ls server crashed ${crashes} times in the last ${minutes} minutes ` +
    'and will not be restarted automatically. See the log for details, then use ' +
    '"Code Search: Restart Server".'
  );
}
