// Pure: md_server's Bottle SimpleTemplate placeholders, carried over to eta.
//
// Existing templates use `{{expr}}` (HTML-escaped, as Bottle does) and `{{!expr}}` (raw), where
// expr is a Python expression. Each placeholder is parsed here into a small expression tree that
// is evaluated with Python's semantics for the subset templates use (names, subscripts, string
// methods, `or`/`and`/`not`, `+`, `==`, literals), and replaced by an eta output tag that calls
// the evaluator. Nothing from the template is ever turned into JavaScript source. Bottle's `%`
// code lines run arbitrary Python and cannot be carried over: they are refused, naming the line.

import { MdsError } from '../errors.js';

type Expr =
  | { t: 'lit'; v: unknown }
  | { t: 'name'; name: string }
  | { t: 'index'; obj: Expr; key: Expr }
  | { t: 'attr'; obj: Expr; name: string }
  | { t: 'call'; obj: Expr; name: string; args: Expr[] }
  | { t: 'or' | 'and' | '+' | '==' | '!='; a: Expr; b: Expr }
  | { t: 'not'; a: Expr };

type Tok = { k: 'name' | 'str' | 'num' | 'op'; v: string };

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      toks.push({ k: 'name', v: m[0] });
    } else if ((m = /^\d+/.exec(rest))) {
      toks.push({ k: 'num', v: m[0] });
    } else if ((m = /^(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")/.exec(rest))) {
      const body = m[0].slice(1, -1).replace(/\\(.)/g, (_s, ch: string) => ({ n: '\n', t: '\t', r: '\r' })[ch] ?? ch);
      toks.push({ k: 'str', v: body });
    } else if ((m = /^(==|!=|[[\]().,+])/.exec(rest))) {
      toks.push({ k: 'op', v: m[0] });
    } else {
      throw new Error(`unexpected "${c}"`);
    }
    i += m[0].length;
  }
  return toks;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok | undefined {
    return this.toks[this.i];
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t !== undefined && t.k === 'op' && t.v === v;
  }
  private isWord(v: string): boolean {
    const t = this.peek();
    return t !== undefined && t.k === 'name' && t.v === v;
  }
  private expect(v: string): void {
    if (!this.isOp(v)) throw new Error(`expected "${v}"`);
    this.i++;
  }

  parse(): Expr {
    const e = this.or();
    if (this.i < this.toks.length) throw new Error(`unexpected "${this.peek()?.v ?? ''}"`);
    return e;
  }
  private or(): Expr {
    let a = this.and();
    while (this.isWord('or')) {
      this.i++;
      a = { t: 'or', a, b: this.and() };
    }
    return a;
  }
  private and(): Expr {
    let a = this.not();
    while (this.isWord('and')) {
      this.i++;
      a = { t: 'and', a, b: this.not() };
    }
    return a;
  }
  private not(): Expr {
    if (this.isWord('not')) {
      this.i++;
      return { t: 'not', a: this.not() };
    }
    const a = this.add();
    for (const op of ['==', '!='] as const) {
      if (this.isOp(op)) {
        this.i++;
        return { t: op, a, b: this.add() };
      }
    }
    return a;
  }
  private add(): Expr {
    let a = this.postfix();
    while (this.isOp('+')) {
      this.i++;
      a = { t: '+', a, b: this.postfix() };
    }
    return a;
  }
  private postfix(): Expr {
    let e = this.primary();
    for (;;) {
      if (this.isOp('[')) {
        this.i++;
        const key = this.or();
        this.expect(']');
        e = { t: 'index', obj: e, key };
      } else if (this.isOp('.')) {
        this.i++;
        const n = this.peek();
        if (!n || n.k !== 'name') throw new Error('expected a name after "."');
        this.i++;
        if (this.isOp('(')) {
          this.i++;
          const args: Expr[] = [];
          while (!this.isOp(')')) {
            args.push(this.or());
            if (!this.isOp(')')) this.expect(',');
          }
          this.i++;
          e = { t: 'call', obj: e, name: n.v, args };
        } else {
          e = { t: 'attr', obj: e, name: n.v };
        }
      } else {
        return e;
      }
    }
  }
  private primary(): Expr {
    const t = this.peek();
    if (!t) throw new Error('unexpected end of expression');
    this.i++;
    if (t.k === 'str') return { t: 'lit', v: t.v };
    if (t.k === 'num') return { t: 'lit', v: Number(t.v) };
    if (t.k === 'name') {
      if (t.v === 'None') return { t: 'lit', v: null };
      if (t.v === 'True') return { t: 'lit', v: true };
      if (t.v === 'False') return { t: 'lit', v: false };
      if (['or', 'and', 'not'].includes(t.v)) throw new Error(`unexpected "${t.v}"`);
      return { t: 'name', name: t.v };
    }
    if (t.v === '(') {
      const e = this.or();
      this.expect(')');
      return e;
    }
    throw new Error(`unexpected "${t.v}"`);
  }
}

export function parseExpression(src: string): Expr {
  return new Parser(tokenize(src)).parse();
}

function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  }
  return typeof v === 'number' || typeof v === 'bigint' ? String(v) : typeof v;
}

/** Python's str() of a value, with Bottle's rule that None prints as nothing. */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  return pyRepr(v);
}

/** Bottle's html_escape, character for character. */
export function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#039;');
}

function own(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function callMethod(obj: unknown, name: string, args: unknown[]): unknown {
  if (typeof obj === 'string') {
    const s = obj;
    const str = (i: number): string => {
      const a = args[i];
      if (typeof a !== 'string') throw new Error(`str.${name}() expects a string argument`);
      return a;
    };
    switch (name) {
      case 'upper': return s.toUpperCase();
      case 'lower': return s.toLowerCase();
      case 'strip': return s.trim();
      case 'lstrip': return s.trimStart();
      case 'rstrip': return s.trimEnd();
      case 'title': return s.replace(/[A-Za-z]+/g, (w) => w[0]!.toUpperCase() + w.slice(1).toLowerCase());
      case 'capitalize': return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
      case 'replace': return s.split(str(0)).join(str(1));
      case 'startswith': return s.startsWith(str(0));
      case 'endswith': return s.endsWith(str(0));
      case 'split': return args.length === 0 ? s.trim().split(/\s+/).filter(Boolean) : s.split(str(0));
      case 'join': {
        const list = args[0];
        if (!Array.isArray(list)) throw new Error('str.join() expects a list');
        return list.map((x) => {
          if (typeof x !== 'string') throw new Error('str.join() expects a list of strings');
          return x;
        }).join(s);
      }
    }
  } else if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    const o = obj as Record<string, unknown>;
    switch (name) {
      case 'get': {
        const k = args[0];
        return typeof k === 'string' && own(o, k) ? o[k] : (args[1] ?? null);
      }
      case 'keys': return Object.keys(o);
      case 'values': return Object.values(o);
    }
  }
  throw new Error(`'${name}' is not a method that templates may call here`);
}

export function evaluate(e: Expr, data: Record<string, unknown>): unknown {
  switch (e.t) {
    case 'lit':
      return e.v;
    case 'name':
      if (!own(data, e.name)) throw new Error(`name '${e.name}' is not defined`);
      return data[e.name];
    case 'index': {
      const obj = evaluate(e.obj, data);
      const key = evaluate(e.key, data);
      if (Array.isArray(obj) || typeof obj === 'string') {
        if (typeof key !== 'number') throw new Error('indices must be integers');
        const i = key < 0 ? obj.length + key : key;
        if (i < 0 || i >= obj.length) throw new Error('index out of range');
        return obj[i];
      }
      if (obj && typeof obj === 'object' && typeof key === 'string') {
        if (!own(obj, key)) throw new Error(`KeyError: ${pyRepr(key)}`);
        return (obj as Record<string, unknown>)[key];
      }
      throw new Error('value is not subscriptable');
    }
    case 'attr':
      throw new Error(`attribute '${e.name}' is not available`);
    case 'call':
      return callMethod(evaluate(e.obj, data), e.name, e.args.map((a) => evaluate(a, data)));
    case 'or': {
      const a = evaluate(e.a, data);
      return truthy(a) ? a : evaluate(e.b, data);
    }
    case 'and': {
      const a = evaluate(e.a, data);
      return truthy(a) ? evaluate(e.b, data) : a;
    }
    case 'not':
      return !truthy(evaluate(e.a, data));
    case '==':
    case '!=': {
      const eq = JSON.stringify(evaluate(e.a, data)) === JSON.stringify(evaluate(e.b, data));
      return e.t === '==' ? eq : !eq;
    }
    case '+': {
      const a = evaluate(e.a, data);
      const b = evaluate(e.b, data);
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      if (typeof a === 'number' && typeof b === 'number') return a + b;
      if (Array.isArray(a) && Array.isArray(b)) return [...(a as unknown[]), ...(b as unknown[])];
      throw new Error('unsupported operand types for +');
    }
  }
}

export interface Placeholder {
  expr: Expr;
  raw: boolean;
}

export interface Converted {
  /** eta source in which each placeholder became `<%~ it.__bottle(N) %>`. */
  source: string;
  placeholders: Placeholder[];
}

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/**
 * Converts a template's Bottle placeholders to eta tags. Throws TEMPLATE_UNSUPPORTED naming the
 * file and line for Bottle code lines (`% ...`) and for placeholders that are not in the
 * supported expression subset.
 */
export function convertBottle(text: string, file: string): Converted {
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    // Bottle treats a line whose first non-blank character is % as Python code (%% is a literal %).
    if (/^\s*%(?!%|>)/.test(line)) {
      throw new MdsError(
        'TEMPLATE_UNSUPPORTED',
        `${file}:${i + 1}: Bottle "%" code lines run Python and are not supported; rewrite the logic with eta's <% %> tags`,
      );
    }
  }
  const placeholders: Placeholder[] = [];
  const source = text.replace(/\{\{(!?)([\s\S]*?)\}\}/g, (_m, bang: string, body: string, offset: number) => {
    let expr: Expr;
    try {
      expr = parseExpression(body);
    } catch (e) {
      throw new MdsError(
        'TEMPLATE_UNSUPPORTED',
        `${file}:${lineOf(text, offset)}: cannot use placeholder {{${bang}${body.slice(0, 60)}}}: ${(e as Error).message}`,
      );
    }
    placeholders.push({ expr, raw: bang === '!' });
    return `<%~ it.__bottle(${placeholders.length - 1}) %>`;
  });
  return { source, placeholders };
}

/** The value a placeholder prints: Python's str(), HTML-escaped unless it was `{{!...}}`. */
export function renderPlaceholder(p: Placeholder, data: Record<string, unknown>): string {
  const s = pyStr(evaluate(p.expr, data));
  return p.raw ? s : htmlEscape(s);
}
