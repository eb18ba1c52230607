/** Titles and labels for the code tasks, shared by commands and the chat view. Pure. */

import type { CodeTask } from './protocol';

export const TASK_TITLES: Record<CodeTask, string> = {
  feedback: 'Feedback on',
  fix: 'Fix for',
  explain: 'Explanation of',
  write: 'Code for the instruction in',
};

/** `app.py:12-30` (1-based, inclusive; a selection ending at column 0 leaves that line out). */
export function linesLabel(
  fileName: string,
  start: { line: number; character: number },
  end: { line: number; character: number },
): string {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  const empty = start.line === end.line && start.character === end.character;
  if (empty) {
    return `${base}:${start.line + 1} (around the cursor)`;
  }
  const last = end.character === 0 && end.line > start.line ? end.line - 1 : end.line;
  return last === start.line ? `${base}:${start.line + 1}` : `${base}:${start.line + 1}-${last + 1}`;
}
