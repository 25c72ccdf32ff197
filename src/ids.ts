// Pure: the identifiers a domain is known by (its uuid and the MAC of its metadata interface) and
// the names of the libvirt network filters mdserver looks for, one definition of each written
// form, shared by the domain parser, the sysinfo helper, the configuration and the md_server
// database import.

/** A MAC address as mdserver stores it: six lower-case hex pairs separated by colons. */
export const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A uuid as mdserver stores it: lower case, in the dashed 8-4-4-4-12 form. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What libvirt writes or accepts as `<uuid>`: either case, the four dashes optional. */
const UUID_INPUT = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * A libvirt nwfilter name as `<filterref filter=...>` and `[mdserver] trusted_filters` give it:
 * letters, digits and `_ . : -`, the characters libvirt's own filters use.
 */
export const NWFILTER_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isMac(s: string): boolean {
  return MAC.test(s);
}

/** `raw` (surrounding space allowed) in the stored uuid form, or null when it is not a uuid. */
export function canonicalUuid(raw: string): string | null {
  const t = raw.trim();
  if (!UUID_INPUT.test(t)) return null;
  const hex = t.toLowerCase().replace(/-/g, '');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
