// Pure: a libvirt domain XML document -> the facts mdserver records about the domain.

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { MdsError } from '../errors.js';
import { canonicalUuid, isMac } from '../ids.js';

export interface DomainInfo {
  name: string;
  uuid: string;
  /** Lower-case MAC of the interface on the metadata network. */
  mac: string;
  /** `mdserver:`-namespaced `<metadata>` children, prefix removed. */
  metadata: Record<string, string>;
  /** `<os><type arch=...>`, e.g. x86_64; null when the XML does not say. */
  arch: string | null;
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
  // Entities are never expanded: a DOCTYPE is refused before parsing (see below), and the parser is
  // told not to process any either, so no billion-laughs and no external fetches.
  processEntities: false,
  htmlEntities: false,
  isArray: (_name, jpath) => jpath === 'domain.devices.interface',
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
  if (name.length > 255 || /[\u0000-\u001f\u007f/]/.test(name)) {
    throw bad('the domain <name> contains control characters or "/", or is too long');
  }
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
      if (t !== null) metadata[key.slice('mdserver:'.length)] = t;
    }
  }

  const devices = domain['devices'];
  const interfaces = isObj(devices) && Array.isArray(devices['interface']) ? (devices['interface'] as unknown[]) : [];
  let mac: string | null = null;
  for (const itf of interfaces) {
    if (!isObj(itf) || !isObj(itf['source'])) continue;
    const src = itf['source'];
    if (src['@network'] !== match.network && !(match.bridge && src['@bridge'] === match.bridge)) continue;
    const m = isObj(itf['mac']) ? itf['mac']['@address'] : undefined;
    if (typeof m !== 'string') throw bad(`the interface on network "${match.network}" has no <mac address>`);
    const lower = m.trim().toLowerCase();
    if (!isMac(lower)) throw bad(`the interface on network "${match.network}" has an invalid MAC "${m.slice(0, 40)}"`);
    mac = lower;
    break;
  }
  if (!mac) {
    throw new MdsError(
      'NO_MDS_INTERFACE',
      `domain ${name} has no interface on network "${match.network}" (or bridge "${match.bridge}")`,
    );
  }
  let arch: string | null = null;
  const os = domain['os'];
  if (isObj(os) && isObj(os['type']) && typeof os['type']['@arch'] === 'string') arch = os['type']['@arch'];
  return { name, uuid, mac, metadata, arch };
}
