// The README's pictures, taken with the real default model (not the e2e test's scripted one): the
// extension in code-server driven by headless Chromium, as in vscode.test.mjs. Needs what the e2e
// test needs, and the default model pulled (`make pull`). Writes docs/images/vscode-*.png (those of
// the README and docs/vscode.md), or into the folder given as the first argument. `make screenshots`.
import { homedir } from 'node:os';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { actionMenu, chatFrame, cutCodeBlocks, goToLineEnd, launch, log, modelReady, openFile, python, root, runCommand, waitFor } from './harness.mjs';

const out = resolve(process.argv[2] ?? join(root, 'docs', 'images'));
const MODEL = process.env.MODEL ?? 'qwen2.5-coder-1.5b';
const ANSWER_MS = 600_000; // a checked answer of the 1.5B model on 2 CPU cores: about a minute

// A file for the chat picture: code with a line longer than the chat view is wide.
const REPORT = `import csv


def total_by_customer(path):
    totals = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            totals[row["customer"]] = totals.get(row["customer"], 0) + float(row["amount"].replace(",", ""))
    return sorted(totals.items(), key=lambda item: item[1])
`;

// The models are the user's own, pulled into their cache; the home folder is the run's.
process.env.STARCHAT_LSP_CACHE ??= join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'starchat-lsp', 'models');

const { page, close } = await launch(join(root, 'test-output', 'screenshots'), {
  files: { 'off_by_one.py': readFileSync(join(root, 'examples', 'off_by_one.py'), 'utf8'), 'report.py': REPORT },
  settings: () => ({ 'starchat.python': python, 'starchat.model.name': MODEL }),
});
const shot = async (name) => {
  await page.screenshot({ path: join(out, name) });
  log(`wrote ${join(out, name)}`);
};

/** The chat's answer number `index` (0-based), once finished; one that stopped or failed throws. */
async function finished(chat, index) {
  const answer = chat.locator('.message.assistant').nth(index);
  await waitFor('the answer to finish', async () => /\b(done|error|stopped)\b/.test((await answer.getAttribute('class').catch(() => '')) ?? ''), ANSWER_MS, 1000);
  const classes = await answer.getAttribute('class');
  if (!classes.includes('done')) {
    throw new Error(`the answer did not finish: ${classes}: ${await answer.textContent()}`);
  }
  log(`answer: ${(await answer.textContent()).slice(0, 300).replace(/\s+/g, ' ')}`);
}

/** Runs `ask` and waits for the answer it adds to the chat. */
async function answerTo(chat, ask) {
  const before = await chat.locator('.message.assistant').count();
  await ask();
  await finished(chat, before);
}

/** Drags the edge between the side bar (the chat) and the editor to `x`, for a wider chat. */
async function widenSideBar(x) {
  const bar = await page.locator('.part.sidebar').boundingBox();
  const edge = bar.x + bar.width;
  await page.mouse.move(edge, bar.y + bar.height / 2);
  await page.mouse.down();
  await page.mouse.move(x, bar.y + bar.height / 2, { steps: 10 });
  await page.mouse.up();
  await page.mouse.move(x + 400, bar.y + bar.height - 20); // off the edge, which shows while hovered
}

/** Closes the notifications, so that none covers the picture. */
async function clearNotifications() {
  await runCommand(page, 'Notifications: Clear All Notifications');
}

try {
  await openFile(page, 'off_by_one.py', 'moving_average');
  await modelReady(page, MODEL, 300_000);

  log('feedback');
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+A');
  await runCommand(page, 'starchat: Ask for Feedback on Selection');
  const chat = await chatFrame(page);
  await finished(chat, 0);
  await widenSideBar(620);
  await clearNotifications();
  await shot('vscode-feedback.png');

  log('the lightbulb');
  await goToLineEnd(page, 7);
  await actionMenu(page, 'Fix this code with starchat');
  await shot('vscode-lightbulb.png');
  await page.keyboard.press('Escape');

  log('a checked fix');
  await chat.locator('#clear').click();
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+A');
  await answerTo(chat, () => runCommand(page, 'starchat: Fix Selection'));
  await page.locator('.monaco-editor .view-line', { hasText: 'window + 1' }).first().waitFor({ timeout: 30_000 });
  await clearNotifications();
  await shot('vscode-checked-fix.png');

  log('chat about a selection with a long line');
  await chat.locator('#clear').click();
  await openFile(page, 'report.py', 'total_by_customer');
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+A');
  await chat.locator('#attach').check();
  await answerTo(chat, async () => {
    await chat.locator('#input').fill('The biggest customers should come first. What do I change?');
    await chat.locator('#input').press('Enter');
  });
  const cut = await cutCodeBlocks(chat);
  if (cut.length > 0) {
    throw new Error(`code cut at the chat view's edge: ${cut.join(' | ')}`);
  }
  await clearNotifications();
  await shot('vscode-chat.png');

  log('a long answer stopped');
  await chat.locator('#clear').click();
  await chat.locator('#attach').uncheck();
  await chat.locator('#input').fill('Explain how csv.DictReader reads a file, step by step, in great detail.');
  await chat.locator('#input').press('Enter');
  const streaming = chat.locator('.message.assistant').nth(0);
  await waitFor('streamed text', async () => ((await streaming.locator('.body').textContent()) ?? '').length > 400, ANSWER_MS);
  await chat.locator('#stop').click();
  await chat.locator('.message.assistant.stopped').first().waitFor({ timeout: 30_000 });
  await clearNotifications();
  await shot('vscode-stopped.png');

  log('inline completion');
  await page.locator('.tab', { hasText: 'off_by_one.py' }).first().click();
  await page.locator('.tab.active', { hasText: 'off_by_one.py' }).waitFor();
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+End');
  await page.keyboard.insertText('\n\n# the moving averages of 1 to 10, three at a time\n');
  await runCommand(page, 'Trigger Inline Suggestion');
  await page.locator('.ghost-text-decoration, .ghost-text').first().waitFor({ timeout: 120_000 });
  await shot('vscode-inline.png');
} catch (error) {
  await page.screenshot({ path: join(out, 'failed.png') }).catch(() => undefined);
  throw error;
} finally {
  await close();
}
