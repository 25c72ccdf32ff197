// The typed configuration every part of mdserver reads: the settings of the table in
// `settings.ts`, each under its section, plus what is derived from them and from the free-form
// sections. Built once per load, frozen.

import type { Net4 } from '../net/ip.js';
import type { Plan6 } from '../net/ip6.js';
import type { SettingValues } from './settings.js';

export type { EntryKind, NetworkMode, TokenMode } from './settings.js';
export { formatProblem, type ConfigProblem } from './problems.js';

export interface PublicKey {
  readonly name: string;
  readonly key: string;
}

/**
 * `mdserver`, `loglevels`, `dnsmasq`, `service`, `instanceDefaults` (`[instance-defaults]`),
 * `openstack` and `nocloud` hold the table's settings, typed by their parsers; a few sections add
 * values derived from several settings.
 */
export interface Config extends SettingValues {
  /** Every file that was read, main file first. */
  readonly files: readonly string[];
  readonly dnsmasq: SettingValues['dnsmasq'] & {
    /** `net_address`/`net_prefix` as a network. */
    readonly net: Net4;
    /** How instances get their IPv6 addresses; null unless `[mdserver] ipv6 = yes`. */
    readonly plan6: Plan6 | null;
  };
  readonly service: SettingValues['service'] & {
    readonly releaseDate: string;
    readonly hostname: string;
  };
  /** `[public-keys]`, in file order. */
  readonly publicKeys: readonly PublicKey[];
  /** `[template-data]` after `_config_items_` has been applied (core names are added later). */
  readonly templateData: Readonly<Record<string, string>>;
  /** Every effective value as `section.key` -> string, for `_config_items_` and the config dump. */
  readonly values: ReadonlyMap<string, string>;
}

export const DEFAULT_CONFIG_FILE = '/etc/mdserver/mdserver.conf';
