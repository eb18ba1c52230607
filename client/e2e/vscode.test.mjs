// The extension in real VS Code: code-server (VS Code for the web) with the .vsix built from this
// checkout, driven by headless Chromium through playwright-core. Screenshots of each step go to
// test-output/vscode-e2e/. Needs: setup.sh run, `npm run package` done, and the repository's .venv.
/* global document, navigator -- in the functions that page.evaluate and frame.evaluate run in the browser */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { actionMenu, chatFrame, cursorOnLine, cutCodeBlocks, editSettings, goToLineEnd, here, launch, log, modelReady, openFile, python, root, runCommand, statusItem, waitFor } from './harness.mjs';

const run = join(root, 'test-output', 'vscode-e2e');

// A comment that asks for code (the write step), and a file the chat's code buttons put code in.
const EVENS = 'import math\n\n# return the largest even number in xs\n\ndef mean(xs):\n    return sum(xs) / len(xs)\n';
const SCRATCH = 'a = 1\nb = 2\nc = 3\n';

test('the extension in code-server: feedback streams into the chat, the lightbulb fix is saved, code is written for a comment, the chat code buttons, a keybinding, Open Chat, Stop stops, ghost text completes, a missing Python is reported', { timeout: 600_000 }, async (t) => {
  const shot = async (page, name) => page.screenshot({ path: join(run, `${name}.png`) });
  const { page, dirs, settingsFile, settings, close } = await launch(run, {
    files: { 'off_by_one.py': readFileSync(join(root, 'examples', 'off_by_one.py'), 'utf8'), 'evens.py': EVENS, 'scratch.py': SCRATCH },
    prepare: (dirs) => {
      log('building the tiny models');
      execFileSync(python, [join(here, 'models.py'), dirs.models, join(here, 'answer.md')], { stdio: 'ignore' });
    },
    settings: (dirs) => ({
      'starchat.python': python,
      'starchat.model.name': join(dirs.models, 'scripted'),
      'starchat.completion.enabled': false,
      // The test types settings.json as one line of text: nothing may be added to it.
      'editor.autoClosingBrackets': 'never',
      'editor.autoClosingQuotes': 'never',
      'editor.autoSurround': 'never',
    }),
  });
  t.after(close);

  const step = (name, body) =>
    t.test(name, async () => {
      try {
        await body();
      } catch (error) {
        await shot(page, `failed-${name.replace(/\W+/g, '-')}`).catch(() => undefined);
        throw error;
      }
    });
  const editor = page.locator('.monaco-editor .view-lines').first();

  await step('the file opens and the status bar shows the model ready', async () => {
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input').fill('off_by_one.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'off_by_one.py' }).first().waitFor();
    await page.keyboard.press('Enter');
    await editor.waitFor();
    await modelReady(page, 'scripted');
    await shot(page, '1-opened');
  });

  let chat;
  await step('Ask for Feedback on Selection streams the answer into the chat view', async () => {
    await editor.click();
    await page.keyboard.press('Control+A');
    await runCommand(page, 'starchat: Ask for Feedback on Selection');
    chat = await chatFrame(page);
    const answer = chat.locator('.message.assistant.done', { hasText: 'The loop stops one window early' });
    await answer.waitFor({ timeout: 120_000 });
    assert.equal(await answer.locator('figure.code button', { hasText: 'Insert at Cursor' }).count(), 1);
    assert.match(await chat.locator('.message.user').first().textContent(), /Feedback on off_by_one\.py:1-10/);
    // The fixed function's lines are wider than the chat view: they wrap, none is cut at its edge.
    assert.deepEqual(await cutCodeBlocks(chat), []);
    await shot(page, '2-feedback');
  });

  await step('the lightbulb fix applies, and the saved file has it', async () => {
    await goToLineEnd(page, 7);
    await actionMenu(page, 'Fix this code with starchat');
    await page.locator('.action-widget .monaco-list-row.focused', { hasText: 'Fix this code with starchat' }).waitFor();
    await shot(page, '3-lightbulb');
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-line', { hasText: 'window + 1' }).first().waitFor({ timeout: 120_000 });
    await page.keyboard.press('Control+S');
    const file = join(dirs.workspace, 'off_by_one.py');
    await waitFor('the fix on disk', () => readFileSync(file, 'utf8').includes('range(len(values) - window + 1)'), 20_000);
    const saved = readFileSync(file, 'utf8');
    assert.equal(saved, readFileSync(join(root, 'examples', 'off_by_one.py'), 'utf8').replace('range(len(values) - window)', 'range(len(values) - window + 1)'));
    await shot(page, '4-fixed-and-saved');
  });

  // The answer of the scripted model (answer.md) has one code block: the fixed function.
  const fixedFunction = readFileSync(join(here, 'answer.md'), 'utf8').split('```python\n')[1].split('```')[0];
  /** Saves the active editor (Ctrl+S) and returns the file once it is `expected` (or after 10 s, whatever it is). */
  const saveAndRead = async (name, expected) => {
    await editor.click();
    await page.keyboard.press('Control+S');
    const file = join(dirs.workspace, name);
    await waitFor(`${name} saved`, () => expected(readFileSync(file, 'utf8')), 10_000).catch(() => undefined);
    return readFileSync(file, 'utf8');
  };

  await step('Write Code for Instruction puts the answer\'s code below the comment', async () => {
    await openFile(page, 'evens.py', 'return the largest even number');
    await goToLineEnd(page, 3); // on "# return the largest even number in xs"
    await actionMenu(page, 'Write code for this instruction with starchat');
    await page.keyboard.press('Escape');
    await runCommand(page, 'starchat: Write Code for Instruction');
    await page.locator('.monaco-editor .view-line', { hasText: 'def moving_average(values, window):' }).first().waitFor({ timeout: 60_000 });
    const saved = await saveAndRead('evens.py', (text) => text.includes('def moving_average'));
    // Right below the comment, as the server's own test has it; the rest of the file unchanged.
    assert.equal(saved, EVENS.replace('in xs\n', `in xs\n${fixedFunction}`));
    assert.match(await chat.locator('.message.user').last().textContent(), /Code for the instruction in evens\.py:3/);
    await shot(page, '4a-write-for-instruction');
  });

  await step('the chat code block: Insert at Cursor, Replace Selection, Copy', async () => {
    const block = chat.locator('.message.assistant.done', { hasText: 'The loop stops one window early' }).first().locator('figure.code');
    await openFile(page, 'scratch.py', 'c = 3');
    await editor.click();
    await page.keyboard.press('Control+End'); // the empty line after "c = 3"
    await cursorOnLine(page, 4);
    await block.locator('button', { hasText: 'Insert at Cursor' }).click();
    await page.locator('.monaco-editor .view-line', { hasText: 'def moving_average(values, window):' }).first().waitFor({ timeout: 10_000 });
    await shot(page, '4b-insert-at-cursor');
    const inserted = `${SCRATCH}${fixedFunction}`;
    assert.equal(await saveAndRead('scratch.py', (text) => text === inserted), inserted);

    await page.keyboard.press('Control+Home');
    await page.keyboard.press('Shift+ArrowDown'); // the whole first line, "a = 1"
    await block.locator('button', { hasText: 'Replace Selection' }).click();
    await waitFor('the selection replaced', async () => (await page.locator('.monaco-editor .view-line', { hasText: 'a = 1' }).count()) === 0, 10_000);
    await shot(page, '4c-replace-selection');
    const replaced = `${fixedFunction}b = 2\nc = 3\n${fixedFunction}`;
    assert.equal(await saveAndRead('scratch.py', (text) => text === replaced), replaced);

    await page.evaluate(() => navigator.clipboard.writeText('nothing yet'));
    await block.locator('button', { hasText: 'Copy' }).click();
    await statusItem(page, 'starchat: code copied').waitFor({ timeout: 5_000 });
    await shot(page, '4d-copy');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), fixedFunction.trimEnd());
  });

  await step('the keybinding Ctrl+Alt+F asks for feedback, and the answer streams into the chat', async () => {
    const before = await chat.locator('.message.assistant').count();
    await editor.click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Control+Alt+F');
    await chat.locator('.message.user', { hasText: 'Feedback on scratch.py:1-2' }).waitFor({ timeout: 10_000 });
    const answer = chat.locator('.message.assistant').nth(before);
    await answer.locator('.body', { hasText: 'The loop stops one window early' }).waitFor({ timeout: 60_000 });
    await chat.locator(`#${await answer.getAttribute('id')}.done`).waitFor({ timeout: 60_000 });
    await shot(page, '4e-keybinding-feedback');
  });

  await step('Open Chat focuses the chat input; a typed message gets a streamed answer', async () => {
    await chat.locator('#attach').uncheck();
    await editor.click();
    const before = await chat.locator('.message.assistant').count();
    await runCommand(page, 'starchat: Open Chat');
    await waitFor('the chat input focused', () => chat.evaluate(() => document.activeElement?.id === 'input'), 10_000);
    await page.keyboard.type('What does moving_average return?');
    await page.keyboard.press('Enter');
    await chat.locator('.message.user', { hasText: 'What does moving_average return?' }).waitFor({ timeout: 10_000 });
    assert.equal(await chat.locator('#input').inputValue(), '');
    const answer = chat.locator('.message.assistant').nth(before);
    await answer.locator('.body', { hasText: 'The loop stops one window early' }).waitFor({ timeout: 60_000 });
    await chat.locator(`#${await answer.getAttribute('id')}.done`).waitFor({ timeout: 60_000 });
    await shot(page, '4f-open-chat');
  });

  await step('Pull Model is in the command palette', async () => {
    await page.keyboard.press('F1');
    await page.locator('.quick-input-widget input').fill('>starchat: Pull Model');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'starchat: Pull Model' }).first().waitFor();
    await shot(page, '4g-pull-model-in-palette');
    await page.keyboard.press('Escape');
  });

  await step('a long answer stops when Stop is pressed', async () => {
    await editSettings(page, settingsFile, { ...settings, 'starchat.model.name': join(dirs.models, 'random'), 'starchat.generation.maxNewTokens': 20000 });
    await shot(page, '5-settings');
    await modelReady(page, 'random');
    await chat.locator('#attach').uncheck();
    const before = await chat.locator('.message.assistant').count();
    await chat.locator('#input').fill('Tell me a very long story.');
    await chat.locator('#input').press('Enter');
    const answer = chat.locator('.message.assistant').nth(before);
    await waitFor('streamed text', async () => ((await answer.locator('.body').textContent()) ?? '').length > 200, 60_000);
    await shot(page, '6-streaming');
    await chat.locator('#stop').click();
    const stoppedAt = Date.now();
    await chat.locator('.message.assistant.stopped').nth(0).waitFor({ timeout: 10_000 });
    const stopSeconds = (Date.now() - stoppedAt) / 1000;
    const length = (await answer.locator('.body').textContent()).length;
    assert.ok(length > 200, `the text streamed before Stop stays (${length} characters)`);
    assert.match(await answer.locator('.detail').textContent(), /stopped/);
    await waitFor('the status bar to leave generating', async () => (await statusItem(page, 'random').textContent()).trim() === 'random', 10_000);
    await new Promise((done) => setTimeout(done, 1500));
    assert.equal((await answer.locator('.body').textContent()).length, length);
    log(`stopped ${stopSeconds.toFixed(2)} s after Stop, at ${length} characters`);
    await shot(page, '7-stopped');
  });

  await step('inline completion shows ghost text, and Tab accepts it', async () => {
    await editSettings(page, settingsFile, { ...settings, 'starchat.model.name': join(dirs.models, 'complete'), 'starchat.completion.enabled': true });
    await modelReady(page, 'complete');
    await page.locator('.tab', { hasText: 'off_by_one.py' }).first().click();
    await editor.click();
    await page.keyboard.press('Control+End'); // the empty last line: a block completion
    await runCommand(page, 'Trigger Inline Suggestion');
    await page.locator('.ghost-text-decoration, .ghost-text').first().waitFor({ timeout: 60_000 });
    await shot(page, '8-inline-completion');
    await page.keyboard.press('Tab');
    await page.locator('.monaco-editor .view-line', { hasText: 'print(moving_average([1, 2, 3, 4], 2))' }).first().waitFor({ timeout: 10_000 });
  });

  await step('a Python without starchat-lsp gets a notification with Show log', async () => {
    // In the workspace's settings, as for a project's own environment.
    await runCommand(page, 'Preferences: Open Workspace Settings (JSON)');
    await page.locator('.tab.active', { hasText: 'settings.json' }).waitFor();
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(JSON.stringify({ 'starchat.python': '/nonexistent/python' }));
    await page.keyboard.press('Control+S');
    const toast = page.locator('.notification-toast', { hasText: "Python not found at '/nonexistent/python'" }).first();
    await toast.waitFor({ timeout: 30_000 });
    assert.equal(await toast.locator('.monaco-button', { hasText: 'Show log' }).count(), 1);
    await shot(page, '9-python-missing');
    await toast.locator('.monaco-button', { hasText: 'Show log' }).click();
    await page.locator('.output-view, .panel', { hasText: 'starchat' }).first().waitFor({ timeout: 10_000 });
    await statusItem(page, 'starchat').waitFor();
    await shot(page, '10-log');
  });
});
