// Pure: XML's five predefined entities and its character references, decoded strictly. A domain
// document may carry nothing else after `&` (no DOCTYPE is accepted, so no other entity can be
// declared), and a reference to a character XML does not allow, or one written with more digits
// than any character needs, is an error rather than something to guess at.

import { MdsError } from '../errors.js';

const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * One reference at the current position. Digits are bounded: eight decimal or six hex digits hold
 * every Unicode code point (with a leading zero to spare), and a longer run is refused before it
 * is turned into a number.
 */
const REFERENCE = /&(?:([a-z]+)|#([0-9]{1,8})|#x([0-9a-fA-F]{1,6}));/y;

/** XML 1.0's Char production: tab, newline, carriage return and the rest of Unicode less surrogates, U+FFFE and U+FFFF. */
function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff);
}

function bad(message: string): MdsError {
  return new MdsError('BAD_DOMAIN_XML', `malformed XML: ${message}`);
}

/** What `&...` at `at` looks like, shortened and quoted for an error message. */
function shown(s: string, at: number): string {
  const semi = s.indexOf(';', at);
  const end = semi < 0 || semi - at > 16 ? at + 16 : semi + 1;
  return JSON.stringify(s.slice(at, end));
}

function decodeOne(s: string, at: number): { text: string; end: number } {
  REFERENCE.lastIndex = at;
  const m = REFERENCE.exec(s);
  if (!m) {
    if (/^&#(x[0-9a-fA-F]+|[0-9]+);/.test(s.slice(at, at + 64))) throw bad(`${shown(s, at)} has more digits than any character needs`);
    throw bad(`${shown(s, at)} is not an XML entity or character reference`);
  }
  const [whole, name, dec, hex] = m;
  if (name !== undefined) {
    const text = PREDEFINED[name];
    if (text === undefined) throw bad(`unknown entity &${name}; (only &amp; &lt; &gt; &quot; &apos; are defined)`);
    return { text, end: at + whole.length };
  }
  const cp = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex as string, 16);
  if (!isXmlChar(cp)) throw bad(`${whole} refers to a character XML does not allow`);
  return { text: String.fromCodePoint(cp), end: at + whole.length };
}

/** `s` with every reference decoded; throws BAD_DOMAIN_XML on anything else after `&`. */
export function decodeXmlText(s: string): string {
  let amp = s.indexOf('&');
  if (amp < 0) return s;
  let out = '';
  let pos = 0;
  while (amp >= 0) {
    const { text, end } = decodeOne(s, amp);
    out += s.slice(pos, amp) + text;
    pos = end;
    amp = s.indexOf('&', pos);
  }
  return out + s.slice(pos);
}

/**
 * fast-xml-parser's hook for decoding text and attribute values, with decodeXmlText doing the
 * work. Entities from a DOCTYPE never reach it: documents with one are refused before parsing.
 */
export const strictEntityDecoder = {
  decode: decodeXmlText,
  reset: (): void => {},
  setXmlVersion: (_version: number): void => {},
  setExternalEntities: (_entities: Record<string, string>): void => {},
  addInputEntities(entities: Record<string, string>): void {
    if (Object.keys(entities).length > 0) throw bad('DOCTYPE and entity declarations are not accepted');
  },
};
