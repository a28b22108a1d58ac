import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LatestOnlySearch } from '../src/debounce';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup(delayMs = 200) {
  const requests: { query: string; signal: AbortSignal; d: Deferred<string> }[] = [];
  const results: [string, string][] = [];
  const errors: [unknown, string][] = [];
  const busy: boolean[] = [];
  const s = new LatestOnlySearch<string, string>({
    delayMs,
    run: (query, signal) => {
      const d = deferred<string>();
      requests.push({ query, signal, d });
      return d.promise;
    },
    onResult: (r, q) => results.push([r, q]),
    onError: (e, q) => errors.push([e, q]),
    onBusyChange: (b) => busy.push(b),
  });
  return { s, requests, results, errors, busy };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('LatestOnlySearch', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('debounces: only the last of quick keystrokes is sent', async () => {
    const { s, requests } = setup(200);
    s.trigger('p');
    vi.advanceTimersByTime(50);
    s.trigger('pa');
    vi.advanceTimersByTime(50);
    s.trigger('parse config');
    vi.advanceTimersByTime(199);
    expect(requests).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(requests.map((r) => r.query)).toEqual(['parse config']);
  });

  it('drops a stale response that arrives after a newer one', async () => {
    const { s, requests, results } = setup(100);
    s.trigger('old');
    vi.advanceTimersByTime(100);
    s.trigger('new');
    vi.advanceTimersByTime(100);
    expect(requests.map((r) => r.query)).toEqual(['old', 'new']);
    expect(requests[0].signal.aborted).toBe(true); // the old request is cancelled
    requests[1].d.resolve('new results');
    await flush();
    requests[0].d.resolve('old results'); // late, must be ignored
    await flush();
    expect(results).toEqual([['new results', 'new']]);
  });

  it('drops a response whose query was superseded while it was in flight', async () => {
    const { s, requests, results } = setup(100);
    s.trigger('a');
    vi.advanceTimersByTime(100);
    s.trigger('ab'); // still debouncing
    requests[0].d.resolve('a results');
    await flush();
    expect(results).toEqual([]);
    vi.advanceTimersByTime(100);
    requests[1].d.resolve('ab results');
    await flush();
    expect(results).toEqual([['ab results', 'ab']]);
  });

  it('reports errors of the latest query only', async () => {
    const { s, requests, errors } = setup(0);
    s.trigger('x');
    s.trigger('y');
    requests[0].d.reject(new Error('cancelled'));
    requests[1].d.reject(new Error('server error'));
    await flush();
    expect(errors.map(([e, q]) => [(e as Error).message, q])).toEqual([['server error', 'y']]);
  });

  it('immediate trigger skips the delay', async () => {
    const { s, requests } = setup(1000);
    s.trigger('now', true);
    expect(requests.map((r) => r.query)).toEqual(['now']);
  });

  it('tracks busy from first keystroke until the latest response', async () => {
    const { s, requests, busy } = setup(100);
    s.trigger('a');
    s.trigger('ab');
    expect(busy).toEqual([true]);
    vi.advanceTimersByTime(100);
    requests[0].d.resolve('r');
    await flush();
    expect(busy).toEqual([true, false]);
  });

  it('cancel() and dispose() drop everything pending', async () => {
    const { s, requests, results, busy } = setup(100);
    s.trigger('a');
    s.cancel();
    vi.advanceTimersByTime(200);
    expect(requests).toHaveLength(0);
    expect(busy).toEqual([true, false]);
    s.trigger('b', true);
    s.dispose();
    expect(requests[0].signal.aborted).toBe(true);
    requests[0].d.resolve('late');
    await flush();
    expect(results).toEqual([]);
    s.trigger('c', true);
    expect(requests).toHaveLength(1);
  });
});
