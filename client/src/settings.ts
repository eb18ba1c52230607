/**
 * Typed settings: the `starchat.*` configuration as the server wants it
 * (initializationOptions and didChangeConfiguration), and the client's own settings.
 *
 * Pure: takes anything with a `get(key)` (a vscode.WorkspaceConfiguration fits), so it is
 * tested without VS Code.
 */

export interface ConfigurationLike {
  get<T>(section: string): T | undefined;
}

export interface ServerSettings {
  model: {
    name: string;
    backend: 'auto' | 'transformers' | 'llamacpp' | 'http';
    device: 'auto' | 'cpu' | 'cuda';
    dtype: 'auto' | 'bfloat16' | 'float16' | 'float32';
    threads: number;
    context_size: number;
  };
  generation: { max_new_tokens: number; temperature: number; system_prompt: string };
  completion: {
    enabled: boolean;
    model: string;
    debounce_ms: number;
    max_new_tokens: number;
    max_context_tokens: number;
    other_files: boolean;
    prefetch: boolean;
  };
  diagnostics: { enabled: boolean };
  verify: { enabled: boolean; candidates: number; time_budget_s: number };
  log: { level: 'debug' | 'info' | 'warning' | 'error' };
  http: {
    endpoint: string;
    api: 'openai' | 'tgi';
    model: string;
    api_key_env: string;
    connect_timeout_s: number;
    first_token_timeout_s: number;
    total_timeout_s: number;
    retries: number;
    max_concurrent: number;
    context_window: number;
  };
}

/** VS Code setting names (camelCase, under `starchat.SECTION.`) for each server key. */
export const SERVER_KEYS: { [S in keyof ServerSettings]: (keyof ServerSettings[S] & string)[] } = {
  model: ['name', 'backend', 'device', 'dtype', 'threads', 'context_size'],
  generation: ['max_new_tokens', 'temperature', 'system_prompt'],
  completion: [
    'enabled',
    'model',
    'debounce_ms', 'max_new_tokens', 'max_context_tokens',
    'other_files',
    'prefetch',
  ],
  diagnostics: ['enabled'],
  verify: ['enabled', 'candidates', 'time_budget_s'],
  log: ['level'],
  http: [
    'endpoint',
    'api',
    'model',
    'api_key_env',
    'connect_timeout_s',
    'first_token_timeout_s',
    'total_timeout_s',
    'retries',
    'max_concurrent',
    'context_window',
  ],
};

/** `max_new_tokens` -> `maxNewTokens`: the VS Code spelling of a server key. */
export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** The full `starchat.SECTION.key` name of a server setting in VS Code. */
export function settingName(section: string, key: string): string {
  return `starchat.${section}.${camelCase(key)}`;
}

/**
 * The server's settings object from the `starchat` configuration section.
 *
 * Keys that VS Code does not know (never with the contributed defaults) are left out, so the
 * server uses its own default for them. Values are passed as they are: the server checks them,
 * reports a bad one and uses its default.
 */
export function serverSettings(config: ConfigurationLike): ServerSettings {
  const result: Record<string, Record<string, unknown>> = {};
  for (const [section, keys] of Object.entries(SERVER_KEYS)) {
    const values: Record<string, unknown> = {};
    for (const key of keys) {
      const value = config.get<unknown>(`${section}.${camelCase(key)}`);
      if (value !== undefined && value !== null) {
        values[key] = value;
      }
    }
    result[section] = values;
  }
  return result as unknown as ServerSettings;
}

export interface ClientSettings {
  /** The interpreter that has starchat-lsp installed; empty: find one. */
  python: string;
  trace: 'off' | 'messages' | 'verbose';
}

export function clientSettings(config: ConfigurationLike): ClientSettings {
  const trace = config.get<string>('trace.server');
  return {
    python: (config.get<string>('python') ?? '').trim(),
    trace: trace === 'messages' || trace === 'verbose' ? trace : 'off',
  };
}

/** Whether a configuration change (given its `affectsConfiguration`) needs a new server process. */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return affects('starchat.python');
}
