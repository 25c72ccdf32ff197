// Pure: the form of each per-instance EC2 value, declared once for `[instance-defaults]` and for
// the domain `mdserver:` metadata that overrides it. Each is served as a single metadata value
// (and cloud-init turns a value with a newline into a list), so anything else is refused.

export interface ValueRule {
  readonly pattern: RegExp;
  /** Completes "expected …". */
  readonly what: string;
}

const WORD: ValueRule = { pattern: /^[A-Za-z0-9._-]{1,64}$/, what: 'one word of letters, digits, ".", "_" or "-"' };

/**
 * Keyed by the setting's name, which is also the `mdserver:` metadata name.
 *
 * A region is one DNS label of letters, digits and "-": cloud-init builds package-mirror host
 * names from it (`%(ec2_region)s.ec2.archive.ubuntu.com`). EC2 names a zone after its region
 * plus one lower-case letter (us-east-1 -> us-east-1a), and cloud-init (for its EC2 mirrors) and
 * mdserver itself take the zone without its last letter as the region; so a zone is a valid
 * region followed by a letter, 2 to 64 characters. (The earlier `+` allowed zones whose region is not a
 * DNS label, `{0,62}` refused long ones whose region is fine and allowed "a", whose region is empty.)
 */
export const INSTANCE_VALUE_RULES = {
  availability_zone: { pattern: /^[A-Za-z0-9-]{1,63}[a-z]$/, what: 'a zone name ending in a letter, e.g. mds-local-1a' },
  region: { pattern: /^[A-Za-z0-9-]{1,63}$/, what: 'a region name (letters, digits, "-")' },
  instance_type: WORD,
  ami_id: WORD,
  account_id: WORD,
  security_groups: { pattern: /^[A-Za-z0-9._:@+=-]+([\s,]+[A-Za-z0-9._:@+=-]+)*$/, what: 'security group names separated by commas' },
} as const satisfies Record<string, ValueRule>;

export type InstanceValueName = keyof typeof INSTANCE_VALUE_RULES;

/** The values a domain may override; the account is the host's alone. */
export const OVERRIDABLE: readonly InstanceValueName[] = ['availability_zone', 'region', 'instance_type', 'ami_id', 'security_groups'];

export function validInstanceValue(name: InstanceValueName, value: string): boolean {
  return INSTANCE_VALUE_RULES[name].pattern.test(value);
}

/** The region a zone is in: the zone without its letter. */
export function regionOf(zone: string): string {
  return zone.slice(0, -1);
}
