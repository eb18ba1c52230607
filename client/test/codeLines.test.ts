import assert from 'node:assert/strict';
import { test } from 'node:test';
import { codeLines } from '../src/codeLines';

test('each line closes the spans it opened and reopens those still open; the indentation becomes a width', () => {
  const html =
    '<span class="hljs-keyword">def</span> <span class="hljs-title">f</span>():\n' +
    '    <span class="hljs-string">&quot;&quot;&quot;Doc\n    more.&quot;&quot;&quot;</span>\n' +
    '\t<span class="hljs-keyword">return</span> <span class="hljs-number">1</span>';
  assert.deepEqual(codeLines(html), [
    { html: '<span class="hljs-keyword">def</span> <span class="hljs-title">f</span>():', indent: 0 },
    { html: '<span class="hljs-string">&quot;&quot;&quot;Doc</span>', indent: 4 },
    { html: '<span class="hljs-string">more.&quot;&quot;&quot;</span>', indent: 4 },
    { html: '<span class="hljs-keyword">return</span> <span class="hljs-number">1</span>', indent: 4 },
  ]);
});

test('nested spans and empty lines', () => {
  const html = '<span class="a"><span class="b">x\n\ny</span>z</span>';
  assert.deepEqual(
    codeLines(html).map((line) => line.html),
    ['<span class="a"><span class="b">x</span></span>', '<span class="a"><span class="b"></span></span>', '<span class="a"><span class="b">y</span>z</span>'],
  );
});

test('spaces inside a line stay; a lone < and a trailing newline', () => {
  assert.deepEqual(codeLines('a  &lt; b\n  c <\n'), [
    { html: 'a  &lt; b', indent: 0 },
    { html: 'c <', indent: 2 },
    { html: '', indent: 0 },
  ]);
});
