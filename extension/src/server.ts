/**
 * The language client's life cycle: finding the server, starting it, feeding the status bar from
 * its progress and `codesearch/status` notifications, bounded restarts after crashes, and the
 * requests the commands need.
 */
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  type LanguageClientOptions,
  LanguageClient,
  type ServerOptions,
  State,
  type StaticFeature,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
  type WorkDoneProgressCreateParams,
} from 'vscode-languageclient/node';
import { didChangeConfigurationParams, readUserSettings, SECTION } from './config';
import { pythonExtensionInterpreter } from './pythonExtension';
import { giveUpMessage, RestartPolicy } from './restartPolicy';
import type { SearchParams, SearchResponse } from './results';
import {
  describeAttempts,
  discoverServer,
  nodeDiscoveryEnv,
  notFoundMessage,
  type ServerCommand,
} from './serverDiscovery';
import type { StatusNotification, StatusState, WorkDoneProgressValue } from './status';
import { StatusTracker } from './status';

export const SEARCH_REQUEST = 'codesearch/search';
export const STATUS_NOTIFICATION = 'codesearch/status';
export const SERVER_REINDEX_COMMAND = 'codesearch-ls.reindex';
export const SERVER_STATUS_COMMAND = 'codesearch-ls.status';

export class ServerNotAvailableError extends Error {}

export class ServerController implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private startPromise: Promise<LanguageClient | undefined> | undefined;
  private readonly policy = new RestartPolicy(3, 3 * 60 * 1000);
  private readonly tracker = new StatusTracker();
  private notifiedNotFound = false;
  private gaveUp = false;
  private stopping = false;
  private readonly onStatusEmitter = new vscode.EventEmitter<StatusState>();
  /** Fires with the new status whenever it changes. */
  readonly onStatus = this.onStatusEmitter.event;
  private serverCommand: ServerCommand | undefined;

  constructor(
    readonly output: vscode.LogOutputChannel,
    /** Protocol traces (`codesearch.trace.server`); shown when its log level is Trace. */
    readonly traceOutput: vscode.LogOutputChannel,
  ) {}

  get status(): StatusState {
    return this.tracker.current;
  }

  get server(): ServerCommand | undefined {
    return this.serverCommand;
  }

  get languageClient(): LanguageClient | undefined {
    return this.client;
  }

  private emit(state: StatusState): void {
    this.onStatusEmitter.fire(state);
  }

  /** Starts the server if it isn't running; resolves to the client, or undefined when it can't. */
  start(): Promise<LanguageClient | undefined> {
    if (!this.startPromise) {
      this.startPromise = this.doStart();
    }
    return this.startPromise;
  }

  /** Stops and starts again, finding the server anew; `byUser` re-arms the not-found notification. */
  async restart(byUser = false): Promise<LanguageClient | undefined> {
    this.policy.reset();
    this.gaveUp = false;
    if (byUser) {
      this.notifiedNotFound = false;
    }
    await this.stop();
    return this.start();
  }

  async stop(): Promise<void> {
    const pending = this.startPromise;
    this.startPromise = undefined;
    if (pending) {
      await pending.catch(() => undefined);
    }
    const client = this.client;
    this.client = undefined;
    if (client) {
      this.stopping = true;
      try {
        if (client.state !== State.Stopped) {
          await client.stop(5000);
        }
      } catch (e) {
        this.output.warn(`Stopping the server failed: ${String(e)}`);
      } finally {
        this.stopping = false;
        await client.dispose().catch(() => undefined);
      }
    }
    this.emit(this.tracker.stopped());
  }

  private async discover(): Promise<ServerCommand | undefined> {
    const cfg = vscode.workspace.getConfiguration(SECTION);
    const folder = vscode.workspace.workspaceFolders?.[0];
    const env = nodeDiscoveryEnv({
      serverPath: cfg.get<string>('serverPath') ?? '',
      interpreter: cfg.get<string>('interpreter') ?? '',
      workspaceFolder: folder?.uri.fsPath,
      pythonExtensionInterpreter: vscode.extensions.getExtension('ms-python.python')
        ? () => pythonExtensionInterpreter(folder?.uri)
        : undefined,
    });
    const result = await discoverServer(env);
    for (const line of describeAttempts(result.attempts)) {
      this.output.info(`Server discovery: ${line}`);
    }
    if (!result.server) {
      const message = notFoundMessage(result.attempts);
      this.output.error(message);
      this.emit(this.tracker.notFound(message));
      if (!this.notifiedNotFound) {
        this.notifiedNotFound = true;
        void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Log').then((choice) => {
          if (choice === 'Open Settings') {
            void vscode.commands.executeCommand('workbench.action.openSettings', '@ext:codesearch.codesearch codesearch.serverPath');
          } else if (choice === 'Show Log') {
            this.output.show(true);
          }
        });
      }
      return undefined;
    }
    return result.server;
  }

  private async doStart(): Promise<LanguageClient | undefined> {
    this.emit(this.tracker.starting());
    const server = await this.discover();
    this.serverCommand = server;
    if (!server) {
      return undefined;
    }
    this.output.info(`Starting the server: ${server.command} ${server.args.join(' ')} (from ${server.source})`);

    const folder = vscode.workspace.workspaceFolders?.[0];
    const serverOptions: ServerOptions = {
      command: server.command,
      args: server.args,
      options: { cwd: folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined, env: { ...process.env } },
    };
    const clientOptions: LanguageClientOptions = {
      // Open files are synchronised so the server searches unsaved edits too; it registers its own
      // file watcher (workspace/didChangeWatchedFiles) dynamically. workspace/symbol and
      // codesearch/search cover the whole workspace regardless of this selector.
      documentSelector: [{ scheme: 'file' }],
      // Only what the user set: the server's defaults apply to the rest.
      initializationOptions: readUserSettings(vscode.workspace.getConfiguration(SECTION)),
      outputChannel: this.output,
      traceOutputChannel: this.traceOutput,
      revealOutputChannelOn: 4 /* RevealOutputChannelOn.Never */,
      errorHandler: {
        error: (_error, _message, count) =>
          count !== undefined && count <= 3
            ? { action: ErrorAction.Continue, handled: true }
            : { action: ErrorAction.Shutdown, handled: false },
        closed: () => this.onClosed(),
      },
      initializationFailedHandler: (error) => {
        this.output.error(`Initializing the server failed: ${String(error)}`);
        return false;
      },
    };

    const client = new LanguageClient(SECTION, 'Code Search', serverOptions, clientOptions);
    this.client = client;
    const createProgress = (params: WorkDoneProgressCreateParams) => {
      const token = params.token;
      const sub = client.onProgress(WorkDoneProgress.type, token, (value) => {
        this.emit(this.tracker.progress(token, value as WorkDoneProgressValue));
        if ((value as WorkDoneProgressValue).kind === 'end') {
          sub.dispose();
        }
      });
    };
    // The built-in progress feature shows a notification; ours feeds the status bar instead.
    // Register before start (installed with the connection) and again after the built-in feature.
    client.onRequest(WorkDoneProgressCreateRequest.type, createProgress);
    const progressFeature: StaticFeature = {
      fillClientCapabilities: (caps) => {
        caps.window = caps.window ?? {};
        caps.window.workDoneProgress = true;
      },
      initialize: () => {
        client.onRequest(WorkDoneProgressCreateRequest.type, createProgress);
      },
      getState: () => ({ kind: 'static' }),
      clear: () => undefined,
    };
    client.registerFeature(progressFeature);
    client.onNotification(STATUS_NOTIFICATION, (params: StatusNotification) => {
      this.emit(this.tracker.status(params));
    });
    client.onDidChangeState((e) => {
      if (e.newState === State.Running) {
        this.emit(this.tracker.running());
      } else if (e.newState === State.Starting && this.tracker.current.phase !== 'restarting') {
        this.emit(this.tracker.starting());
      }
    });

    try {
      await client.start();
      this.output.info('The server is running.');
      return client;
    } catch (e) {
      const message = `Code Search: the codesearch-ls server failed to start: ${e instanceof Error ? e.message : String(e)}`;
      this.output.error(message);
      if (!this.gaveUp) {
        this.emit(this.tracker.failed(message));
        void vscode.window.showErrorMessage(message, 'Show Log').then((c) => {
          if (c === 'Show Log') this.output.show(true);
        });
      }
      return undefined;
    }
  }

  private onClosed() {
    if (this.stopping) {
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const decision = this.policy.onCrash();
    if (decision.action === 'restart') {
      this.output.warn(`The server stopped unexpectedly; restarting (${decision.attempt}/${decision.max}).`);
      this.emit(this.tracker.restarting(decision.attempt, decision.max));
      return { action: CloseAction.Restart, handled: true };
    }
    this.gaveUp = true;
    const message = giveUpMessage(decision.crashes, decision.windowMs);
    this.output.error(message);
    this.emit(this.tracker.failed(message));
    void vscode.window.showErrorMessage(message, 'Show Log', 'Restart Server').then((choice) => {
      if (choice === 'Show Log') {
        this.output.show(true);
      } else if (choice === 'Restart Server') {
        void this.restart(true);
      }
    });
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  /** The running client, starting it if needed; throws a user-readable error if there is none. */
  async ready(): Promise<LanguageClient> {
    let client = this.client;
    if (client && client.state === State.Starting && !this.gaveUp) {
      // (re)starting, possibly an automatic restart after a crash: wait for it
      await client.start().catch(() => undefined);
    }
    client = this.client && this.client.state === State.Running ? this.client : await this.start();
    if (!client || client.state !== State.Running) {
      const status = this.tracker.current;
      throw new ServerNotAvailableError(
        status.message ?? 'The codesearch-ls server is not running. See "Code Search: Show Server Log".',
      );
    }
    return client;
  }

  async search(params: SearchParams, token: vscode.CancellationToken): Promise<SearchResponse> {
    const client = await this.ready();
    return client.sendRequest<SearchResponse>(SEARCH_REQUEST, params, token);
  }

  async executeServerCommand(command: string, args: unknown[] = []): Promise<unknown> {
    const client = await this.ready();
    return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
  }

  /** Sends the live settings to the running server (no restart). */
  async sendSettings(): Promise<void> {
    const client = this.client;
    if (!client || client.state !== State.Running) {
      return;
    }
    const params = didChangeConfigurationParams(readUserSettings(vscode.workspace.getConfiguration(SECTION)));
    this.output.info(`Sending settings to the server (null: the server's default): ${JSON.stringify(params.settings.codesearch)}`);
    await client.sendNotification(DidChangeConfigurationNotification.type, params);
  }

  dispose(): void {
    void this.stop();
    this.onStatusEmitter.dispose();
  }
}
