/** Activation: the server, the chat view, commands, the status bar; restart when the interpreter changes. */

import * as vscode from 'vscode';
import { ChatView } from './chatView';
import { chatHandlers, registerCommands } from './commands';
import { Generations } from './generation';
import { onPythonChange, Server } from './server';
import { needsRestart } from './settings';
import { StatusBar } from './statusBar';

let server: Server | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('starchat', { log: true });
  server = new Server(output);
  const generations = new Generations();
  const statusBar = new StatusBar();
  const ctx = { server, generations, chat: undefined as unknown as ChatView };
  ctx.chat = new ChatView(context.extensionUri, chatHandlers(ctx));
  const current = server;

  context.subscriptions.push(
    output,
    current,
    generations,
    statusBar,
    vscode.window.registerWebviewViewProvider(ChatView.id, ctx.chat, { webviewOptions: { retainContextWhenHidden: true } }),
    ...registerCommands(ctx),
    vscode.commands.registerCommand('starchat.statusClicked', () =>
      statusBar.isGenerating
        ? generations.cancelAll()
        : vscode.commands.executeCommand('workbench.action.openSettings', '@ext:starchat.starchat-lsp'),
    ),
    current.onDidChangeClient((client) => statusBar.setClient(client)),
    generations.onDidChange((count) => {
      statusBar.setGenerating(count);
      ctx.chat.setGenerating(count > 0);
      void vscode.commands.executeCommand('setContext', 'starchat.generating', count > 0);
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (needsRestart((section) => event.affectsConfiguration(section))) {
        void current.restart();
      } else if (event.affectsConfiguration('starchat')) {
        void current.pushSettings();
      }
    }),
  );
  const pythonChanged = await onPythonChange(() => {
    if (!vscode.workspace.getConfiguration('starchat').get<string>('python')) {
      output.info("the Python extension's interpreter changed: restarting");
      void current.restart();
    }
  });
  if (pythonChanged !== undefined) {
    context.subscriptions.push(pythonChanged);
  }
  void current.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}
