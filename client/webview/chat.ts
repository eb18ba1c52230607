/** The chat view's script (runs in the webview): renders messages as they stream, sends input. */

import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import diff from 'highlight.js/lib/languages/diff';
import MarkdownIt from 'markdown-it';
import type { ChatMessage, ViewUpdate } from '../src/conversation';
import { codeLines } from '../src/codeLines';
import { splitMarkdown } from '../src/markdown';

declare function acquireVsCodeApi(): { postMessage(message: unknown): void };

const languages = { bash, c, cpp, go, java, javascript, json, python, rust, sql, typescript, xml, diff };
for (const [name, language] of Object.entries(languages)) {
  hljs.registerLanguage(name, language);
}

const vscode = acquireVsCodeApi();
// html: false escapes any HTML in the model's answer; links are not followed (no remote resources).
const markdown = new MarkdownIt({ html: false, linkify: false, breaks: false });

const list = document.getElementById('messages') as HTMLElement;
const empty = document.getElementById('empty') as HTMLElement;
const form = document.getElementById('ask') as HTMLFormElement;
const input = document.getElementById('input') as HTMLTextAreaElement;
const attach = document.getElementById('attach') as HTMLInputElement;
const stop = document.getElementById('stop') as HTMLButtonElement;
const send = document.getElementById('send') as HTMLButtonElement;
const clear = document.getElementById('clear') as HTMLButtonElement;

const pending = new Map<number, ChatMessage>();
let frame = 0;

function highlighted(code: string, lang: string): string {
  const name = hljs.getLanguage(lang) ? lang : undefined;
  try {
    return name ? hljs.highlight(code, { language: name }).value : hljs.highlightAuto(code).value;
  } catch {
    return markdown.utils.escapeHtml(code);
  }
}

function button(label: string, action: string, message: number, block: number): HTMLButtonElement {
  const element = document.createElement('button');
  element.textContent = label;
  element.className = 'secondary code-action';
  element.dataset.action = action;
  element.dataset.message = String(message);
  element.dataset.block = String(block);
  return element;
}

function renderBody(message: ChatMessage): HTMLElement {
  const body = document.createElement('div');
  body.className = 'body';
  if (message.role === 'user') {
    body.textContent = message.content;
    return body;
  }
  let block = 0;
  for (const segment of splitMarkdown(message.content)) {
    if (segment.kind === 'prose') {
      const prose = document.createElement('div');
      prose.innerHTML = markdown.render(segment.text);
      body.appendChild(prose);
      continue;
    }
    const figure = document.createElement('figure');
    figure.className = 'code';
    const pre = document.createElement('pre');
    const code = document.createElement('code');
    code.className = 'hljs';
    for (const line of codeLines(highlighted(segment.code, segment.lang))) {
      const element = document.createElement('span');
      element.className = 'line';
      element.style.setProperty('--indent', `${line.indent}ch`);
      element.innerHTML = line.html;
      code.appendChild(element);
    }
    pre.appendChild(code);
    figure.appendChild(pre);
    if (segment.closed || message.state !== 'streaming') {
      const actions = document.createElement('div');
      actions.className = 'actions';
      actions.append(
        button('Insert at Cursor', 'insert', message.id, block),
        button('Replace Selection', 'replace', message.id, block),
        button('Copy', 'copy', message.id, block),
      );
      figure.appendChild(actions);
    }
    body.appendChild(figure);
    block += 1;
  }
  if (message.content === '' && message.state === 'streaming') {
    body.innerHTML = '<p class="waiting">…</p>';
  }
  return body;
}

function render(message: ChatMessage): void {
  const element = document.createElement('section');
  element.className = `message ${message.role} ${message.state}`;
  element.id = `message-${message.id}`;
  const header = document.createElement('header');
  header.textContent = message.role === 'user' ? 'You' : 'starchat';
  if (message.title) {
    header.textContent += ` · ${message.title}`;
  }
  element.append(header, renderBody(message));
  if (message.detail) {
    const detail = document.createElement('p');
    detail.className = 'detail';
    detail.textContent = message.detail;
    element.appendChild(detail);
  }
  const old = document.getElementById(element.id);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (old) {
    old.replaceWith(element);
  } else {
    list.appendChild(element);
  }
  empty.hidden = true;
  if (atBottom || !old) {
    element.scrollIntoView({ block: 'end' });
  }
}

// Streaming sends one update per chunk: render each message at most once a frame.
function schedule(message: ChatMessage): void {
  pending.set(message.id, message);
  if (frame === 0) {
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const queued of pending.values()) {
        render(queued);
      }
      pending.clear();
    });
  }
}

window.addEventListener('message', (event: MessageEvent) => {
  const data = event.data as ViewUpdate | { type: 'generating'; generating: boolean } | { type: 'focusInput' };
  switch (data.type) {
    case 'reset':
      list.replaceChildren();
      empty.hidden = data.messages.length > 0;
      data.messages.forEach(render);
      break;
    case 'message':
      schedule(data.message);
      break;
    case 'generating':
      stop.hidden = !data.generating;
      send.disabled = data.generating;
      break;
    case 'focusInput':
      input.focus();
      break;
  }
});

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text !== '' && !send.disabled) {
    vscode.postMessage({ type: 'send', text, attachSelection: attach.checked });
    input.value = '';
  }
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stop.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
clear.addEventListener('click', () => vscode.postMessage({ type: 'clear' }));

list.addEventListener('click', (event) => {
  const target = (event.target as HTMLElement).closest('button.code-action') as HTMLButtonElement | null;
  if (target) {
    vscode.postMessage({
      type: 'code',
      action: target.dataset.action,
      message: Number(target.dataset.message),
      block: Number(target.dataset.block),
    });
  }
});

vscode.postMessage({ type: 'ready' });
