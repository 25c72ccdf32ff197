// Pure: a libvirt domain XML document -> the facts mdserver records about the domain.

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { isMdsError, MdsError } from '../errors.js';
import { canonicalUuid, isMac, NWFILTER_NAME } from '../ids.js';
import { strictEntityDecoder } from './entities.js';

export interface DomainInfo {
  name: string;
  uuid: string;
  /** Lower-case MAC of the interface on the metadata network. */
  mac: string;
  /** `mdserver:`-namespaced `<metadata>` children, prefix removed. */
  metadata: Record<string, string>;
  /** `<os><type arch=...>`, e.g. x86_64; null when the XML does not say. */
  arch: string | null;
  /**
   * The `<filterref filter=...>` of that interface: the libvirt network filter (clean-traffic,
   * which stops MAC, IP and ARP spoofing, or another) the host applies to it; null for none.
   */
  nwfilter: string | null;
}

export interface InterfaceMatch {
  /** `<source network=...>` to look for (dnsmasq.net_name). */
  network: string;
  /** `<source bridge=...>` that also counts (dnsmasq.interface). */
  bridge: string;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // Only XML's five predefined entities and character references are decoded, strictly (see
  // entities.ts); a DOCTYPE is refused before parsing (see below), so no entity can be declared:
  // no billion-laughs and no external fetches. CDATA sections are taken as written.
  processEntities: true,
  htmlEntities: false,
  entityDecoder: strictEntityDecoder,
  // The callbacks get the parser's path matcher instead of a path string built for every element
  // and attribute (a fifth of the parse's time); the one path that matters is spelled out only
  // for <interface> elements.
  jPath: false,
  isArray: (name, jpath) => name === 'interface' && String(jpath) === 'domain.devices.interface',
});

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (isObj(v) && typeof v['#text'] === 'string') return v['#text'];
  return null;
}

function bad(message: string): MdsError {
  return new MdsError('BAD_DOMAIN_XML', message);
}

/**
 * Control characters (C0, DEL, C1 with U+0085) and the line and paragraph separators U+2028 and
 * U+2029. YAML 1.1 readers (cloud-init's PyYAML) end a line at U+0085, U+2028 and U+2029 as at a
 * newline, so any of these in a value that a template prints could add lines to user-data. Names
 * and `mdserver:` metadata are set by tenants and reach templates, so they may hold none of them.
 */
const LINE_BREAKERS = /[\p{Cc}\p{Zl}\p{Zp}]/u;

function refuseLineBreakers(what: string, value: string): void {
  const m = LINE_BREAKERS.exec(value);
  if (!m) return;
  const cp = (m[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
  throw bad(`${what} contains U+${cp}: control characters and line or paragraph separators are not accepted, so that no value can add lines to user-data`);
}

/** Parses domain XML; throws MdsError BAD_DOMAIN_XML or NO_MDS_INTERFACE saying what is wrong. */
export function parseDomainXml(xml: string, match: InterfaceMatch): DomainInfo {
  if (xml.trim() === '') throw bad('empty body: expected a libvirt domain XML document');
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw bad('DOCTYPE and entity declarations are not accepted');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw bad(`malformed XML at line ${valid.err.line}: ${valid.err.msg}`);
  }
  let doc: Obj;
  try {
    doc = parser.parse(xml) as Obj;
  } catch (e) {
    if (isMdsError(e)) throw e;
    throw bad(`malformed XML: ${(e as Error).message}`);
  }
  const roots = Object.keys(doc).filter((k) => !k.startsWith('?'));
  const domain = doc['domain'];
  if (roots.length !== 1 || domain === undefined) {
    throw bad(`the document root is <${roots[0] ?? ''}>, not <domain>`);
  }
  // `<domain/>` or `<domain>text</domain>` parse to a string, not an element with children.
  if (!isObj(domain)) throw bad('the <domain> element is empty');
  const name = text(domain['name'])?.trim() ?? '';
  if (!name) throw bad('the domain has no <name>');
  if (name.length > 255) throw bad('the domain <name> is longer than 255 characters');
  if (name.includes('/')) throw bad('the domain <name> contains "/"');
  refuseLineBreakers('the domain <name>', name);
  const rawUuid = text(domain['uuid'])?.trim().toLowerCase() ?? '';
  if (!rawUuid) throw bad('the domain has no <uuid>');
  const uuid = canonicalUuid(rawUuid);
  if (!uuid) throw bad(`the domain <uuid> "${rawUuid.slice(0, 64)}" is not a UUID`);

  const metadata: Record<string, string> = {};
  const md = domain['metadata'];
  if (isObj(md)) {
    for (const [key, value] of Object.entries(md)) {
      if (!key.startsWith('mdserver:')) continue;
      const t = text(value);
      if (t === null) continue;
      refuseLineBreakers(`<${key}>`, key);
      refuseLineBreakers(`the value of <${key}>`, t);
      metadata[key.slice('mdserver:'.length)] = t;
    }
  }

  const devices = domain['devices'];
  const interfaces = isObj(devices) && Array.isArray(devices['interface']) ? (devices['interface'] as unknown[]) : [];
  const itf = mdsInterface(interfaces, match);
  if (!itf) {
    throw new MdsError(
      'NO_MDS_INTERFACE',
      `domain ${name} has no interface on network "${match.network}" (or bridge "${match.bridge}")`,
    );
  }
  let arch: string | null = null;
  const os = domain['os'];
  if (isObj(os) && isObj(os['type']) && typeof os['type']['@arch'] === 'string') arch = os['type']['@arch'];
  return { name, uuid, ...itf, metadata, arch };
}

/** The MAC and filter of the first interface on the metadata network, or null when there is none. */
function mdsInterface(interfaces: unknown[], match: InterfaceMatch): { mac: string; nwfilter: string | null } | null {
  for (const itf of interfaces) {
    if (!isObj(itf) || !isObj(itf['source'])) continue;
    const src = itf['source'];
    if (src['@network'] !== match.network && !(match.bridge && src['@bridge'] === match.bridge)) continue;
    const m = isObj(itf['mac']) ? itf['mac']['@address'] : undefined;
    if (typeof m !== 'string') throw bad(`the interface on network "${match.network}" has no <mac address>`);
    const mac = m.trim().toLowerCase();
    if (!isMac(mac)) throw bad(`the interface on network "${match.network}" has an invalid MAC "${m.slice(0, 40)}"`);
    return { mac, nwfilter: filterOf(itf, match.network) };
  }
  return null;
}

/** The interface's `<filterref filter=...>`; libvirt allows one per interface. */
function filterOf(itf: Obj, network: string): string | null {
  const ref = itf['filterref'];
  if (ref === undefined) return null;
  const filter = isObj(ref) ? ref['@filter'] : undefined;
  if (typeof filter !== 'string' || !NWFILTER_NAME.test(filter)) {
    throw bad(`the interface on network "${network}" has a <filterref> without a valid filter name (one, of letters, digits and _ . : -)`);
  }
  return filter;
}
