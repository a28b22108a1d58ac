import { mkdtempSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  canImportModule,
  type DiscoveryEnv,
  describeAttempts,
  discoverServer,
  expandPath,
  notFoundMessage,
  SERVER_MODULE,
  whichOnPath,
} from '../src/serverDiscovery';

/** A fake environment: a set of executable files, a PATH and interpreters that have the module. */
function env(opts: {
  serverPath?: string;
  interpreter?: string;
  executables?: string[];
  path?: Record<string, string>;
  withModule?: string[];
  pythonExt?: string[] | 'absent' | 'throws';
}): DiscoveryEnv & { imports: string[][] } {
  const executables = new Set(opts.executables ?? []);
  const imports: string[][] = [];
  return {
    imports,
    serverPath: opts.serverPath,
    interpreter: opts.interpreter,
    pythonExtensionInterpreter:
      opts.pythonExt === undefined || opts.pythonExt === 'absent'
        ? undefined
        : opts.pythonExt === 'throws'
          ? async () => {
              throw new Error('boom');
            }
          : async () => opts.pythonExt as string[],
    isExecutable: async (f) => executables.has(f),
    which: async (name) => opts.path?.[name],
    canImport: async (interp, module) => {
      imports.push([...interp, module]);
      return (opts.withModule ?? []).includes(interp.join(' ')) ? true : `no ${module} in ${interp.join(' ')}`;
    },
    expand: (p) => expandPath(p, { home: '/home/u', workspaceFolder: '/ws', env: { VENV: '/venvs/a' } }),
  };
}

describe('discoverServer', () => {
  it('uses codesearch.serverPath first', async () => {
    const r = await discoverServer(
      env({
        serverPath: '/opt/cs/bin/codesearch-ls',
        interpreter: '/usr/bin/python3',
        executables: ['/opt/cs/bin/codesearch-ls', '/usr/bin/python3'],
        withModule: ['/usr/bin/python3'],
        path: { 'codesearch-ls': '/usr/local/bin/codesearch-ls' },
      }),
    );
    expect(r.server).toEqual({ command: '/opt/cs/bin/codesearch-ls', args: ['--stdio'], source: 'serverPath' });
    expect(r.attempts).toHaveLength(1);
  });

  it('expands ~ and ${workspaceFolder} in serverPath and looks up bare names on PATH', async () => {
    let r = await discoverServer(env({ serverPath: '~/bin/cs', executables: ['/home/u/bin/cs'] }));
    expect(r.server?.command).toBe('/home/u/bin/cs');
    r = await discoverServer(env({ serverPath: '${workspaceFolder}/.venv/bin/codesearch-ls', executables: ['/ws/.venv/bin/codesearch-ls'] }));
    expect(r.server?.command).toBe('/ws/.venv/bin/codesearch-ls');
    r = await discoverServer(env({ serverPath: 'my-ls', path: { 'my-ls': '/usr/bin/my-ls' } }));
    expect(r.server?.command).toBe('/usr/bin/my-ls');
  });

  it('falls back from a broken serverPath to the interpreter, recording why', async () => {
    const e = env({
      serverPath: '/nope/codesearch-ls',
      interpreter: '${env:VENV}/bin/python',
      executables: ['/venvs/a/bin/python'],
      withModule: ['/venvs/a/bin/python'],
    });
    const r = await discoverServer(e);
    expect(r.server).toEqual({
      command: '/venvs/a/bin/python',
      args: ['-m', SERVER_MODULE, '--stdio'],
      source: 'interpreter',
    });
    expect(r.attempts[0]).toMatchObject({ source: 'serverPath', ok: false });
    expect(r.attempts[0].reason).toContain('/nope/codesearch-ls');
    expect(e.imports).toEqual([['/venvs/a/bin/python', SERVER_MODULE]]);
  });

  it('skips an interpreter without the module, then uses the Python extension interpreter', async () => {
    const r = await discoverServer(
      env({
        interpreter: '/usr/bin/python3',
        executables: ['/usr/bin/python3'],
        pythonExt: ['/home/u/.venv/bin/python'],
        withModule: ['/home/u/.venv/bin/python'],
      }),
    );
    expect(r.server).toEqual({
      command: '/home/u/.venv/bin/python',
      args: ['-m', SERVER_MODULE, '--stdio'],
      source: 'pythonExtension',
    });
    expect(r.attempts.map((a) => [a.source, a.ok])).toEqual([
      ['interpreter', false],
      ['pythonExtension', true],
    ]);
    expect(r.attempts[0].reason).toContain('no codesearch.lsp');
  });

  it('keeps a multi-word Python extension command (e.g. conda run)', async () => {
    const r = await discoverServer(
      env({ pythonExt: ['conda', 'run', '-n', 'cs', 'python'], withModule: ['conda run -n cs python'] }),
    );
    expect(r.server).toEqual({
      command: 'conda',
      args: ['run', '-n', 'cs', 'python', '-m', SERVER_MODULE, '--stdio'],
      source: 'pythonExtension',
    });
  });

  it('never needs the Python extension: absent or failing, it goes on to PATH', async () => {
    for (const pythonExt of ['absent', 'throws', []] as const) {
      const r = await discoverServer(
        env({ pythonExt: pythonExt as never, path: { 'codesearch-ls': '/usr/local/bin/codesearch-ls' } }),
      );
      expect(r.server).toEqual({ command: '/usr/local/bin/codesearch-ls', args: ['--stdio'], source: 'path' });
    }
  });

  it('reports every attempt when nothing works, with an install hint', async () => {
    const r = await discoverServer(
      env({ serverPath: '/x/cs', interpreter: 'python9', pythonExt: ['/py'], path: {} }),
    );
    expect(r.server).toBeUndefined();
    expect(r.attempts.map((a) => a.source)).toEqual(['serverPath', 'interpreter', 'pythonExtension', 'path']);
    expect(r.attempts.every((a) => !a.ok)).toBe(true);
    const msg = notFoundMessage(r.attempts);
    expect(msg).toContain('pip install');
    expect(msg).toContain('codesearch.serverPath');
    expect(describeAttempts(r.attempts)).toHaveLength(4);
    expect(describeAttempts(r.attempts)[3]).toContain('not found on PATH');
  });

  it('ignores empty / blank settings', async () => {
    const r = await discoverServer(env({ serverPath: '  ', interpreter: '', path: { 'codesearch-ls': '/b/codesearch-ls' } }));
    expect(r.attempts.map((a) => a.source)).toEqual(['path']);
    expect(r.server?.source).toBe('path');
  });
});

describe('expandPath', () => {
  it('expands home, userHome, workspaceFolder and env vars', () => {
    const vars = { home: '/h', workspaceFolder: '/w', env: { A: 'x' } };
    expect(expandPath('~', vars)).toBe('/h');
    expect(expandPath('~/a', vars)).toBe('/h/a');
    expect(expandPath('${userHome}/b', vars)).toBe('/h/b');
    expect(expandPath('${workspaceFolder}/c', vars)).toBe('/w/c');
    expect(expandPath('/${env:A}/${env:MISSING}d', vars)).toBe('/x/d');
    expect(expandPath('/a~b', vars)).toBe('/a~b');
  });
});

describe('real Node checks', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-disc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('whichOnPath finds executables only', async () => {
    mkdirSync(path.join(dir, 'a'));
    mkdirSync(path.join(dir, 'b'));
    writeFileSync(path.join(dir, 'a', 'tool'), '#!/bin/sh\n');
    chmodSync(path.join(dir, 'a', 'tool'), 0o644); // not executable
    writeFileSync(path.join(dir, 'b', 'tool'), '#!/bin/sh\n');
    chmodSync(path.join(dir, 'b', 'tool'), 0o755);
    const p = [path.join(dir, 'a'), path.join(dir, 'b')].join(path.delimiter);
    expect(await whichOnPath('tool', p)).toBe(path.join(dir, 'b', 'tool'));
    expect(await whichOnPath('nothing-here', p)).toBeUndefined();
  });

  it('canImportModule runs the interpreter', async () => {
    const python = (await whichOnPath('python3')) ?? (await whichOnPath('python'));
    if (!python) return; // no Python on this machine
    expect(await canImportModule([python], 'json')).toBe(true);
    expect(await canImportModule([python], 'surely_not_a_module_xyz')).toContain('not installed');
    expect(await canImportModule([path.join(dir, 'no-python')], 'json')).toContain('not found');
  }, 30000);
});
