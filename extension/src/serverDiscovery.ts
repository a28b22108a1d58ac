/**
 * Finding the `codesearch-ls` language server, in this order:
 *   1. the `codesearch.serverPath` setting (an executable, or a command name looked up on PATH)
 *   2. the `codesearch.interpreter` setting: `<interpreter> -m codesearch.lsp`
 *   3. the Python extension's active interpreter, when that extension is installed (optional)
 *   4. `codesearch-ls` on PATH
 * A candidate is used only if it checks out (the file is executable / the interpreter can import
 * the server module); every attempt is recorded so that a failure can say what was tried.
 *
 * The decision logic is pure: the file system and process checks come in through `DiscoveryEnv`
 * (`nodeDiscoveryEnv` below gives the real ones).
 */
import { execFile } from 'node:child_process';
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const SERVER_MODULE = 'codesearch.lsp';
export const SERVER_EXECUTABLE = 'codesearch-ls';

export type ServerSource = 'serverPath' | 'interpreter' | 'pythonExtension' | 'path';

export interface ServerCommand {
  command: string;
  args: string[];
  source: ServerSource;
}

export interface Attempt {
  source: ServerSource;
  /** What was tried, e.g. a path or a command line. */
  candidate: string;
  ok: boolean;
  reason?: string;
}

export interface DiscoveryResult {
  server?: ServerCommand;
  attempts: Attempt[];
}

export interface DiscoveryEnv {
  /** `codesearch.serverPath` (may be empty). */
  serverPath?: string;
  /** `codesearch.interpreter` (may be empty). */
  interpreter?: string;
  /**
   * The Python extension's active interpreter as a command vector (usually one element, an
   * executable path; may be e.g. `['conda', 'run', '-n', 'x', 'python']`), or undefined when the
   * extension is not installed or has no interpreter.
   */
  pythonExtensionInterpreter?: () => Promise<string[] | undefined>;
  /** true if `file` exists and is an executable file. */
  isExecutable(file: string): Promise<boolean>;
  /** Full path of `name` found on PATH, or undefined. */
  which(name: string): Promise<string | undefined>;
  /** Whether `interpreter... -c "import <module>"` works; a string is the failure reason. */
  canImport(interpreter: string[], module: string): Promise<true | string>;
  /** Expands `~`, `${userHome}`, `${workspaceFolder}` and environment variables. */
  expand(p: string): string;
}

function hasPathSeparator(p: string): boolean {
  return p.includes('/') || p.includes('\\');
}

async function resolveExecutable(
  env: DiscoveryEnv,
  value: string,
): Promise<{ file?: string; reason?: string }> {
  const expanded = env.expand(value.trim());
  if (!hasPathSeparator(expanded)) {
    const found = await env.which(expanded);
    return found ? { file: found } : { reason: `"${expanded}" was not found on PATH` };
  }
  if (await env.isExecutable(expanded)) {
    return { file: expanded };
  }
  return { reason: `${expanded} does not exist or is not executable` };
}

export async function discoverServer(env: DiscoveryEnv): Promise<DiscoveryResult> {
  const attempts: Attempt[] = [];

  // 1. codesearch.serverPath
  if (env.serverPath && env.serverPath.trim() !== '') {
    const r = await resolveExecutable(env, env.serverPath);
    attempts.push({ source: 'serverPath', candidate: env.serverPath, ok: !!r.file, reason: r.reason });
    if (r.file) {
      return { server: { command: r.file, args: ['--stdio'], source: 'serverPath' }, attempts };
    }
  }

  // 2. codesearch.interpreter -m codesearch.lsp
  if (env.interpreter && env.interpreter.trim() !== '') {
    const r = await resolveExecutable(env, env.interpreter);
    let reason = r.reason;
    if (r.file) {
      const imp = await env.canImport([r.file], SERVER_MODULE);
      if (imp === true) {
        attempts.push({ source: 'interpreter', candidate: r.file, ok: true });
        return {
          server: { command: r.file, args: ['-m', SERVER_MODULE, '--stdio'], source: 'interpreter' },
          attempts,
        };
      }
      reason = imp;
    }
    attempts.push({ source: 'interpreter', candidate: env.interpreter, ok: false, reason });
  }

  // 3. The Python extension's interpreter (only if that extension is there)
  if (env.pythonExtensionInterpreter) {
    let vector: string[] | undefined;
    try {
      vector = await env.pythonExtensionInterpreter();
    } catch (e) {
      attempts.push({
        source: 'pythonExtension',
        candidate: '(Python extension)',
        ok: false,
        reason: `could not ask the Python extension: ${String(e)}`,
      });
    }
    if (vector && vector.length > 0 && vector[0]) {
      const imp = await env.canImport(vector, SERVER_MODULE);
      const candidate = vector.join(' ');
      if (imp === true) {
        attempts.push({ source: 'pythonExtension', candidate, ok: true });
        return {
          server: {
            command: vector[0],
            args: [...vector.slice(1), '-m', SERVER_MODULE, '--stdio'],
            source: 'pythonExtension',
          },
          attempts,
        };
      }
      attempts.push({ source: 'pythonExtension', candidate, ok: false, reason: imp });
    }
  }

  // 4. codesearch-ls on PATH
  const onPath = await env.which(SERVER_EXECUTABLE);
  attempts.push({
    source: 'path',
    candidate: SERVER_EXECUTABLE,
    ok: !!onPath,
    reason: onPath ? undefined : `"${SERVER_EXECUTABLE}" was not found on PATH`,
  });
  if (onPath) {
    return { server: { command: onPath, args: ['--stdio'], source: 'path' }, attempts };
  }
  return { attempts };
}

const SOURCE_LABEL: Record<ServerSource, string> = {
  serverPath: 'codesearch.serverPath',
  interpreter: 'codesearch.interpreter',
  pythonExtension: "Python extension's interpreter",
  path: 'PATH',
};

/** One line per attempt, for the log. */
export function describeAttempts(attempts: Attempt[]): string[] {
  return attempts.map(
    (a) =>
      `${SOURCE_LABEL[a.source]}: ${a.candidate} → ${a.ok ? 'ok' : `not usable (${a.reason ?? 'unknown'})`}`,
  );
}

/** The single notification shown when no server can be found. */
export function notFoundMessage(attempts: Attempt[]): string {
  const tried = attempts.map((a) => SOURCE_LABEL[a.source]).join(', ');
  return (
    'Code Search: the codesearch-ls language server was not found' +
    (tried ? ` (tried ${tried})` : '') +
    '. Install the codesearch Python package, which provides it ("pip install <path to a codesearch ' +
    'checkout>", or scripts/setup.sh inside the checkout), then set "codesearch.serverPath" to the ' +
    'codesearch-ls executable or "codesearch.interpreter" to a Python that has the package installed.'
  );
}

// ---------------------------------------------------------------------------------------------
// Real implementations (Node)

export function expandPath(
  p: string,
  vars: { workspaceFolder?: string; home?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const home = vars.home ?? os.homedir();
  const env = vars.env ?? process.env;
  let out = p;
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) {
    out = home + out.slice(1);
  }
  out = out.replace(/\$\{userHome\}/g, home);
  if (vars.workspaceFolder !== undefined) {
    out = out.replace(/\$\{workspaceFolder\}/g, vars.workspaceFolder);
  }
  out = out.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => env[name] ?? '');
  return out;
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) {
      return false;
    }
    if (process.platform === 'win32') {
      return true;
    }
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function whichOnPath(
  name: string,
  envPath: string | undefined = process.env.PATH,
): Promise<string | undefined> {
  const dirs = (envPath ?? '').split(path.delimiter).filter((d) => d !== '');
  const exts =
    process.platform === 'win32'
      ? ['', ...(process.env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';').map((e) => e.toLowerCase())]
      : [''];
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (await isExecutableFile(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

export function canImportModule(
  interpreter: string[],
  module: string,
  timeoutMs = 20000,
): Promise<true | string> {
  const code = `import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(${JSON.stringify(module)}) else 3)`;
  return new Promise((resolve) => {
    execFile(
      interpreter[0],
      [...interpreter.slice(1), '-c', code],
      { timeout: timeoutMs, windowsHide: true },
      (err) => {
        if (!err) {
          resolve(true);
        } else if ((err as { code?: unknown }).code === 3) {
          resolve(`the Python module ${module} is not installed in ${interpreter.join(' ')}`);
        } else if ((err as { code?: unknown }).code === 'ENOENT') {
          resolve(`${interpreter[0]} was not found`);
        } else {
          resolve(`${interpreter.join(' ')} failed: ${err.message.split('\n')[0]}`);
        }
      },
    );
  });
}

export function nodeDiscoveryEnv(opts: {
  serverPath?: string;
  interpreter?: string;
  workspaceFolder?: string;
  pythonExtensionInterpreter?: () => Promise<string[] | undefined>;
}): DiscoveryEnv {
  return {
    serverPath: opts.serverPath,
    interpreter: opts.interpreter,
    pythonExtensionInterpreter: opts.pythonExtensionInterpreter,
    isExecutable: isExecutableFile,
    which: (name) => whichOnPath(name),
    canImport: (interp, module) => canImportModule(interp, module),
    expand: (p) => expandPath(p, { workspaceFolder: opts.workspaceFolder }),
  };
}
