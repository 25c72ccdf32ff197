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

/** What RFC 6750 allows in a bearer token (b64token), so the file's content fits in a header. */
const BEARER = /^[A-Za-z0-9._~+/-]+=*$/;

/**
 * A bearer token kept in a file (`upload_token_file`): its one line, surrounding whitespace
 * removed; null when the setting is unset. A missing, unreadable or empty file, or one holding
 * anything but a token, is a problem; one that every user may read is worth a warning.
 */
export const tokenFile: Parser<string | null> = (s, ctx) => {
  const { file, text } = readText(s, ctx);
  if (file === null || text === null) return null;
  const token = text.trim();
  if (token === '') ctx.fail(`${file} is empty`);
  else if (!BEARER.test(token)) ctx.fail(`${file} must hold one token on one line: letters, digits and -._~+/ (then = padding)`);
  else if (token.length < 16) ctx.warn(`names a short token (${token.length} characters); take 32 random bytes, e.g. \`openssl rand -hex 32\``);
  if ((fs.statSync(file).mode & 0o004) !== 0) ctx.warn(`names ${file}, which every user can read: any of them could upload domains`);
  return token === '' || !BEARER.test(token) ? null : token;
};
