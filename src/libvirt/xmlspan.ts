// Pure: where each element of an XML document starts and ends in its text, so that a caller can
// change a few elements by splicing the text and leave every other byte (comments, attribute
// quoting, indentation, namespaces) exactly as it was. Not a general parser: no DTDs, no
// entity declarations (libvirt writes neither, and they are refused rather than guessed at).

import { MdsError } from '../errors.js';
import { decodeXmlText } from './entities.js';

export interface XmlElement {
  readonly name: string;
  /** Attribute values with the predefined and numeric entities decoded. */
  readonly attrs: ReadonlyMap<string, string>;
  /** Offset of `<` of the start tag. */
  readonly start: number;
  /** Offset just past `>` of the start tag. */
  readonly openEnd: number;
  /** Offset of `</` of the end tag (equal to openEnd for `<x/>`). */
  readonly closeStart: number;
  /** Offset just past the element. */
  readonly end: number;
  readonly selfClosing: boolean;
  readonly children: readonly XmlElement[];
}

interface Building {
  name: string;
  attrs: Map<string, string>;
  start: number;
  openEnd: number;
  children: XmlElement[];
}

const NAME = /[A-Za-z_:][-A-Za-z0-9_.:]*/y;
const ATTR = /\s+([A-Za-z_:][-A-Za-z0-9_.:]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/y;

function bad(message: string, text: string, at: number): MdsError {
  const line = text.slice(0, at).split('\n').length;
  return new MdsError('BAD_DOMAIN_XML', `malformed XML at line ${line}: ${message}`);
}

export function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Scans `text` and returns its root element; throws BAD_DOMAIN_XML saying where it broke. */
export function scanXml(text: string): XmlElement {
  const stack: Building[] = [];
  let root: XmlElement | null = null;
  let i = 0;
  const skipPast = (token: string, what: string): void => {
    const j = text.indexOf(token, i);
    if (j < 0) throw bad(`unterminated ${what}`, text, i);
    i = j + token.length;
  };
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt < 0) {
      i = text.length;
      break;
    }
    i = lt;
    if (text.startsWith('<!--', i)) skipPast('-->', 'comment');
    else if (text.startsWith('<![CDATA[', i)) {
      if (stack.length === 0) throw bad('CDATA outside the root element', text, i);
      skipPast(']]>', 'CDATA section');
    } else if (text.startsWith('<?', i)) skipPast('?>', 'processing instruction');
    else if (text.startsWith('<!', i)) throw bad('DOCTYPE and entity declarations are not accepted', text, i);
    else if (text.startsWith('</', i)) {
      NAME.lastIndex = i + 2;
      const m = NAME.exec(text);
      if (!m) throw bad('bad end tag', text, i);
      const close = i;
      i = NAME.lastIndex;
      while (/\s/.test(text[i] ?? '')) i++;
      if (text[i] !== '>') throw bad(`bad end tag </${m[0]}`, text, close);
      i++;
      const open = stack.pop();
      if (!open || open.name !== m[0]) throw bad(`</${m[0]}> does not close <${open?.name ?? ''}>`, text, close);
      const el: XmlElement = { ...open, closeStart: close, end: i, selfClosing: false };
      if (stack.length > 0) stack[stack.length - 1]?.children.push(el);
      else root = el;
    } else {
      if (root !== null && stack.length === 0) throw bad('content after the root element', text, i);
      const start = i;
      NAME.lastIndex = i + 1;
      const m = NAME.exec(text);
      if (!m) throw bad('bad start tag', text, i);
      i = NAME.lastIndex;
      const attrs = new Map<string, string>();
      for (;;) {
        ATTR.lastIndex = i;
        const a = ATTR.exec(text);
        if (!a) break;
        if (attrs.has(a[1] as string)) throw bad(`attribute ${a[1]} repeated`, text, i);
        attrs.set(a[1] as string, decodeXmlText(a[3] ?? a[4] ?? ''));
        i = ATTR.lastIndex;
      }
      while (/\s/.test(text[i] ?? '')) i++;
      const selfClosing = text.startsWith('/>', i);
      if (!selfClosing && text[i] !== '>') throw bad(`bad start tag <${m[0]}`, text, start);
      i += selfClosing ? 2 : 1;
      const building: Building = { name: m[0], attrs, start, openEnd: i, children: [] };
      if (selfClosing) {
        const el: XmlElement = { ...building, closeStart: i, end: i, selfClosing: true };
        if (stack.length > 0) stack[stack.length - 1]?.children.push(el);
        else root = el;
      } else {
        stack.push(building);
      }
    }
  }
  if (stack.length > 0) throw bad(`<${stack[stack.length - 1]?.name ?? ''}> is never closed`, text, text.length);
  if (!root) throw bad('no root element', text, 0);
  return root;
}

/** The element's text content (entities decoded), or null when it has child elements. */
export function textOf(text: string, el: XmlElement): string | null {
  if (el.children.length > 0) return null;
  const inner = text.slice(el.openEnd, el.closeStart);
  return decodeXmlText(inner.replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, (_m, c: string) => escapeText(c)).replace(/<!--[\s\S]*?-->/g, ''));
}

export function child(el: XmlElement, name: string, pred: (c: XmlElement) => boolean = () => true): XmlElement | undefined {
  return el.children.find((c) => c.name === name && pred(c));
}
