import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  camelCase,
  clientSettings,
  type ConfigurationLike,
  needsRestart,
  SERVER_KEYS,
  serverSettings,
  settingName,
} from '../src/settings';

const root = join(__dirname, '..', '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  contributes: { configuration: { properties: Record<string, { default: unknown }> } };
};
const properties = manifest.contributes.configuration.properties;

/** A configuration that answers like VS Code: the user's values, else the contributed defaults. */
function config(values: Record<string, unknown> = {}): ConfigurationLike {
  return {
    get<T>(key: string): T | undefined {
      const full = `starchat.${key}`;
      return (full in values ? values[full] : properties[full]?.default) as T | undefined;
    },
  };
}

test('camelCase spells server keys the VS Code way', () => {
  assert.equal(camelCase('max_new_tokens'), 'maxNewTokens');
  assert.equal(camelCase('connect_timeout_s'), 'connectTimeoutS');
  assert.equal(camelCase('name'), 'name');
  assert.equal(settingName('http', 'api_key_env'), 'starchat.http.apiKeyEnv');
});

test('the defaults give the server shape of docs/protocol.md', () => {
  const settings = serverSettings(config());
  assert.deepEqual(settings.model, {
    name: 'qwen2.5-coder-1.5b',
    backend: 'auto',
    device: 'auto',
    dtype: 'auto',
    threads: 0,
    context_size: 0,
  });
  assert.deepEqual(settings.generation, { max_new_tokens: 512, temperature: 0, system_prompt: '' });
  assert.deepEqual(settings.completion, {
    enabled: true,
    model: '',
    debounce_ms: 150,
    max_new_tokens: 128,
    max_context_tokens: 1024,
    other_files: false,
    prefetch: true,
  });
  assert.deepEqual(settings.diagnostics, { enabled: true });
  assert.deepEqual(settings.verify, { enabled: true, candidates: 2, time_budget_s: 0 });
  assert.equal(settings.http.endpoint, 'http://127.0.0.1:8080');
  assert.deepEqual(settings.log, { level: 'info' });
  assert.deepEqual(Object.keys(settings), ['model', 'generation', 'completion', 'diagnostics', 'verify', 'log', 'http']);
});

test('user values map to snake_case keys, passed as they are for the server to check', () => {
  const settings = serverSettings(
    config({
      'starchat.model.name': 'qwen2.5-coder-1.5b',
      'starchat.generation.maxNewTokens': 64,
      'starchat.completion.enabled': false,
      'starchat.model.device': 'gpu',
    }),
  );
  assert.equal(settings.model.name, 'qwen2.5-coder-1.5b');
  assert.equal(settings.generation.max_new_tokens, 64);
  assert.equal(settings.completion.enabled, false);
  assert.equal(settings.model.device, 'gpu');
});

test('keys VS Code does not know are left out, so the server uses its defaults', () => {
  const settings = serverSettings({ get: () => undefined });
  assert.deepEqual(settings, { model: {}, generation: {}, completion: {}, diagnostics: {}, verify: {}, log: {}, http: {} });
});

test('every server setting is contributed in package.json, and nothing else under its sections', () => {
  const contributed = Object.keys(properties).filter((name) => !['starchat.python', 'starchat.trace.server'].includes(name));
  const mapped = Object.entries(SERVER_KEYS).flatMap(([section, keys]) => keys.map((key) => settingName(section, key)));
  assert.deepEqual([...contributed].sort(), [...mapped].sort());
});

test('the contributed defaults are the defaults of server/starchat_lsp/settings.py', () => {
  const source = readFileSync(join(root, 'server', 'starchat_lsp', 'settings.py'), 'utf8');
  const catalogue = readFileSync(join(root, 'server', 'starchat_lsp', 'models', 'catalogue.py'), 'utf8');
  const defaultModel = /^DEFAULT_MODEL = "([^"]+)"/m.exec(catalogue)?.[1];
  const classes: Record<string, string> = {
    model: 'ModelSettings',
    generation: 'GenerationOptions',
    completion: 'CompletionOptions',
    diagnostics: 'DiagnosticsOptions',
    verify: 'VerifyOptions',
    log: 'LogOptions',
    http: 'HttpOptions',
  };
  for (const [section, className] of Object.entries(classes)) {
    const body = new RegExp(`class ${className}:\\n([\\s\\S]*?)(?:\\n\\n\\n|\\n@dataclass)`).exec(source)?.[1];
    assert.ok(body, `class ${className} in settings.py`);
    const fields = [...body.matchAll(/^ {4}(\w+): (\w+) = ([^#\n]+?)\s*(?:#.*)?$/gm)];
    assert.deepEqual(
      fields.map((field) => field[1]),
      SERVER_KEYS[section as keyof typeof SERVER_KEYS],
      `fields of ${className}`,
    );
    for (const [, key, , literal] of fields) {
      const python = literal === 'DEFAULT_MODEL' ? defaultModel : JSON.parse(literal.replace(/^True$/, 'true').replace(/^False$/, 'false'));
      assert.equal(properties[settingName(section, key)].default, python, `default of ${section}.${key}`);
    }
  }
});

test('client settings: python is trimmed, an unknown trace is off', () => {
  assert.deepEqual(clientSettings(config({ 'starchat.python': ' /venv/bin/python ' })), {
    python: '/venv/bin/python',
    trace: 'off',
  });
  assert.equal(clientSettings(config({ 'starchat.trace.server': 'verbose' })).trace, 'verbose');
  assert.equal(clientSettings(config({ 'starchat.trace.server': 'loud' })).trace, 'off');
});

test('only a change of interpreter restarts the server', () => {
  assert.equal(needsRestart((section) => section === 'starchat.python'), true);
  assert.equal(needsRestart((section) => section === 'starchat.model.name' || section === 'starchat'), false);
});
