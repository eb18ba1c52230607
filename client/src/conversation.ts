/**
 * The chat view's conversation: messages, answers that stream in chunk by chunk, and what is
 * sent to the server as `messages`. Pure, so it is tested without VS Code.
 */

import type { ChatTurn } from './protocol';

export type MessageState = 'streaming' | 'done' | 'stopped' | 'error';

export interface ChatMessage {
  id: number;
  role: 'user' | 'assistant';
  /** Markdown. */
  content: string;
  state: MessageState;
  /** A short line above the message, e.g. "Feedback on app.py:12-30". */
  title?: string;
  /** Why it failed, or a note such as "cut at 512 tokens". */
  detail?: string;
}

export type ViewUpdate =
  | { type: 'reset'; messages: ChatMessage[] }
  | { type: 'message'; message: ChatMessage };

export class Conversation {
  private readonly messages: ChatMessage[] = [];
  private nextId = 1;

  constructor(private readonly publish: (update: ViewUpdate) => void = () => undefined) {}

  all(): readonly ChatMessage[] {
    return this.messages;
  }

  addUser(content: string, title?: string): ChatMessage {
    return this.add({ role: 'user', content, state: 'done', title });
  }

  /** An empty assistant message that chunks are appended to. */
  startAnswer(title?: string): ChatMessage {
    return this.add({ role: 'assistant', content: '', state: 'streaming', title });
  }

  append(id: number, chunk: string): void {
    const message = this.find(id);
    if (message !== undefined && message.state === 'streaming') {
      message.content += chunk;
      this.publish({ type: 'message', message });
    }
  }

  /** The answer is complete; `text` (the response's whole answer) wins over the chunks. */
  finish(id: number, text: string | undefined, detail?: string): void {
    this.end(id, 'done', text, detail);
  }

  stop(id: number): void {
    this.end(id, 'stopped', undefined, 'stopped');
  }

  fail(id: number, reason: string): void {
    this.end(id, 'error', undefined, reason);
  }

  clear(): void {
    this.messages.length = 0;
    this.publish({ type: 'reset', messages: [] });
  }

  /**
   * The conversation as the server takes it: answers that failed or have no text are left
   * out, and so is the user message they answered, so that the turns alternate.
   */
  turns(): ChatTurn[] {
    const turns: ChatTurn[] = [];
    for (const message of this.messages) {
      if (message.role === 'user') {
        if (turns.length > 0 && turns[turns.length - 1].role === 'user') {
          turns.pop();
        }
        turns.push({ role: 'user', content: message.content });
      } else if (message.state !== 'error' && message.content.trim() !== '') {
        if (turns.length > 0 && turns[turns.length - 1].role === 'user') {
          turns.push({ role: 'assistant', content: message.content });
        }
      }
    }
    return turns;
  }

  private add(fields: Omit<ChatMessage, 'id'>): ChatMessage {
    const message: ChatMessage = { id: this.nextId++, ...fields };
    this.messages.push(message);
    this.publish({ type: 'message', message });
    return message;
  }

  private end(id: number, state: MessageState, text: string | undefined, detail?: string): void {
    const message = this.find(id);
    if (message === undefined || message.state !== 'streaming') {
      return;
    }
    if (text !== undefined) {
      message.content = text;
    }
    message.state = state;
    message.detail = detail;
    this.publish({ type: 'message', message });
  }

  private find(id: number): ChatMessage | undefined {
    return this.messages.find((message) => message.id === id);
  }
}
