/** What to tell the user about a failed request. Pure. */

export const RequestCancelled = -32800;
export const ContentModified = -32801;
export const RequestFailed = -32803;

export type Outcome =
  | { kind: 'cancelled' }
  | { kind: 'failed'; message: string };

/** A JSON-RPC error (vscode-languageclient's ResponseError, or anything thrown) as an outcome. */
export function outcomeOf(error: unknown): Outcome {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === RequestCancelled || (error instanceof Error && error.name === 'Canceled')) {
    return { kind: 'cancelled' };
  }
  if (code === ContentModified) {
    return { kind: 'failed', message: 'the document changed while the model worked: ask again' };
  }
  return { kind: 'failed', message };
}

/** A short note on why an answer ended, for answers that did not finish on their own. */
export function stopNote(stopReason: string | undefined, tokensOut?: number): string | undefined {
  switch (stopReason) {
    case 'length':
      return `cut at ${tokensOut ?? 'the'} tokens: raise starchat.generation.maxNewTokens for longer answers`;
    case 'time':
      return 'cut by the time limit';
    case 'cancelled':
      return 'stopped';
    case 'error':
      return 'the model failed: see the log';
    default:
      return undefined;
  }
}
