/**
 * Optional integration with the Python extension (ms-python.python): its active interpreter is one
 * of the places the server is looked for. Never a hard dependency: everything here tolerates the
 * extension being absent, slow or having an API shape we don't know.
 */
import * as vscode from 'vscode';

export const PYTHON_EXTENSION_ID = 'ms-python.python';

interface PythonApiLike {
  environments?: {
    getActiveEnvironmentPath?(resource?: vscode.Uri): { path?: string; id?: string } | undefined;
    resolveEnvironment?(
      env: unknown,
    ): Promise<{ executable?: { uri?: vscode.Uri } } | undefined> | undefined;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
  settings?: {
    getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } | undefined;
    onDidChangeExecutionDetails?: vscode.Event<unknown>;
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

async function pythonApi(timeoutMs: number): Promise<PythonApiLike | undefined> {
  const ext = vscode.extensions.getExtension<PythonApiLike>(PYTHON_EXTENSION_ID);
  if (!ext) {
    return undefined;
  }
  if (ext.isActive) {
    return ext.exports;
  }
  return withTimeout(Promise.resolve(ext.activate()), timeoutMs);
}

/** The active interpreter as a command vector, or undefined when there is none to ask. */
export async function pythonExtensionInterpreter(
  resource: vscode.Uri | undefined,
  timeoutMs = 15000,
): Promise<string[] | undefined> {
  const api = await pythonApi(timeoutMs);
  if (!api) {
    return undefined;
  }
  const envs = api.environments;
  if (envs?.getActiveEnvironmentPath) {
    const active = envs.getActiveEnvironmentPath(resource);
    if (active) {
      const resolved = envs.resolveEnvironment ? await withTimeout(Promise.resolve(envs.resolveEnvironment(active)), timeoutMs) : undefined;
      const exe = resolved?.executable?.uri?.fsPath ?? active.path;
      if (exe) {
        return [exe];
      }
    }
  }
  const details = api.settings?.getExecutionDetails?.(resource);
  if (details?.execCommand && details.execCommand.length > 0) {
    return details.execCommand;
  }
  return undefined;
}

/** Subscribes to interpreter changes, if the extension is installed and already active. */
export function onPythonInterpreterChanged(listener: () => void): vscode.Disposable | undefined {
  const ext = vscode.extensions.getExtension<PythonApiLike>(PYTHON_EXTENSION_ID);
  if (!ext?.isActive) {
    return undefined;
  }
  const api = ext.exports;
  const event = api?.environments?.onDidChangeActiveEnvironmentPath ?? api?.settings?.onDidChangeExecutionDetails;
  return event ? event(() => listener()) : undefined;
}
