import { describe, expect, it } from 'vitest';
import { giveUpMessage, RestartPolicy } from '../src/restartPolicy';
import { compactNumber, providerLabel, render, SHORT_REASON_MAX, shortReason, StatusTracker } from '../src/status';

describe('StatusTracker + render', () => {
  it('starts as "starting"', () => {
    const t = new StatusTracker();
    expect(render(t.current).text).toContain('$(loading~spin)');
  });

  it('shows indexing with percentage from $/progress', () => {
    const t = new StatusTracker();
    t.running();
    t.progress('tok', { kind: 'begin', title: 'Indexing', percentage: 0 });
    const s = t.progress('tok', { kind: 'report', message: '120/3000 files, 2400 chunks', percentage: 4 });
    const v = render(s);
    expect(v.text).toBe('$(sync~spin) Code Search: indexing 4%');
    expect(v.tooltip).toContain('120/3000 files, 2400 chunks');
    expect(v.command).toBe('codesearch.showLog');
  });

  it('goes to ready when the progress ends, and shows counts and provider from codesearch/status', () => {
    const t = new StatusTracker();
    t.progress(1, { kind: 'begin', title: 'Indexing' });
    t.status({ state: 'indexing', percentage: 50, provider: 'CUDAExecutionProvider', model: 'minilm' });
    expect(render(t.current).text).toContain('50%');
    t.progress(1, { kind: 'end' });
    expect(t.current.phase).toBe('ready');
    const s = t.status({ state: 'ready', files: 3000, chunks: 24000 });
    const v = render(s);
    expect(v.text).toBe('$(search) Code Search: 3k files · 24k chunks · CUDA');
    expect(v.tooltip).toContain('Model: minilm');
    expect(v.tooltip).toContain('Execution provider: CUDAExecutionProvider');
    expect(v.command).toBe('codesearch.search');
    expect(v.severity).toBe('none');
    expect(v.accessibilityLabel).toBe('Code Search ready: 3k files · 24k chunks · CUDA');
  });

  it('shows errors with a short reason, the whole message in the tooltip and a click-through to the log', () => {
    const t = new StatusTracker();
    const message =
      "one, two: the model could not be loaded: model '/nonexistent/m' does not exist as a folder and is not a " +
      'Hugging Face id; searching by keywords only';
    const v = render(t.status({ state: 'error', message, files: 3 }));
    expect(v.text).toBe('$(error) Code Search: model not loaded');
    expect(v.tooltip.split('\n')[0]).toBe(`Code Search error: ${message}`);
    expect(v.tooltip).toContain('Index: 3 files');
    expect(v.command).toBe('codesearch.showLog');
    expect(v.severity).toBe('error');
    expect(v.accessibilityLabel).toBe('Code Search error: model not loaded');
  });

  it('shortens error messages for the status bar text', () => {
    expect(shortReason('Code Search: the codesearch-ls server failed to start: spawn EACCES')).toBe('server failed to start');
    expect(shortReason(giveUpMessage(4, 180_000))).toBe('server crashed');
    expect(shortReason('codesearch: cannot index /w: the folder is gone')).toBe('indexing failed');
    expect(shortReason('indexing failed: OSError: disk full')).toBe('indexing failed');
    // unknown messages: the first clause, without folder names, cut to a few words
    expect(shortReason('web: disk quota exceeded; retrying')).toBe('disk quota exceeded');
    const long = shortReason('something unexpected and rather long happened while reading the store');
    expect(long.length).toBeLessThanOrEqual(SHORT_REASON_MAX);
    expect(long.endsWith('…')).toBe(true);
    expect(shortReason(undefined)).toBe('error');
    expect(shortReason('  ')).toBe('error');
  });

  it('keeps counts across restarts and reports restart attempts', () => {
    const t = new StatusTracker();
    t.status({ state: 'ready', files: 10, chunks: 20, provider: 'CPUExecutionProvider' });
    const r = t.restarting(1, 3);
    expect(render(r).tooltip).toContain('(1/3)');
    expect(r.files).toBe(10);
    t.running();
    expect(t.current.phase).toBe('running');
    expect(render(t.current).text).toBe('$(search) Code Search: 10 files · 20 chunks · CPU');
  });

  it('not-found and failed states', () => {
    const t = new StatusTracker();
    expect(render(t.notFound('install it')).text).toContain('server not found');
    expect(render(t.failed('crashed 4 times')).severity).toBe('error');
  });

  it('keeps an error from codesearch/status over late progress reports and the progress end', () => {
    const t = new StatusTracker();
    t.progress('run', { kind: 'begin', title: 'indexing' });
    t.status({ state: 'error', message: 'the model could not be loaded' });
    t.progress('run', { kind: 'report', percentage: 90, message: '10/10 files' });
    expect(t.current.phase).toBe('error');
    t.progress('run', { kind: 'end', message: 'the model could not be loaded' });
    expect(t.current).toMatchObject({ phase: 'error', message: 'the model could not be loaded' });
    // a new run leaves the error state
    t.progress('run2', { kind: 'begin', title: 'indexing' });
    expect(t.current.phase).toBe('indexing');
    t.status({ state: 'indexing' });
    t.progress('run2', { kind: 'end' });
    expect(t.current.phase).toBe('ready');
  });

  it('clamps percentages', () => {
    const t = new StatusTracker();
    expect(t.progress(1, { kind: 'report', percentage: 140 }).percentage).toBe(100);
  });

  it('only returns to ready after all progress tokens end', () => {
    const t = new StatusTracker();
    t.progress('a', { kind: 'begin' });
    t.progress('b', { kind: 'begin' });
    t.progress('a', { kind: 'end' });
    expect(t.current.phase).toBe('indexing');
    t.progress('b', { kind: 'end' });
    expect(t.current.phase).toBe('ready');
  });

  it('formats helpers', () => {
    expect(providerLabel('CUDAExecutionProvider')).toBe('CUDA');
    expect(providerLabel('CPUExecutionProvider')).toBe('CPU');
    expect(providerLabel(undefined)).toBeUndefined();
    expect(compactNumber(999)).toBe('999');
    expect(compactNumber(1500)).toBe('1.5k');
    expect(compactNumber(2_400_000)).toBe('2.4M');
  });
});

describe('RestartPolicy', () => {
  it('restarts a bounded number of times within the window, then gives up', () => {
    let now = 0;
    const p = new RestartPolicy(3, 180_000, () => now);
    expect(p.onCrash()).toEqual({ action: 'restart', attempt: 1, max: 3 });
    now += 1000;
    expect(p.onCrash()).toMatchObject({ action: 'restart', attempt: 2 });
    now += 1000;
    expect(p.onCrash()).toMatchObject({ action: 'restart', attempt: 3 });
    now += 1000;
    expect(p.onCrash()).toEqual({ action: 'giveUp', crashes: 4, windowMs: 180_000 });
  });

  it('forgets crashes older than the window, and on reset', () => {
    let now = 0;
    const p = new RestartPolicy(1, 1000, () => now);
    expect(p.onCrash().action).toBe('restart');
    now += 5000;
    expect(p.onCrash().action).toBe('restart');
    expect(p.onCrash().action).toBe('giveUp');
    p.reset();
    expect(p.onCrash().action).toBe('restart');
  });

  it('says so when giving up', () => {
    expect(giveUpMessage(4, 180_000)).toContain('crashed 4 times in the last 3 minutes');
  });
});
