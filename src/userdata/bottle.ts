// Pure: md_server's Bottle SimpleTemplate placeholders, carried over to eta.
//
// Existing templates use `{{expr}}` (HTML-escaped, as Bottle does) and `{{!expr}}` (raw), where
// expr is a Python expression. Each placeholder is parsed here into a small expression tree that
// is evaluated with Python's semantics for the subset templates use (names, subscripts, string
// methods, `or`/`and`/`not`, `+`, `==`, literals, `yaml_quote(...)`), and replaced by an eta output tag that calls
// the evaluator. Nothing from the template is ever turned into JavaScript source. Bottle's `%`
// code lines run arbitrary Python and cannot be carried over: they are refused, naming the line.

import { MdsError } from '../errors.js';
import { evaluate, htmlEscape, isTemplateFunction, pyStr, Verbatim, type Expr } from './pyeval.js';

export { evaluate, htmlEscape, pyStr, type Expr } from './pyeval.js';

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
          e = { t: 'call', obj: e, name: n.v, args: this.args() };
        } else {
          e = { t: 'attr', obj: e, name: n.v };
        }
      } else {
        return e;
      }
    }
  }
  /** The arguments of a call, from its `(` to its `)`. */
  private args(): Expr[] {
    this.expect('(');
    const args: Expr[] = [];
    while (!this.isOp(')')) {
      args.push(this.or());
      if (!this.isOp(')')) this.expect(',');
    }
    this.i++;
    return args;
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
      // A bare call is one of mdserver's template functions (see pyeval.ts), never a name from the data.
      if (this.isOp('(')) {
        if (!isTemplateFunction(t.v)) throw new Error(`${t.v}() is not a function templates may call (only yaml_quote)`);
        return { t: 'fn', name: t.v, args: this.args() };
      }
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

/**
 * The value a placeholder prints: Python's str(), HTML-escaped unless it was `{{!...}}`. What a
 * template function made for its output format (yaml_quote's quoted scalar) is printed as it is:
 * HTML escapes would change the value it quotes.
 */
export function renderPlaceholder(p: Placeholder, data: Record<string, unknown>): string {
  const v = evaluate(p.expr, data);
  if (v instanceof Verbatim) return v.text;
  const s = pyStr(v);
  return p.raw ? s : htmlEscape(s);
}
