// Pure: the evaluator for md_server's Bottle placeholders: Python's semantics for the subset of
// expressions templates use (names, subscripts, string and dict methods, `or`/`and`/`not`, `+`,
// `==`, literals, and the functions of mdserver's own below). It reads the template data and calls
// nothing that the data or the template could supply.

import { yamlQuote } from '../metadata/yaml.js';

export type Expr =
  | { t: 'lit'; v: unknown }
  | { t: 'name'; name: string }
  | { t: 'index'; obj: Expr; key: Expr }
  | { t: 'attr'; obj: Expr; name: string }
  | { t: 'call'; obj: Expr; name: string; args: Expr[] }
  | { t: 'fn'; name: string; args: Expr[] }
  | { t: 'or' | 'and' | '+' | '==' | '!='; a: Expr; b: Expr }
  | { t: 'not'; a: Expr };

/** Text a template function made for the output as it is: printed without HTML escaping. */
export class Verbatim {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
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
  if (v instanceof Verbatim) return v.text;
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

/**
 * The functions a placeholder may call by name; nothing else is callable, whatever the template
 * data holds. yaml_quote writes a value as a YAML double-quoted scalar: one line, read back as
 * exactly that value (see metadata/yaml.ts).
 */
const FUNCTIONS: Readonly<Record<string, (args: unknown[]) => unknown>> = {
  yaml_quote(args) {
    if (args.length !== 1) throw new Error(`yaml_quote() takes 1 argument (${args.length} given)`);
    return new Verbatim(yamlQuote(pyStr(args[0])));
  },
};

export function isTemplateFunction(name: string): boolean {
  return own(FUNCTIONS, name);
}

function callFunction(name: string, args: unknown[]): unknown {
  const fn = own(FUNCTIONS, name) ? FUNCTIONS[name] : undefined;
  if (!fn) throw new Error(`'${name}' is not a function that templates may call`);
  return fn(args);
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
    case 'fn':
      return callFunction(e.name, e.args.map((a) => evaluate(a, data)));
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
