// Settings that name a file whose content is the value. The file is read once, when the
// configuration is loaded, so that `--check-config` and a reload report a missing or bad file
// instead of every VM getting an error later.

import fs from 'node:fs';
import { optionalPath, type ParseContext, type Parser } from './parsers.js';

const MAX_BYTES = 1024 * 1024;

function readText(s: string, ctx: ParseContext): { file: string | null; text: string | null } {
  const file = optionalPath(s, ctx);
  if (file === null) return { file, text: null };
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_BYTES) throw new Error(`larger than ${MAX_BYTES} bytes`);
    return { file, text: new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file)) };
  } catch (e) {
    const why = e instanceof TypeError ? 'not UTF-8 text' : (e as Error).message;
    ctx.fail(`cannot read ${file}: ${why}`);
    return { file, text: null };
  }
}

/** A UTF-8 text file served as it is; empty when the setting is unset. */
export const fileText: Parser<string> = (s, ctx) => readText(s, ctx).text ?? '';

/** A JSON document file, re-serialised compactly; `{}` when the setting is unset. */
export const jsonFile: Parser<string> = (s, ctx) => {
  const { file, text } = readText(s, ctx);
  if (text === null) return '{}';
  try {
    return JSON.stringify(JSON.parse(text));
  } catch (e) {
    ctx.fail(`${file ?? ''} is not JSON: ${(e as Error).message}`);
    return '{}';
  }
};
