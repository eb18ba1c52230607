/** Pull Model: `python -m starchat_lsp models pull NAME` with a cancellable progress. */

import { spawn } from 'node:child_process';
import * as vscode from 'vscode';
import { resolveInterpreter, type Server } from './server';

/** The names `starchat-lsp models pull` knows (server/starchat_lsp/models/catalogue.py). */
export const CATALOGUE = ['smollm2-135m', 'qwen2.5-coder-1.5b'];

async function chooseModel(current: string): Promise<string | undefined> {
  const items: vscode.QuickPickItem[] = CATALOGUE.map((name) => ({
    label: name,
    description: name === current ? 'current model' : undefined,
  }));
  items.push({ label: 'Other…', description: 'a name from `starchat-lsp models list`' });
  const picked = await vscode.window.showQuickPick(items, { title: 'starchat: Pull Model', placeHolder: 'the model to download' });
  if (picked?.label !== 'Other…') {
    return picked?.label;
  }
  return vscode.window.showInputBox({ title: 'starchat: Pull Model', prompt: 'model name' });
}

export async function pullModel(server: Server): Promise<void> {
  const config = vscode.workspace.getConfiguration('starchat');
  const current = config.get<string>('model.name') ?? '';
  const name = (await chooseModel(current))?.trim();
  if (!name) {
    return;
  }
  const python = (await resolveInterpreter()).command;
  const output = server.output;
  output.info(`${python} -m starchat_lsp models pull ${name}`);
  const exitCode = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `starchat: pulling ${name}`, cancellable: true },
    (progress, cancel) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(python, ['-m', 'starchat_lsp', 'models', 'pull', name]);
        cancel.onCancellationRequested(() => child.kill());
        const onData = (data: Buffer): void => {
          for (const line of data.toString().split(/[\r\n]+/)) {
            if (line.trim() !== '') {
              output.info(line);
              progress.report({ message: line.slice(0, 120) });
            }
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('error', (error) => {
          output.error(String(error));
          resolve(null);
        });
        child.on('close', (code) => resolve(code));
      }),
  );
  if (exitCode !== 0) {
    const choice = await vscode.window.showErrorMessage(`starchat: pulling ${name} failed.`, 'Show log');
    if (choice === 'Show log') {
      output.show();
    }
    return;
  }
  if (name === current) {
    void vscode.window.showInformationMessage(`starchat: ${name} is ready; restarting the server.`);
    await server.restart();
    return;
  }
  const choice = await vscode.window.showInformationMessage(`starchat: ${name} is ready.`, 'Use It');
  if (choice === 'Use It') {
    await config.update('model.name', name, vscode.ConfigurationTarget.Global);
  }
}
