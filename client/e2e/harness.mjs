// The extension in real VS Code: code-server (VS Code for the web) with the .vsix built from this
// checkout, driven by headless Chromium through playwright-core. What the end-to-end test and the
// README's screenshots share: launching it all in a folder of its own, and waiting on the UI.
/* global document, getComputedStyle -- in the functions that page.evaluate and frame.evaluate run in the browser */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');
export const python = process.env.STARCHAT_PYTHON ?? join(root, '.venv', 'bin', 'python');
const codeServer = join(here, 'node_modules', '.bin', 'code-server');
const browser = process.env.CHROMIUM ?? '/usr/bin/chromium';
const vsix = join(root, 'starchat-lsp.vsix');

/** Settings that keep VS Code's own tours, AI features and prompts out of the way. */
export const QUIET_SETTINGS = {
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.ignoreRecommendations': true,
  'chat.disableAIFeatures': true,
  'chat.commandCenter.enabled': false,
  'editor.lightbulb.enabled': 'on',
  'git.openRepositoryInParentFolders': 'never', // test-output/ is inside this repository
};

const started = Date.now();
export function log(message) {
  process.stderr.write(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on('error', fail);
  });
}

export async function waitFor(what, check, timeoutMs = 60_000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((done) => setTimeout(done, everyMs));
  }
}

/**
 * Starts code-server with the extension installed, on `files` (name -> text) in a fresh
 * workspace under `run`, and opens it in headless Chromium. `settings(dirs)` gives the user
 * settings; `prepare(dirs)` runs before code-server starts (the models the settings name).
 * Returns the page, the folders and `close()`, which stops it all and keeps code-server's log.
 */
export async function launch(run, { files, settings, prepare = () => undefined }) {
  if (!existsSync(vsix)) {
    throw new Error(`${vsix} is missing: run npm run package first`);
  }
  rmSync(run, { recursive: true, force: true });
  const dirs = Object.fromEntries(
    ['home', 'tmp', 'user-data', 'extensions', 'workspace', 'models', 'chromium'].map((name) => [name, join(run, name)]),
  );
  Object.values(dirs).forEach((dir) => mkdirSync(dir, { recursive: true }));
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dirs.workspace, name), text);
  }
  prepare(dirs);
  const settingsFile = join(dirs['user-data'], 'User', 'settings.json');
  mkdirSync(dirname(settingsFile), { recursive: true });
  const userSettings = { ...QUIET_SETTINGS, ...settings(dirs) };
  writeFileSync(settingsFile, JSON.stringify(userSettings, null, 2));

  const env = {
    ...process.env,
    HOME: dirs.home,
    TMPDIR: dirs.tmp,
    XDG_CONFIG_HOME: join(dirs.home, '.config'),
    XDG_DATA_HOME: join(dirs.home, '.local', 'share'),
    // A model host leaves with its last client, not 5 minutes later: runs one after another
    // would otherwise stack up hosts of models no one uses any more (as the pytest suite does).
    STARCHAT_LSP_SHARED_IDLE_S: process.env.STARCHAT_LSP_SHARED_IDLE_S ?? '0',
  };
  const common = ['--user-data-dir', dirs['user-data'], '--extensions-dir', dirs.extensions];
  log('installing the .vsix');
  execFileSync(codeServer, [...common, '--install-extension', vsix], { env, stdio: 'ignore' });

  const port = await freePort();
  log(`starting code-server on 127.0.0.1:${port}`);
  const server = spawn(
    codeServer,
    [...common, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-workspace-trust', '--disable-telemetry', '--disable-update-check', dirs.workspace],
    { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let serverLog = '';
  server.stdout.on('data', (data) => (serverLog += data));
  server.stderr.on('data', (data) => (serverLog += data));
  let context;
  const close = async () => {
    await context?.close().catch(() => undefined);
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    writeFileSync(join(run, 'code-server.log'), serverLog);
  };
  try {
    await waitFor('code-server to listen', async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
      } catch {
        return false;
      }
    });
    context = await chromium.launchPersistentContext(dirs.chromium, {
      executablePath: browser,
      headless: true,
      viewport: { width: 1400, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.workspace)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    log('workbench up');
    return { page, dirs, settingsFile, settings: userSettings, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The chat view's frame: the webview's inner iframe, found by its content. */
export async function chatFrame(page) {
  return waitFor('the chat view', async () => {
    for (const frame of page.frames()) {
      try {
        if ((await frame.locator('#messages').count()) > 0) {
          return frame;
        }
      } catch {
        // a frame that went away meanwhile
      }
    }
    return undefined;
  });
}

/** Opens `name` with Quick Open and waits until the editor shows `text` (keys pressed before that go nowhere). */
export async function openFile(page, name, text) {
  await page.keyboard.press('Control+P');
  await page.locator('.quick-input-widget input').fill(name);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.tab.active', { hasText: name }).waitFor();
  await page.locator('.monaco-editor .view-line', { hasText: text }).first().waitFor({ timeout: 20_000 });
}

/** Waits until the status bar says the cursor is on `line` (1-based), so that what follows acts there. */
export async function cursorOnLine(page, line) {
  await page.locator('.statusbar-item', { hasText: new RegExp(`Ln ${line}, Col \\d+`) }).first().waitFor({ timeout: 10_000 });
}

/** Puts the cursor at the end of `line` (1-based) of the active editor. */
export async function goToLineEnd(page, line) {
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+Home');
  for (let i = 1; i < line; i += 1) {
    await page.keyboard.press('ArrowDown');
  }
  await page.keyboard.press('End');
  await cursorOnLine(page, line);
}

/**
 * Opens the code action menu at the cursor (Ctrl+.) and returns its row `title`. First waits for
 * the lightbulb at the cursor: VS Code asks for the actions on its own a moment after the cursor
 * moves, and that request, answered after a Ctrl+. pressed meanwhile, closed the menu before it
 * showed (a flaky step). The lightbulb sits on the cursor's line or one next to it, so it may
 * still be the one of a line the cursor passed: when the row does not show, the menu is closed
 * and asked for again (CI once waited 30 s on a menu that never showed the row).
 */
export async function actionMenu(page, title, tries = 3) {
  const row = page.locator('.action-widget .monaco-list-row', { hasText: title }).first();
  for (let attempt = 1; ; attempt += 1) {
    await waitFor('the lightbulb at the cursor', () => lightbulbAtCursor(page), 30_000);
    await page.keyboard.press('Control+.');
    try {
      await row.waitFor({ timeout: 10_000 });
      return row;
    } catch (error) {
      if (attempt >= tries) {
        throw error;
      }
      log(`the code action menu has no row "${title}" (try ${attempt}): asking again`);
      await page.keyboard.press('Escape');
      await new Promise((done) => setTimeout(done, 500));
    }
  }
}

function lightbulbAtCursor(page) {
  return page.evaluate(() => {
    const editor = document.querySelector('.monaco-editor.focused');
    const bulb = editor?.querySelector('.lightBulbWidget');
    const cursor = editor?.querySelector('.cursors-layer .cursor');
    if (!bulb || !cursor || getComputedStyle(bulb).visibility !== 'visible' || getComputedStyle(bulb).display === 'none') {
      return false;
    }
    const line = cursor.getBoundingClientRect();
    return Math.abs(bulb.getBoundingClientRect().top - line.top) <= line.height + 1;
  });
}

export async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
  await page.keyboard.press('Enter');
}

export function statusItem(page, text) {
  return page.locator('.statusbar-item', { hasText: text }).first();
}

/** Waits until the status bar's model item reads just `name`: the server is up and the model loaded. */
export async function modelReady(page, name, timeoutMs = 120_000) {
  const item = statusItem(page, name);
  await waitFor(`the model ${name} to be ready`, async () => (await item.count()) > 0 && (await item.textContent()).trim() === name, timeoutMs);
}

/** Code blocks of the chat whose text runs past their box, so that some of it cannot be read. */
export async function cutCodeBlocks(chat) {
  return chat.evaluate(() =>
    [...document.querySelectorAll('figure.code pre')]
      .filter((pre) => pre.scrollWidth > pre.clientWidth + 1 || pre.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
      .map((pre) => pre.textContent.split('\n')[0]),
  );
}

/** Replaces the user settings through VS Code's own editor (code-server does not notice a settings.json written behind its back). */
export async function editSettings(page, settingsFile, settings) {
  await runCommand(page, 'Preferences: Open User Settings (JSON)');
  await page.locator('.monaco-editor .view-lines', { hasText: 'starchat.python' }).first().click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(JSON.stringify(settings)); // one line: no auto-closing or auto-indent
  await page.keyboard.press('Control+S');
  const text = JSON.stringify(settings['starchat.model.name']);
  await waitFor('the settings saved', () => readFileSync(settingsFile, 'utf8').includes(text.slice(1, -1)), 15_000);
}
