/** The chat view in the side bar: a webview that shows the conversation and sends what the user types. */

import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { type ChatMessage, Conversation, type ViewUpdate } from './conversation';
import { codeBlocks } from './markdown';

export type CodeAction = 'insert' | 'replace' | 'copy';

export interface ChatHandlers {
  send(text: string, attachSelection: boolean): void;
  stop(): void;
  useCode(code: string, action: CodeAction): void;
}

type FromView =
  | { type: 'ready' }
  | { type: 'send'; text: string; attachSelection: boolean }
  | { type: 'stop' }
  | { type: 'clear' }
  | { type: 'code'; action: CodeAction; message: number; block: number };

export class ChatView implements vscode.WebviewViewProvider {
  static readonly id = 'starchat.chat';
  readonly conversation = new Conversation((update) => this.post(update));
  private view: vscode.WebviewView | undefined;
  private generating = false;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly handlers: ChatHandlers,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const roots = [vscode.Uri.joinPath(this.extensionUri, 'dist'), vscode.Uri.joinPath(this.extensionUri, 'client', 'media')];
    view.webview.options = { enableScripts: true, localResourceRoots: roots };
    view.webview.html = this.html(view.webview);
    view.webview.onDidReceiveMessage((message: FromView) => this.receive(message));
    view.onDidDispose(() => {
      this.view = undefined;
    });
  }

  /** Shows the view (without taking focus from the editor unless `focus`). */
  async reveal(focus = false): Promise<void> {
    if (this.view === undefined) {
      await vscode.commands.executeCommand(`${ChatView.id}.focus`);
    } else {
      this.view.show(!focus);
    }
    if (focus) {
      void this.view?.webview.postMessage({ type: 'focusInput' });
    }
  }

  setGenerating(generating: boolean): void {
    this.generating = generating;
    void this.view?.webview.postMessage({ type: 'generating', generating });
  }

  private receive(message: FromView): void {
    switch (message.type) {
      case 'ready':
        this.post({ type: 'reset', messages: [...this.conversation.all()] });
        this.setGenerating(this.generating);
        break;
      case 'send':
        if (message.text.trim() !== '') {
          this.handlers.send(message.text, message.attachSelection);
        }
        break;
      case 'stop':
        this.handlers.stop();
        break;
      case 'clear':
        this.conversation.clear();
        break;
      case 'code': {
        const found: ChatMessage | undefined = this.conversation.all().find((m) => m.id === message.message);
        const block = found === undefined ? undefined : codeBlocks(found.content)[message.block];
        if (block !== undefined) {
          this.handlers.useCode(block.code, message.action);
        }
        break;
      }
    }
  }

  private post(update: ViewUpdate): void {
    void this.view?.webview.postMessage(update);
  }

  private html(webview: vscode.Webview): string {
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'client', 'media', 'chat.css'));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `img-src ${webview.cspSource} data:`,
      `font-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
<title>starchat</title>
</head>
<body>
<main id="messages" aria-live="polite"></main>
<p id="empty">Ask about your code. Select lines in the editor and tick "Attach selection" to talk about them.</p>
<form id="ask">
  <textarea id="input" rows="3" placeholder="Ask starchat (Enter sends, Shift+Enter adds a line)"></textarea>
  <div class="row">
    <label><input type="checkbox" id="attach" checked> Attach selection</label>
    <span class="spacer"></span>
    <button type="button" id="clear" class="secondary" title="Clear the conversation">Clear</button>
    <button type="button" id="stop" class="secondary" title="Stop the answer" hidden>Stop</button>
    <button type="submit" id="send">Send</button>
  </div>
</form>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }
}
