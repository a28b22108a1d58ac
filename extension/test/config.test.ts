import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ConfigInspector,
  type SettingInspection,
  classifyConfigChange,
  didChangeConfigurationParams,
  LAUNCH_KEYS,
  LIVE_KEYS,
  readUserSettings,
  userValue,
} from '../src/config';

/** A `WorkspaceConfiguration.inspect()` double: per key, the values of each scope (absent = not set). */
const inspector = (scopes: Record<string, SettingInspection>): ConfigInspector => ({
  inspect: (key: string) => ({ key, defaultValue: 'the default from package.json', ...scopes[key] }),
});

describe('config', () => {
  it('sends nothing the user did not set, so the server defaults apply', () => {
    expect(readUserSettings(inspector({}))).toEqual({});
  });

  it('sends what the user set, in any scope, the most specific winning', () => {
    const cfg = inspector({
      model: { globalValue: '/models/mine' },
      device: { globalValue: 'cpu', workspaceValue: 'cuda' },
      rerankK: { globalValue: 20, workspaceValue: 30, workspaceFolderValue: 40 },
      exclude: { workspaceValue: ['**/gen/**'] },
    });
    expect(readUserSettings(cfg)).toEqual({ model: '/models/mine', device: 'cuda', rerankK: 40, exclude: ['**/gen/**'] });
  });

  it('keeps an explicit null, which overrides a less specific scope', () => {
    const cfg = inspector({ model: { globalValue: '/models/mine', workspaceValue: null } });
    expect(userValue(cfg, 'model')).toBeNull();
    expect(readUserSettings(cfg)).toEqual({ model: null });
  });

  it('passes values through unchanged: the server validates them and logs what it ignores', () => {
    const cfg = inspector({ rerankK: { globalValue: 1 }, maxFileSize: { globalValue: -5 } });
    expect(readUserSettings(cfg)).toEqual({ rerankK: 1, maxFileSize: -5 });
  });

  it('sends null for every setting the user has not set on a change, so a removed one goes back to the default', () => {
    expect(didChangeConfigurationParams({ device: 'cpu' })).toEqual({
      settings: { codesearch: { model: null, device: 'cpu', exclude: null, maxFileSize: null, ranker: null, rerankK: null, shards: null } },
    });
    expect(Object.keys(didChangeConfigurationParams({}).settings.codesearch)).toEqual([...LIVE_KEYS]);
  });

  it('classifies changes: launch settings restart, others are sent live', () => {
    const affects = (keys: string[]) => (s: string) => keys.some((k) => k === s || k.startsWith(`${s}.`));
    expect(classifyConfigChange(affects(['codesearch.serverPath']))).toBe('restart');
    expect(classifyConfigChange(affects(['codesearch.interpreter']))).toBe('restart');
    expect(classifyConfigChange(affects(['codesearch.model']))).toBe('notify');
    expect(classifyConfigChange(affects(['codesearch.exclude']))).toBe('notify');
    expect(classifyConfigChange(affects(['codesearch.rerankK']))).toBe('notify');
    expect(classifyConfigChange(affects(['codesearch.trace.server']))).toBe('none');
    expect(classifyConfigChange(affects(['editor.fontSize']))).toBe('none');
  });

  it('knows every setting package.json contributes (the server side is checked by tests/test_settings_sync.py)', () => {
    const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
    const keys = Object.keys(pkg.contributes.configuration.properties).map((k) => k.replace(/^codesearch\./, ''));
    expect(keys.sort()).toEqual([...LIVE_KEYS, ...LAUNCH_KEYS, 'trace.server'].sort());
  });
});
