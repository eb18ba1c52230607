/**
 * Splits highlighted code (highlight.js HTML: text, entities and `<span class=...>` tags) into
 * one self-contained piece of HTML per source line, its indentation taken off and given as a
 * width, so that the chat view can indent each line with padding and wrap a long one under its
 * own indentation instead of at the left edge (or after the indentation's spaces). Pure.
 */

export interface CodeLine {
  /** The line without its leading whitespace, with the spans open at its start reopened. */
  html: string;
  /** Leading whitespace in columns (a tab counts 4). */
  indent: number;
}

const TOKEN = /<span[^>]*>|<\/span>|\n|[^<\n]+|</g;

export function codeLines(html: string): CodeLine[] {
  const lines: CodeLine[] = [];
  const open: string[] = [];
  let current = '';
  let indent = 0;
  let leading = true;
  const finish = (): void => {
    lines.push({ html: current + '</span>'.repeat(open.length), indent });
    current = open.join('');
    indent = 0;
    leading = true;
  };
  for (const [token] of html.matchAll(TOKEN)) {
    if (token === '\n') {
      finish();
      continue;
    }
    let text = token;
    if (token.startsWith('<span')) {
      open.push(token);
    } else if (token === '</span>') {
      open.pop();
    } else if (leading) {
      const blank = /^[ \t]*/.exec(token)?.[0] ?? '';
      indent += blank.length + 3 * (blank.split('\t').length - 1);
      text = token.slice(blank.length);
      leading = text === '';
    }
    current += text;
  }
  finish();
  return lines;
}
