/**
 * Settings: which of them the server receives, and which change needs a server restart.
 * Pure logic (no `vscode` import) so it can be unit tested directly.
 *
 * The server's settings are defined once, in server/codesearch/lsp/settings.py (keys, defaults,
 * validation); package.json's entries are generated from it. The extension sends only what the
 * user has set, so everything else keeps the server's defaults, the same as the CLI's, and a bad
 * value is reported by the server in the log.
 */

export const SECTION = 'codesearch';

/** Settings sent to the running server (no restart needed); the server's keys, in its order. */
export const LIVE_KEYS = ['model', 'device', 'exclude', 'maxFileSize', 'ranker', 'rerankK', 'shards'] as const;
/** Settings that decide how the server is started: changing them restarts it. */
export const LAUNCH_KEYS = ['serverPath', 'interpreter'] as const;

export type LiveKey = (typeof LIVE_KEYS)[number];

/** The values the user set, by key; keys the user did not set are absent. */
export type UserSettings = Partial<Record<LiveKey, unknown>>;

/** The parts of `vscode.WorkspaceConfiguration.inspect()` that are the user's own choices. */
export interface SettingInspection {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** The part of `vscode.WorkspaceConfiguration` this module needs. */
export interface ConfigInspector {
  inspect(key: string): SettingInspection | undefined;
}

/**
 * What the user set for `key`, the most specific scope winning (an explicit `null` too);
 * undefined when nothing is set.
 */
export function userValue(cfg: ConfigInspector, key: string): unknown {
  const found = cfg.inspect(key);
  for (const value of [found?.workspaceFolderValue, found?.workspaceValue, found?.globalValue]) {
    if (value !== undefined) {
      return value;
    }
  }
  return undefined;
}

/** The settings the user set, for the server's `initializationOptions`. */
export function readUserSettings(cfg: ConfigInspector): UserSettings {
  const settings: UserSettings = {};
  for (const key of LIVE_KEYS) {
    const value = userValue(cfg, key);
    if (value !== undefined) {
      settings[key] = value;
    }
  }
  return settings;
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

/**
 * The `workspace/didChangeConfiguration` params for the server: the user's settings, and `null`
 * ("the default") for every key the user has not set, since the server keeps the last value of a
 * key that is missing and a setting the user removed must go back to the default.
 */
export function didChangeConfigurationParams(settings: UserSettings): {
  settings: { codesearch: Record<LiveKey, unknown> };
} {
  const codesearch = {} as Record<LiveKey, unknown>;
  for (const key of LIVE_KEYS) {
    codesearch[key] = settings[key] === undefined ? null : settings[key];
  }
  return { settings: { codesearch } };
}
