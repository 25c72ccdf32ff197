// Pure: a small YAML writer for the documents mdserver generates (NoCloud meta-data and
// network-config), and the quoting templates use. Only block mappings, block sequences and scalars
// are written. Every string is written double-quoted in JSON's escaping, which YAML reads the same
// way, so no value (a host name like `yes`, a key with `: ` or `#`, a leading `*`, a line
// separator) can change the document's shape.

export type YamlValue = string | number | boolean | null | readonly YamlValue[] | { readonly [key: string]: YamlValue };

/** Keys made only of these characters mean the same thing to every YAML reader when unquoted. */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** YAML 1.1 words that a reader would turn into a boolean or null even as a key. */
const RESERVED = /^(y|n|yes|no|on|off|true|false|null)$/i;

/**
 * Characters JSON leaves as they are but a YAML reader does not: DEL and the C1 controls (PyYAML
 * refuses the whole document over one), U+0085, U+2028 and U+2029 (line breaks to YAML 1.1, folded
 * into a space inside quotes), the byte-order mark and the two non-characters U+FFFE and U+FFFF.
 */
const NOT_YAML_PRINTABLE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;

/**
 * `s` as a YAML double-quoted scalar that every reader takes back as exactly `s`, on one line,
 * whatever it holds: JSON's escaping (which YAML shares), plus `\uXXXX` for what YAML would not
 * keep. Written where a template or a generated document puts a value into YAML.
 */
export function yamlQuote(s: string): string {
  return JSON.stringify(s).replace(NOT_YAML_PRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('YAML output cannot hold a non-finite number');
    return String(v);
  }
  return yamlQuote(v);
}

function key(k: string): string {
  return PLAIN_KEY.test(k) && !RESERVED.test(k) ? k : yamlQuote(k);
}

function isScalar(v: YamlValue): v is string | number | boolean | null {
  return v === null || typeof v !== 'object';
}

function lines(v: YamlValue, indent: string, out: string[]): void {
  if (Array.isArray(v)) {
    for (const item of v as readonly YamlValue[]) {
      if (isScalar(item)) out.push(`${indent}- ${scalar(item)}`);
      else if (isEmpty(item)) out.push(`${indent}- ${Array.isArray(item) ? '[]' : '{}'}`);
      else {
        // The first line of a nested collection goes after the dash, the rest line up with it.
        const inner: string[] = [];
        lines(item, `${indent}  `, inner);
        out.push(`${indent}- ${(inner[0] ?? '').trimStart()}`, ...inner.slice(1));
      }
    }
    return;
  }
  for (const [k, item] of Object.entries(v as Record<string, YamlValue>)) {
    if (isScalar(item)) out.push(`${indent}${key(k)}: ${scalar(item)}`);
    else if (isEmpty(item)) out.push(`${indent}${key(k)}: ${Array.isArray(item) ? '[]' : '{}'}`);
    else {
      out.push(`${indent}${key(k)}:`);
      lines(item, `${indent}  `, out);
    }
  }
}

function isEmpty(v: YamlValue): boolean {
  return Array.isArray(v) ? v.length === 0 : Object.keys(v as object).length === 0;
}

/** A YAML document for `v` (a mapping or a sequence at the top), ending in a newline. */
export function toYaml(v: YamlValue): string {
  if (isScalar(v)) return `${scalar(v)}\n`;
  if (isEmpty(v)) return Array.isArray(v) ? '[]\n' : '{}\n';
  const out: string[] = [];
  lines(v, '', out);
  return out.join('\n') + '\n';
}
