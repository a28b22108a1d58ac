/**
 * Settings: which of them the server receives, and which change needs a server restart.
 * Pure logic (no `vscode` import) so it can be unit tested directly.
 */

export const SECTION = 'codesearch';

export type Device = 'auto' | 'cpu' | 'cuda';

/** The object the server takes as `initializationOptions` and under `settings.codesearch`. */
export interface ServerSettings {
  model: string | null;
  device: Device;
  exclude: string[];
  maxFileSize: number;
  ranker: string | null;
  rerankK: number;
}

export const DEFAULT_MAX_FILE_SIZE = 1024 * 1024;
export const DEFAULT_RERANK_K = 10;

/** The part of `vscode.WorkspaceConfiguration` this module needs. */
export interface ConfigReader {
  get<T>(key: string): T | undefined;
}

/** Settings sent to the running server (no restart needed). */
export const LIVE_KEYS = ['model', 'device', 'exclude', 'maxFileSize', 'ranker', 'rerankK'] as const;
/** Settings that decide how the server is started: changing them restarts it. */
export const LAUNCH_KEYS = ['serverPath', 'interpreter'] as const;

export function readServerSettings(cfg: ConfigReader): ServerSettings {
  const model = cfg.get<string | null>('model');
  const device = cfg.get<string>('device');
  const exclude = cfg.get<unknown>('exclude');
  const maxFileSize = cfg.get<unknown>('maxFileSize');
  const ranker = cfg.get<string | null>('ranker');
  const rerankK = cfg.get<unknown>('rerankK');
  return {
    model: typeof model === 'string' && model.trim() !== '' ? model.trim() : null,
    device: device === 'cpu' || device === 'cuda' ? device : 'auto',
    exclude: Array.isArray(exclude)
      ? exclude.filter((g): g is string => typeof g === 'string' && g.trim() !== '')
      : [],
    maxFileSize:
      typeof maxFileSize === 'number' && Number.isFinite(maxFileSize) && maxFileSize > 0
        ? Math.floor(maxFileSize)
        : DEFAULT_MAX_FILE_SIZE,
    ranker: typeof ranker === 'string' && ranker.trim() !== '' ? ranker.trim() : null,
    rerankK:
      typeof rerankK === 'number' && Number.isInteger(rerankK) && rerankK >= 2 && rerankK <= 200
        ? rerankK
        : DEFAULT_RERANK_K,
  };
}

export type ConfigChangeAction = 'restart' | 'notify' | 'none';

/**
 * What to do about a configuration change event. `affects` is
 * `(section) => event.affectsConfiguration(section)`.
 * Trace changes are picked up by vscode-languageclient itself.
 */
export function classifyConfigChange(affects: (section: string) => boolean): ConfigChangeAction {
  if (LAUNCH_KEYS.some((k) => affects(`${SECTION}.${k}`))) {
    return 'restart';
  }
  if (LIVE_KEYS.some((k) => affects(`${SECTION}.${k}`))) {
    return 'notify';
  }
  return 'none';
}

/** The `workspace/didChangeConfiguration` params for the server. */
export function didChangeConfigurationParams(settings: ServerSettings): {
  settings: { codesearch: ServerSettings };
} {
  return { settings: { codesearch: settings } };
}
