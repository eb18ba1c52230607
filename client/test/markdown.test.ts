import assert from 'node:assert/strict';
import { test } from 'node:test';
import { codeBlocks, codeForInsertion, splitMarkdown } from '../src/markdown';

const answer = [
  'The loop stops one window early.',
  '',
  '```python',
  'for start in range(len(values) - window + 1):',
  '    pass',
  '```',
  '',
  'Then run the tests:',
  '~~~',
  'pytest -q',
  '~~~',
].join('\n');

test('prose and code blocks in order, with their language', () => {
  assert.deepEqual(splitMarkdown(answer), [
    { kind: 'prose', text: 'The loop stops one window early.\n' },
    { kind: 'code', lang: 'python', code: 'for start in range(len(values) - window + 1):\n    pass', closed: true },
    { kind: 'prose', text: '\nThen run the tests:' },
    { kind: 'code', lang: '', code: 'pytest -q', closed: true },
  ]);
});

test('a block still streaming is open, and becomes closed with the fence', () => {
  const partial = 'Here:\n```py\ndef f():\n    ret';
  assert.deepEqual(codeBlocks(partial), [{ kind: 'code', lang: 'py', code: 'def f():\n    ret', closed: false }]);
  assert.equal(codeBlocks(`${partial}urn 1\n\`\`\``)[0].closed, true);
});

test('a fence closes only with the same character and at least its length', () => {
  const text = '````md\n```python\nx = 1\n```\n````';
  assert.deepEqual(codeBlocks(text), [{ kind: 'code', lang: 'md', code: '```python\nx = 1\n```', closed: true }]);
  assert.deepEqual(codeBlocks('~~~\na\n```\nb\n~~~'), [{ kind: 'code', lang: '', code: 'a\n```\nb', closed: true }]);
});

test('inline backquotes and indented text are prose', () => {
  assert.deepEqual(splitMarkdown('use `range(n + 1)` here\n    indented'), [
    { kind: 'prose', text: 'use `range(n + 1)` here\n    indented' },
  ]);
  assert.deepEqual(codeBlocks('```python title="x"\ny\n```'), [{ kind: 'code', lang: 'python', code: 'y', closed: true }]);
});

test('an empty answer has no segments; blank prose is dropped', () => {
  assert.deepEqual(splitMarkdown(''), []);
  assert.deepEqual(splitMarkdown('\n\n```\n```\n\n'), [{ kind: 'code', lang: '', code: '', closed: true }]);
});

test('code to insert ends with one newline only for whole lines', () => {
  assert.equal(codeForInsertion('x = 1\n\n', true), 'x = 1\n');
  assert.equal(codeForInsertion('x = 1\n', false), 'x = 1');
});
