// Builds the frozen `Config` from the raw ini values: every setting of the table through its
// parser, the checks that involve several settings, and the free-form sections. Every problem is
// collected, each naming the file, section, key and value, so that one run of
// `mdserver --check-config` shows them all.

import os from 'node:os';
import path from 'node:path';
import { broadcast, inNet, isNetworkAddress, net4, parseIPv4, type Net4 } from '../net/ip.js';
import { inNet6, isNetworkAddress6, parseIPv6, type Plan6 } from '../net/ip6.js';
import { RELEASE_DATE } from '../version.js';
import { Collector } from './collector.js';
import type { RawConfig } from './ini.js';
import type { ConfigProblem } from './problems.js';
import type { Config, PublicKey } from './schema.js';
import { SETTING_LIST, type SettingValues } from './settings.js';

export interface BuildResult {
  config: Config | null;
  problems: ConfigProblem[];
  warnings: string[];
}

export function buildConfig(raw: RawConfig, files: string[], mainFile: string): BuildResult {
  const c = new Collector(raw);
  const table = parseSettings(c, path.dirname(path.resolve(mainFile)));
  const net = checkNetwork(c, table.dnsmasq);
  const plan6 = checkNetwork6(c, table, net);
  warnHeaderFormats(c, table);
  const cfg: Config = {
    ...table,
    files,
    dnsmasq: { ...table.dnsmasq, net, plan6 },
    service: { ...table.service, releaseDate: RELEASE_DATE, hostname: os.hostname() },
    publicKeys: publicKeys(c, raw),
    templateData: templateData(c, raw),
    values: c.values,
  };
  if (c.problems.length > 0) return { config: null, problems: c.problems, warnings: c.warnings };
  return { config: deepFreeze(cfg), problems: [], warnings: c.warnings };
}

/** Every setting of the table, parsed into its section under its `Config` name. */
function parseSettings(c: Collector, configDir: string): SettingValues {
  const out: Record<string, Record<string, unknown>> = {};
  for (const e of SETTING_LIST) {
    const section = (out[e.group] ??= {});
    section[e.prop] = e.setting.parse(c.value(e.section, e.key), c.context(e.section, e.key, configDir));
  }
  // Each value came from its own entry's parser, so each has the type the table gives it.
  return out as unknown as SettingValues;
}

/** The network must be a network address, and the gateway a host inside it. */
function checkNetwork(c: Collector, d: SettingValues['dnsmasq']): Net4 {
  const address = parseIPv4(d.netAddress) ?? 0;
  const network = net4(address, d.netPrefix);
  if (c.failed('dnsmasq', 'net_address', 'net_prefix')) return network;
  if (!isNetworkAddress(address, d.netPrefix)) {
    c.fail('dnsmasq', 'net_address', `has host bits set for prefix /${d.netPrefix}`);
    return network;
  }
  const gateway = parseIPv4(d.gateway) ?? 0;
  if (!c.failed('dnsmasq', 'gateway') && (!inNet(network, gateway) || gateway === address || gateway === broadcast(network))) {
    c.fail('dnsmasq', 'gateway', `must be a host address inside ${d.netAddress}/${d.netPrefix}`);
  }
  return network;
}

/**
 * With `ipv6 = yes`, how instances get their IPv6 addresses (null when it is off). The prefix must
 * be a network address, and gateway6 a host inside it; listen_address6 may be anywhere, but inside
 * the prefix it is, like gateway6, never an instance's address.
 */
function checkNetwork6(c: Collector, t: SettingValues, net4: Net4): Plan6 | null {
  const d = t.dnsmasq;
  const network = parseIPv6(d.net6Address) ?? 0n;
  if (c.failed('dnsmasq', 'net6_address', 'net6_prefix')) return null;
  if (!isNetworkAddress6(network, d.net6Prefix)) {
    c.fail('dnsmasq', 'net6_address', `has host bits set for prefix /${d.net6Prefix}`);
    return null;
  }
  const gateway = parseIPv6(d.gateway6) ?? 0n;
  if (!c.failed('dnsmasq', 'gateway6') && (!inNet6(network, d.net6Prefix, gateway) || gateway === network)) {
    c.fail('dnsmasq', 'gateway6', `must be a host address inside ${d.net6Address}/${d.net6Prefix}`);
  }
  const listen = parseIPv6(t.mdserver.listenAddress6) ?? 0n;
  if (t.mdserver.ipv6 && listen === gateway) c.fail('mdserver', 'listen_address6', 'must not be [dnsmasq] gateway6');
  if (!t.mdserver.ipv6) return null;
  return { network, prefix: d.net6Prefix, net4, reserved: [gateway, listen] };
}

/**
 * With tokens required, the OpenStack and NoCloud paths answer only requests that carry
 * `Metadata: true`, which stock cloud-init never sends: say so for each format still on.
 */
function warnHeaderFormats(c: Collector, t: SettingValues): void {
  if (t.mdserver.imdsTokens !== 'required') return;
  const on = [t.openstack.enabled ? 'openstack' : '', t.nocloud.enabled ? 'nocloud' : ''].filter(Boolean);
  if (on.length === 0) return;
  c.warn(`[mdserver] imds_tokens = required: ${on.map((f) => `/${f}/`).join(' and ')} answer only requests with the header `
    + `"Metadata: true", which cloud-init's ${on.map((f) => (f === 'openstack' ? 'OpenStack' : 'NoCloud')).join(' and ')} `
    + `datasource does not send; set ${on.map((f) => `[${f}] enabled = no`).join(' and ')} if no VM uses them`);
}

function publicKeys(c: Collector, raw: RawConfig): PublicKey[] {
  const out: PublicKey[] = [];
  for (const [name, rv] of raw.get('public-keys') ?? []) {
    const key = rv.value.trim();
    if (/[\r\n]/.test(key)) c.fail('public-keys', name, 'a key must be on one line');
    else if (key) out.push({ name, key });
  }
  if (out.length === 0) c.warn('no [public-keys] configured: instances will get no SSH keys');
  return out;
}

/** `[template-data]`, plus the `section.key` values `_config_items_` copies in under `key`. */
function templateData(c: Collector, raw: RawConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, rv] of raw.get('template-data') ?? []) {
    if (key !== '_config_items_') out[key] = rv.value;
  }
  const items = raw.get('template-data')?.get('_config_items_')?.value ?? '';
  for (const item of items.split(',').map((s) => s.trim()).filter(Boolean)) {
    const dot = item.indexOf('.');
    const value = c.values.get(item);
    if (dot < 1 || value === undefined) {
      c.fail('template-data', '_config_items_', `"${item}" does not name a section.key that is set`);
      continue;
    }
    const name = item.slice(dot + 1);
    if (!(name in out)) out[name] = value;
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    if (!(o instanceof Map)) for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
