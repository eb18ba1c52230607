/** The commands: code tasks and chat streamed into the chat view, code from the chat into the editor. */

import * as vscode from 'vscode';
import type { LanguageClient, WorkspaceEdit } from 'vscode-languageclient/node';
import type { ChatView, CodeAction } from './chatView';
import { outcomeOf, stopNote } from './errors';
import type { Generations } from './generation';
import { codeForInsertion } from './markdown';
import {
  type ChatParams,
  type ChatResult,
  type CodeTask,
  type CodeTaskResult,
  Methods,
} from './protocol';
import { pullModel } from './pullModel';
import type { Server } from './server';
import { linesLabel, TASK_TITLES } from './tasks';

interface Context {
  server: Server;
  generations: Generations;
  chat: ChatView;
}

function runningClient(server: Server): LanguageClient | undefined {
  const client = server.current;
  if (client === undefined) {
    void vscode.window
      .showErrorMessage('starchat: the server is not running.', 'Restart Server', 'Show log')
      .then((choice) => {
        if (choice === 'Restart Server') {
          void vscode.commands.executeCommand('starchat.restartServer');
        } else if (choice === 'Show log') {
          server.output.show();
        }
      });
  }
  return client;
}

/** Streams an answer into a new chat message; returns the result, or undefined if it failed. */
async function streamAnswer<
  R extends {
    text: string;
    usage?: { stop_reason: string; tokens_out: number };
    verification?: { verdict: string } | null;
  },
>(
  ctx: Context,
  client: LanguageClient,
  method: string,
  params: object,
  title: string,
): Promise<R | undefined> {
  const answer = ctx.chat.conversation.startAnswer();
  try {
    const result = await ctx.generations.run<R>(client, method, params, `starchat: ${title}`, (chunk) =>
      ctx.chat.conversation.append(answer.id, chunk),
    );
    // The checked answer replaces the streamed draft; the verdict says how sure we are.
    const notes = [stopNote(result.usage?.stop_reason, result.usage?.tokens_out), result.verification?.verdict];
    ctx.chat.conversation.finish(answer.id, result.text, notes.filter((note) => note).join(' · ') || undefined);
    return result;
  } catch (error) {
    const outcome = outcomeOf(error);
    if (outcome.kind === 'cancelled') {
      ctx.chat.conversation.stop(answer.id);
    } else {
      ctx.chat.conversation.fail(answer.id, outcome.message);
      void vscode.window.showErrorMessage(`starchat: ${outcome.message}`);
    }
    return undefined;
  }
}

async function applyFix(
  client: LanguageClient,
  document: vscode.TextDocument,
  version: number,
  result: CodeTaskResult,
): Promise<boolean> {
  if (result.fix?.edit === undefined || result.fix.edit === null) {
    const why = result.fix?.problems.length ? result.fix.problems.join('; ') : 'the answer has no code for these lines';
    void vscode.window.showWarningMessage(`starchat: no fix applied (${why}).`);
    return false;
  }
  if (document.version !== version) {
    void vscode.window.showWarningMessage('starchat: the document changed meanwhile: the fix was not applied.');
    return false;
  }
  const edit = await client.protocol2CodeConverter.asWorkspaceEdit(result.fix.edit as WorkspaceEdit);
  return vscode.workspace.applyEdit(edit);
}

async function runTask(ctx: Context, task: CodeTask): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    void vscode.window.showInformationMessage('starchat: open a file and select some code first.');
    return;
  }
  const client = runningClient(ctx.server);
  if (client === undefined) {
    return;
  }
  const { document, selection } = editor;
  const version = document.version;
  const title = `${TASK_TITLES[task]} ${linesLabel(document.fileName, selection.start, selection.end)}`;
  ctx.chat.conversation.addUser(title);
  await ctx.chat.reveal();
  const params = {
    textDocument: { uri: client.code2ProtocolConverter.asUri(document.uri) },
    range: client.code2ProtocolConverter.asRange(selection),
  };
  const result = await streamAnswer<CodeTaskResult>(ctx, client, Methods[task], params, title);
  if (result === undefined) {
    return;
  }
  if (task === 'fix' || task === 'write') {
    await applyFix(client, document, version, result);
  } else if (task === 'feedback' && result.fix?.edit) {
    const choice = await vscode.window.showInformationMessage(`starchat has a fix for ${linesLabel(document.fileName, selection.start, selection.end)}.`, 'Apply Fix');
    if (choice === 'Apply Fix') {
      await applyFix(client, document, version, result);
    }
  }
}

async function sendChat(ctx: Context, text: string, attachSelection: boolean): Promise<void> {
  const client = runningClient(ctx.server);
  if (client === undefined) {
    return;
  }
  const editor = vscode.window.activeTextEditor;
  const params: ChatParams = { messages: [] };
  let title: string | undefined;
  if (attachSelection && editor !== undefined && !editor.selection.isEmpty) {
    params.textDocument = { uri: client.code2ProtocolConverter.asUri(editor.document.uri) };
    params.range = client.code2ProtocolConverter.asRange(editor.selection);
    title = `about ${linesLabel(editor.document.fileName, editor.selection.start, editor.selection.end)}`;
  }
  ctx.chat.conversation.addUser(text, title);
  params.messages = ctx.chat.conversation.turns();
  await streamAnswer<ChatResult>(ctx, client, Methods.chat, params, 'answering');
}

/** Puts a code block from the chat into the last active editor, or on the clipboard. */
export async function useCode(code: string, action: CodeAction): Promise<void> {
  if (action === 'copy') {
    await vscode.env.clipboard.writeText(code);
    void vscode.window.setStatusBarMessage('starchat: code copied', 2000);
    return;
  }
  const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
  if (editor === undefined) {
    void vscode.window.showInformationMessage('starchat: open an editor to put the code in.');
    return;
  }
  await editor.edit((builder) => {
    if (action === 'replace' && !editor.selection.isEmpty) {
      const wholeLines = editor.selection.start.character === 0 && editor.selection.end.character === 0;
      builder.replace(editor.selection, codeForInsertion(code, wholeLines));
    } else {
      builder.insert(editor.selection.active, codeForInsertion(code, editor.selection.active.character === 0));
    }
  });
  await vscode.window.showTextDocument(editor.document, editor.viewColumn);
}

export function chatHandlers(ctx: Context): {
  send(text: string, attach: boolean): void;
  stop(): void;
  useCode(code: string, action: CodeAction): void;
} {
  return {
    send: (text, attach) => void sendChat(ctx, text, attach),
    stop: () => ctx.generations.cancelAll(),
    useCode: (code, action) => void useCode(code, action),
  };
}

export function registerCommands(ctx: Context): vscode.Disposable[] {
  const register = (name: string, run: () => unknown): vscode.Disposable =>
    vscode.commands.registerCommand(`starchat.${name}`, run);
  return [
    register('feedback', () => runTask(ctx, 'feedback')),
    register('fix', () => runTask(ctx, 'fix')),
    register('explain', () => runTask(ctx, 'explain')),
    register('write', () => runTask(ctx, 'write')),
    register('openChat', () => ctx.chat.reveal(true)),
    register('cancel', () => ctx.generations.cancelAll()),
    register('pullModel', () => pullModel(ctx.server)),
    register('restartServer', () => ctx.server.restart()),
    register('showLog', () => ctx.server.output.show()),
  ];
}
