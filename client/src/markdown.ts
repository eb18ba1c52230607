/**
 * Splits a model's markdown answer into prose and fenced code blocks, also while it streams
 * (a fence not closed yet is a code block with `closed: false`). Pure: the chat view renders
 * from it and the extension takes the code of a block from it.
 */

export type Segment =
  | { kind: 'prose'; text: string }
  | { kind: 'code'; lang: string; code: string; closed: boolean };

const OPENING = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;

function closes(line: string, fence: string): boolean {
  const match = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
  return match !== null && match[1][0] === fence[0] && match[1].length >= fence.length;
}

export function splitMarkdown(text: string): Segment[] {
  const segments: Segment[] = [];
  const lines = text.split('\n');
  let prose: string[] = [];
  const flushProse = (): void => {
    const joined = prose.join('\n');
    if (joined.trim() !== '') {
      segments.push({ kind: 'prose', text: joined });
    }
    prose = [];
  };
  let i = 0;
  while (i < lines.length) {
    const opening = OPENING.exec(lines[i]);
    if (opening === null) {
      prose.push(lines[i]);
      i += 1;
      continue;
    }
    flushProse();
    const fence = opening[1];
    const code: string[] = [];
    let closed = false;
    i += 1;
    while (i < lines.length) {
      if (closes(lines[i], fence)) {
        closed = true;
        i += 1;
        break;
      }
      code.push(lines[i]);
      i += 1;
    }
    segments.push({ kind: 'code', lang: opening[2].toLowerCase(), code: code.join('\n'), closed });
  }
  flushProse();
  return segments;
}

/** The code blocks of an answer, in order (what the chat view numbers its buttons by). */
export function codeBlocks(text: string): { lang: string; code: string; closed: boolean }[] {
  return splitMarkdown(text).flatMap((segment) => (segment.kind === 'code' ? [segment] : []));
}

/** Code to put into a document: the block's text ending with exactly one newline. */
export function codeForInsertion(code: string, wholeLines: boolean): string {
  const trimmed = code.replace(/\n+$/, '');
  return wholeLines ? `${trimmed}\n` : trimmed;
}
