import * as path from 'node:path';
import * as vscode from 'vscode';
import { classifyConfigChange } from './config';
import { onPythonInterpreterChanged } from './pythonExtension';
import { folderGlob } from './results';
import { activePicker, SearchPicker, type SearchScope } from './search';
import {
  SERVER_REINDEX_COMMAND,
  SERVER_STATUS_COMMAND,
  ServerController,
} from './server';
import { StatusBar } from './statusBar';

let controller: ServerController | undefined;

/** What the extension exports (for other extensions and debugging). */
export interface CodeSearchApi {
  readonly controller: ServerController;
}

export function activate(context: vscode.ExtensionContext): CodeSearchApi {
  const output = vscode.window.createOutputChannel('Code Search', { log: true });
  const traceOutput = vscode.window.createOutputChannel('Code Search Trace', { log: true });
  const statusBar = new StatusBar();
  const server = new ServerController(output, traceOutput);
  controller = server;
  context.subscriptions.push(output, traceOutput, statusBar, server, server.onStatus((s) => statusBar.update(s)));
  statusBar.update(server.status);

  const backend = { search: server.search.bind(server) };
  const openPicker = (scope?: SearchScope, initialValue?: string) =>
    new SearchPicker(backend, { scope, initialValue, log: (l) => output.info(l) });

  const register = (id: string, fn: (...args: any[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  register('codesearch.search', (query?: unknown) => {
    openPicker(undefined, typeof query === 'string' ? query : undefined);
  });

  register('codesearch.searchInFolder', async (uri?: vscode.Uri) => {
    let target = uri instanceof vscode.Uri ? uri : undefined;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({
        canSelectFiles: false,
        canSelectFolders: true,
        canSelectMany: false,
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
        openLabel: 'Search in this folder',
      });
      target = picked?.[0];
      if (!target) {
        return;
      }
    }
    const folder = vscode.workspace.getWorkspaceFolder(target);
    if (!folder) {
      void vscode.window.showWarningMessage('Code Search: that folder is not part of the workspace.');
      return;
    }
    const rel = path.posix.relative(folder.uri.path, target.path);
    openPicker({ folder, pathGlob: folderGlob(rel) });
  });

  register('codesearch.toggleLanguageFilter', () => activePicker()?.toggleLanguage());
  register('codesearch.editPathGlob', () => activePicker()?.promptGlob());

  register('codesearch.reindex', async () => {
    try {
      await server.executeServerCommand(SERVER_REINDEX_COMMAND);
      void vscode.window.setStatusBarMessage('Code Search: re-indexing the workspace…', 3000);
    } catch (e) {
      void vscode.window.showErrorMessage(`Code Search: re-index failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  });

  register('codesearch.showLog', () => output.show(true));

  register('codesearch.restartServer', async () => {
    output.info('Restarting the server (requested by the user).');
    await server.restart(true);
  });

  register('codesearch.showStatus', async () => {
    try {
      const status = await server.executeServerCommand(SERVER_STATUS_COMMAND);
      const text =
        status && typeof status === 'object'
          ? Object.entries(status as Record<string, unknown>)
              .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
              .map(([k, v]) => `${k}: ${String(v)}`)
              .join(', ')
          : String(status);
      output.info(`Server status: ${JSON.stringify(status)}`);
      void vscode.window.showInformationMessage(`Code Search: ${text}`, 'Show Log').then((c) => {
        if (c === 'Show Log') output.show(true);
      });
    } catch (e) {
      void vscode.window.showErrorMessage(`Code Search: ${e instanceof Error ? e.message : String(e)}`);
    }
  });

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      const action = classifyConfigChange((s) => e.affectsConfiguration(s));
      if (action === 'restart') {
        output.info('Server location settings changed; restarting the server.');
        void server.restart(true);
      } else if (action === 'notify') {
        void server.sendSettings().catch((err) => output.error(`Sending settings failed: ${String(err)}`));
      }
    }),
  );

  // When the server comes from the Python extension's interpreter (or none was found), follow
  // that extension's interpreter changes. It is only active once discovery has asked it.
  let pySub: vscode.Disposable | undefined;
  const followPythonInterpreter = () => {
    if (pySub) return;
    pySub = onPythonInterpreterChanged(() => {
      if (server.server?.source === 'pythonExtension' || !server.server) {
        output.info('The Python interpreter changed; restarting the server.');
        void server.restart();
      }
    });
    if (pySub) context.subscriptions.push(pySub);
  };
  followPythonInterpreter();
  void server.start().then(followPythonInterpreter);
  return { controller: server };
}

export async function deactivate(): Promise<void> {
  const c = controller;
  controller = undefined;
  if (c) {
    await c.stop();
  }
}
