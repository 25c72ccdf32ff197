// The [store] section: where the instance records live. Absent `url`, the SQLite file of
// `[mdserver] db_file` as always; a PostgreSQL URL makes this host one of a cluster sharing it.
// Kept apart from settings.ts, which lists it, because its parsers are the store's alone.

import os from 'node:os';
import { fileText } from './fileParsers.js';
import { choice, matching, type Parser } from './parsers.js';

/** Which instances a host's dnsmasq files list: the whole cluster's, or those it registered. */
export type DhcpScope = 'cluster' | 'local';

/**
 * A postgresql:// (or postgres://) URL, or null when unset. A password in it is refused: the
 * main file is readable by the mdserver group and shown by --check-config, so the password
 * belongs in `password_file`.
 */
export const storeUrl: Parser<string | null> = (s, ctx) => {
  if (s === '') return null;
  // Not WHATWG's URL parser: libpq's unix-socket form (user@/db?host=/dir) has no host part.
  const m = /^postgres(?:ql)?:\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(s);
  if (!m) {
    ctx.fail('expected a postgresql:// URL, e.g. postgresql://mdserver@db.example.com/mdserver or postgresql://mdserver@/mdserver?host=/run/postgresql');
    return null;
  }
  if ((m[1] ?? '').includes(':') || /[?&]password=/.test(m[4] ?? '')) {
    ctx.fail('holds a password: put it in [store] password_file instead, which is never shown');
    return null;
  }
  return s;
};

/** The password in a file (its first line), or null when unset. */
export const passwordFile: Parser<string | null> = (s, ctx) => {
  if (s === '') return null;
  const text = fileText(s, ctx);
  const password = text.split('\n')[0]?.trim() ?? '';
  if (password === '' && text !== '') ctx.fail('the file\'s first line is empty');
  return password === '' ? null : password;
};

export const STORE_SETTINGS = {
  url: { key: 'url', default: '', parse: storeUrl, restart: 'mdserver' as const,
    doc: 'a postgresql:// URL of the store shared by several hosts; unset: the SQLite file in db_file' },
  password: { key: 'password_file', default: '', parse: passwordFile, restart: 'mdserver' as const, secret: true,
    doc: "a file holding the store's password (its first line)" },
  hostName: { key: 'host_name', default: () => os.hostname(), restart: 'mdserver' as const,
    parse: matching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/, 'a host name (letters, digits, ".", "_", "-")'),
    doc: "this host's name in the records it registers; default: the machine's host name" },
  dhcpScope: { key: 'dhcp_scope', default: 'cluster', parse: choice<DhcpScope>(['cluster', 'local']),
    doc: "the instances in this host's dnsmasq files: the whole cluster's, or only those registered here" },
};
