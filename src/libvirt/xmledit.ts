// Pure: edits to an XML document as splices of its text, placed and indented like their
// neighbours, so that every byte outside the elements changed stays as it was (see xmlspan.ts).

import { MdsError } from '../errors.js';
import type { XmlElement } from './xmlspan.js';

export interface Edit {
  start: number;
  end: number;
  text: string;
}

/** The whitespace before `at` on its line, or null when something else precedes it there. */
export function lineIndent(xml: string, at: number): string | null {
  const nl = xml.lastIndexOf('\n', at - 1);
  const before = xml.slice(nl + 1, at);
  return /^[ \t]*$/.test(before) ? before : null;
}

/** The indentation of `el`'s children: that of its first child, else its own plus one step. */
export function childIndent(xml: string, el: XmlElement, step: string): string {
  const first = el.children[0];
  const own = lineIndent(xml, el.start) ?? '';
  if (first) return lineIndent(xml, first.start) ?? own + step;
  return own + step;
}

/** An edit that inserts `lines` (already indented) as the last children of `el`. */
export function appendChildren(xml: string, el: XmlElement, lines: string[]): Edit {
  const ownIndent = lineIndent(xml, el.start) ?? '';
  if (el.selfClosing) {
    // <x/> becomes <x> ... </x> with the same start tag.
    const open = xml.slice(el.start, el.end).replace(/\s*\/>$/, '>');
    return { start: el.start, end: el.end, text: `${open}\n${lines.join('\n')}\n${ownIndent}</${el.name}>` };
  }
  const closeIndent = lineIndent(xml, el.closeStart);
  if (closeIndent !== null) {
    // The end tag is on its own line: new lines go just above it.
    const lineStart = el.closeStart - closeIndent.length;
    return { start: lineStart, end: lineStart, text: lines.map((l) => l + '\n').join('') };
  }
  // Everything on one line: keep it that way.
  return { start: el.closeStart, end: el.closeStart, text: lines.map((l) => l.trim()).join('') };
}

/** An edit removing `el`, with its line when it stands alone on one. */
export function removeElement(xml: string, el: XmlElement): Edit {
  const indent = lineIndent(xml, el.start);
  const nl = xml.indexOf('\n', el.end);
  const rest = nl < 0 ? xml.slice(el.end) : xml.slice(el.end, nl);
  if (indent !== null && /^[ \t]*$/.test(rest) && nl >= 0) {
    return { start: el.start - indent.length, end: nl + 1, text: '' };
  }
  return { start: el.start, end: el.end, text: '' };
}

/** The indentation step the document uses (that of `<domain>`'s first child), else two spaces. */
export function indentStep(xml: string, root: XmlElement): string {
  const first = root.children[0];
  const ind = first ? lineIndent(xml, first.start) : null;
  return ind && ind.length > 0 ? ind : '  ';
}

export function splice(xml: string, edits: Edit[]): string {
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  let out = '';
  let pos = 0;
  for (const e of sorted) {
    if (e.start < pos) throw new MdsError('INTERNAL', 'overlapping edits to the domain XML');
    out += xml.slice(pos, e.start) + e.text;
    pos = e.end;
  }
  return out + xml.slice(pos);
}
