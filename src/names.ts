// Pure: the host name an instance is known by in DNS, DHCP and metadata, and the names a
// domain may give as its `userdata_prefix`.
//
// libvirt accepts domain names that are not valid host names ("web server", "db_1", "a,b"). Such
// characters would corrupt a dnsmasq hosts line or a DNS answer, so every name goes through one
// documented rule before it is written anywhere: characters other than ASCII letters, digits and
// "-" become "-", runs of "-" collapse, leading and trailing "-" are dropped, and the result is cut
// to 63 characters (one DNS label). A name with nothing left becomes "instance-<uuid prefix>".

export function safeHostName(name: string, uuid: string): string {
  const mapped = name
    .replace(/[^A-Za-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return mapped || `instance-${uuid.replace(/-/g, '').slice(0, 8)}`;
}

/**
 * A `userdata_prefix` mdserver accepts: a plain file name (the suffixes are added) in the prefix
 * directory, so that it can never lead anywhere else: letters, digits, ".", "_" and "-", not
 * starting with ".".
 */
const PREFIX_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export function isPrefixName(s: string): boolean {
  return PREFIX_NAME.test(s);
}
