// Pure: adding libvirt's clean-traffic nwfilter to a domain's interface on the metadata network,
// as `<filterref filter='clean-traffic'/>`, by splicing the domain XML text so that every other
// byte stays as it was. With it, libvirt drops the VM's frames whose source MAC, IP or ARP data
// are not the interface's own, so no VM can pass for another (see metadata/isolation.ts).

import { MdsError } from '../errors.js';
import type { InterfaceMatch } from './domain.js';
import { appendChildren, childIndent, indentStep, splice } from './xmledit.js';
import { child, scanXml, type XmlElement } from './xmlspan.js';

export const CLEAN_TRAFFIC = 'clean-traffic';

function bad(message: string): MdsError {
  return new MdsError('BAD_DOMAIN_XML', message);
}

/** The first `<interface>` whose source is the metadata network (or its bridge), as uploads find it. */
function mdsInterface(root: XmlElement, match: InterfaceMatch): XmlElement | undefined {
  const devices = child(root, 'devices');
  return devices?.children.find((c) => {
    const src = c.name === 'interface' ? child(c, 'source') : undefined;
    if (!src) return false;
    return src.attrs.get('network') === match.network || (match.bridge !== '' && src.attrs.get('bridge') === match.bridge);
  });
}

/**
 * `xml` with `<filterref filter='clean-traffic'/>` as the last child of the interface on the
 * metadata network; unchanged when it is there already. An interface with another filter is
 * refused rather than changed: that filter may include clean-traffic, and only the admin knows.
 */
export function addCleanTraffic(xml: string, match: InterfaceMatch): string {
  const root = scanXml(xml);
  if (root.name !== 'domain') throw bad(`the document root is <${root.name}>, not <domain>`);
  const itf = mdsInterface(root, match);
  if (!itf) throw bad(`the domain has no <interface> on network "${match.network}" (or bridge "${match.bridge}")`);
  const existing = child(itf, 'filterref');
  if (existing) {
    const name = existing.attrs.get('filter') ?? '';
    if (name === CLEAN_TRAFFIC) return xml;
    throw bad(
      `the interface on network "${match.network}" already has <filterref filter='${name}'>: if that filter includes ` +
        `clean-traffic, add "${name}" to [mdserver] trusted_filters; otherwise change it by hand`,
    );
  }
  const line = `${childIndent(xml, itf, indentStep(xml, root))}<filterref filter='${CLEAN_TRAFFIC}'/>`;
  return splice(xml, [appendChildren(xml, itf, [line])]);
}
