/** Activation: the server, the chat view, commands, the status bar; restart when the interpreter changes. */

import * as vscode from 'vscode';
import { ChatView } from './chatView';
import { chatHandlers, registerCommands } from './commands';
import { CursorRest, PREFETCH } from './cursorRest';
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
  // The server reads a new place's text while the user looks at it (completion.prefetch).
  const rest = new CursorRest((place) => {
    void current.current
      ?.sendNotification(PREFETCH, {
        textDocument: { uri: place.uri },
        position: { line: place.line, character: place.character },
      })
      .catch(() => undefined); // the server went away meanwhile: nothing to read for
  });

  context.subscriptions.push(
    rest,
    vscode.workspace.onDidChangeTextDocument((event) => {
      if (event.contentChanges.length > 0) {
        rest.edit(event.document.uri.toString());
      }
    }),
    vscode.window.onDidChangeTextEditorSelection((event) => {
      const selection = event.selections[0];
      if (selection !== undefined && event.selections.length === 1) {
        const { line, character } = selection.active;
        rest.moved({ uri: event.textEditor.document.uri.toString(), line, character }, selection.isEmpty);
      }
    }),
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
