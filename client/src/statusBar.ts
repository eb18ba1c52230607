/** The status bar item: model name and state (loading, ready, failed, generating); click to stop or configure. */

import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { Methods, modelLabel, type StatusResult } from './protocol';

const POLL_LOADING_MS = 2_000;
const POLL_READY_MS = 15_000;

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  private client: LanguageClient | undefined;
  private status: StatusResult | undefined;
  private generating = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor() {
    this.item.name = 'starchat';
    this.item.command = 'starchat.statusClicked';
    this.render();
    this.item.show();
  }

  setClient(client: LanguageClient | undefined): void {
    this.client = client;
    this.status = undefined;
    this.render();
    void this.poll();
  }

  setGenerating(count: number): void {
    this.generating = count;
    this.render();
    if (count === 0) {
      void this.poll();
    }
  }

  get isGenerating(): boolean {
    return this.generating > 0;
  }

  private async poll(): Promise<void> {
    clearTimeout(this.timer);
    const client = this.client;
    if (client === undefined) {
      return;
    }
    try {
      this.status = await client.sendRequest<StatusResult>(Methods.status, {});
    } catch {
      this.status = undefined;
    }
    if (client !== this.client) {
      return;
    }
    this.render();
    const settled = this.status?.state === 'ready' || this.status?.state === 'failed';
    this.timer = setTimeout(() => void this.poll(), settled ? POLL_READY_MS : POLL_LOADING_MS);
  }

  private render(): void {
    const full = this.status?.model ?? vscode.workspace.getConfiguration('starchat').get<string>('model.name') ?? '';
    const model = modelLabel(full);
    if (this.client === undefined) {
      this.item.text = '$(circle-slash) starchat';
      this.item.tooltip = 'starchat: the server is not running. Click for settings.';
    } else if (this.generating > 0) {
      this.item.text = `$(loading~spin) ${model}: generating`;
      this.item.tooltip = 'starchat is answering. Click to stop.';
    } else {
      const state = this.status?.state ?? 'loading';
      const icon = { unconfigured: '$(loading~spin)', loading: '$(loading~spin)', ready: '$(check)', failed: '$(error)' }[state];
      this.item.text = `${icon} ${model}${state === 'ready' ? '' : `: ${state}`}`;
      this.item.tooltip = `starchat: ${full} (${this.status?.backend ?? 'transformers'}) is ${state}. Click for settings.`;
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.client = undefined;
    this.item.dispose();
  }
}
