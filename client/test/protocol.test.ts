import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContentModified, outcomeOf, RequestCancelled, stopNote } from '../src/errors';
import { chooseInterpreter, probeProblem } from '../src/interpreter';
import { modelLabel, partialText, stageMessage } from '../src/protocol';
import { linesLabel } from '../src/tasks';

test('partial results are {"text": CHUNK}; anything else is ignored', () => {
  assert.equal(partialText({ text: ' bug' }), ' bug');
  assert.equal(partialText({ text: '' }), '');
  assert.equal(partialText({ kind: 'report', message: 'loading' }), undefined);
  assert.equal(partialText(null), undefined);
  assert.equal(partialText('text'), undefined);
});

test('JSON-RPC errors become what the user is told', () => {
  assert.deepEqual(outcomeOf({ code: RequestCancelled, message: 'Request with id "17" is canceled' }), { kind: 'cancelled' });
  const canceled = new Error('Canceled');
  canceled.name = 'Canceled';
  assert.deepEqual(outcomeOf(canceled), { kind: 'cancelled' });
  assert.deepEqual(outcomeOf(Object.assign(new Error('x'), { code: ContentModified })), {
    kind: 'failed',
    message: 'the document changed while the model worked: ask again',
  });
  const failed = Object.assign(new Error("model 'x' is not pulled: run `starchat-lsp models pull x`"), { code: -32803 });
  assert.deepEqual(outcomeOf(failed), { kind: 'failed', message: failed.message });
});

test('answers that did not finish on their own get a note', () => {
  assert.match(stopNote('length', 512) ?? '', /cut at 512 tokens/);
  assert.equal(stopNote('eos'), undefined);
  assert.equal(stopNote('stop_string'), undefined);
  assert.equal(stopNote('cancelled'), 'stopped');
});

test('the interpreter: the setting, else the Python extension, else python3', () => {
  assert.deepEqual(chooseInterpreter(' /v/bin/python ', '/ext/python', 'linux'), { command: '/v/bin/python', source: 'setting' });
  assert.deepEqual(chooseInterpreter('', '/ext/python', 'linux'), { command: '/ext/python', source: 'python extension' });
  assert.deepEqual(chooseInterpreter('', undefined, 'linux'), { command: 'python3', source: 'default' });
  assert.deepEqual(chooseInterpreter('', '', 'win32'), { command: 'python', source: 'default' });
});

test('a failed probe says what is missing and what to do', () => {
  const fromSetting = { command: '/nope/python', source: 'setting' as const };
  assert.match(probeProblem(fromSetting, { spawnError: 'ENOENT', exitCode: null, stderr: '' }) ?? '', /Python not found at '\/nope\/python' \(from starchat.python\)/);
  const missing = probeProblem(
    { command: 'python3', source: 'default' },
    { exitCode: 1, stderr: "Traceback...\nModuleNotFoundError: No module named 'starchat_lsp'\n" },
  );
  assert.match(missing ?? '', /not installed in 'python3': run `python3 -m pip install starchat-lsp`/);
  assert.match(probeProblem(fromSetting, { exitCode: 1, stderr: 'ImportError: torch\n' }) ?? '', /cannot import starchat_lsp: ImportError: torch/);
  assert.equal(probeProblem(fromSetting, { exitCode: 0, stderr: '' }), undefined);
});

test('line labels are 1-based; a selection ending at column 0 leaves that line out', () => {
  assert.equal(linesLabel('/w/app.py', { line: 11, character: 0 }, { line: 30, character: 0 }), 'app.py:12-30');
  assert.equal(linesLabel('C:\\w\\app.py', { line: 4, character: 2 }, { line: 4, character: 9 }), 'app.py:5');
  assert.equal(linesLabel('app.py', { line: 6, character: 4 }, { line: 6, character: 4 }), 'app.py:7 (around the cursor)');
});

test('the status bar names a model folder by its last part', () => {
  assert.equal(modelLabel('smollm2-135m'), 'smollm2-135m');
  assert.equal(modelLabel('/home/me/models/qwen-ft/'), 'qwen-ft');
  assert.equal(modelLabel('C:\\models\\tiny'), 'tiny');
  assert.equal(modelLabel('bigcode/starcoder2-3b'), 'starcoder2-3b');
});

test('stage notifications count only for the request that sent the token', () => {
  const stage = { token: 'starchat-1', uri: 'file:///a.py', stage: 'checking', message: 'checking candidate fix 2' };
  assert.equal(stageMessage(stage, 'starchat-1'), 'checking candidate fix 2');
  assert.equal(stageMessage(stage, 'starchat-2'), undefined);
  assert.equal(stageMessage({ ...stage, token: null }, 'starchat-1'), undefined);
  assert.equal(stageMessage({ token: 'starchat-1', message: 3 }, 'starchat-1'), undefined);
  assert.equal(stageMessage(null, 'starchat-1'), undefined);
});
