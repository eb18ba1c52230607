/** The server's custom requests and their shapes (docs/protocol.md), with no runtime dependencies. */

export const Methods = {
  feedback: 'starchat/feedback',
  fix: 'starchat/fix',
  explain: 'starchat/explain',
  write: 'starchat/write',
  chat: 'starchat/chat',
  status: 'starchat/status',
} as const;

/** Server -> client: a step of verifying a feedback or fix answer, after its draft streamed. */
export const STAGE_NOTIFICATION = 'starchat/progress';

export interface StageParams {
  token: string | number | null;
  uri: string;
  stage: 'evidence' | 'testing' | 'sampling' | 'checking' | 'second-look' | 'explaining' | 'done';
  message: string;
}

/** The stage's message when it belongs to the request that sent `token`. */
export function stageMessage(params: unknown, token: string): string | undefined {
  if (typeof params !== 'object' || params === null) {
    return undefined;
  }
  const { token: own, message } = params as { token?: unknown; message?: unknown };
  return own === token && typeof message === 'string' ? message : undefined;
}

export type CodeTask = 'feedback' | 'fix' | 'explain' | 'write';

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface Usage {
  stop_reason: 'eos' | 'stop_string' | 'length' | 'time' | 'cancelled' | 'error';
  tokens_in: number;
  tokens_out: number;
  time_to_first_token_s: number | null;
  tokens_per_s: number;
  total_s: number;
  queue_wait_s: number;
  error: string | null;
}

export interface CodeTaskParams {
  textDocument: { uri: string };
  range: Range;
  note?: string;
  partialResultToken?: string | number;
}

export interface Fix {
  code: string;
  diff: string;
  parses: boolean;
  problems: string[];
  /** An LSP WorkspaceEdit, or null when `problems` is not empty. */
  edit: unknown;
}

/** How a feedback or fix answer was checked (null when starchat.verify.enabled is off). */
export interface Verification {
  verdict: string;
  verified: boolean;
  /** The first answer, which streamed before the checked one replaced it. */
  draft: string;
  evidence: { code: string; source: string }[];
  candidates: number;
  chosen: number | null;
  seconds: number;
  tokensOut: number;
}

export interface CodeTaskResult {
  text: string;
  complete: boolean;
  lines: number[];
  range: Range;
  fix: Fix | null;
  notes: string[];
  usage: Usage;
  verification?: Verification | null;
}

export interface ChatTurn {
  role: 'user' | 'assistant' | 'system';
  content: string;
}

export interface ChatParams {
  messages: ChatTurn[];
  textDocument?: { uri: string };
  range?: Range;
  partialResultToken?: string | number;
}

export interface ChatResult {
  text: string;
  usage: Usage;
}

export type ServerState = 'unconfigured' | 'loading' | 'ready' | 'failed';

export interface StatusResult {
  model: string;
  backend: string;
  state: ServerState;
  generations: number;
  syntax?: { full_parses: number; incremental_parses: number };
  completion?: { cache_hits: number; superseded: number };
}

/** The value of one `$/progress` partial result: `{"text": CHUNK}`. */
export function partialText(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) {
    return undefined;
  }
  const text = (value as { text?: unknown }).text;
  return typeof text === 'string' ? text : undefined;
}

/** A short name for a model setting: a folder or file path shows as its last part. */
export function modelLabel(model: string): string {
  const parts = model.split(/[\\/]/).filter((part) => part !== '');
  return parts.length > 1 ? parts[parts.length - 1] : model;
}
