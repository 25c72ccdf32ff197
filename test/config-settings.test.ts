// The settings table: every setting is documented in the sample with its default, its parser
// accepts and refuses what the file format promises, and its restart flag says what a reload
// cannot apply.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildConfig } from '../src/config/build.js';
import { dumpConfig } from '../src/config/dump.js';
import { parseIni, type RawConfig } from '../src/config/ini.js';
import { regionOf } from '../src/config/instanceValues.js';
import { adminSocketPath, bool, choice, int, ipv4, list, nameOrNo, type ParseContext, type Parser } from '../src/config/parsers.js';
import type { Config } from '../src/config/schema.js';
import { defaultValue, LEGACY_KEYS, SETTING_LIST } from '../src/config/settings.js';
import { renderConf } from '../src/dnsmasq/render.js';
import { overrideProblems } from '../src/metadata/instanceData.js';
import { formatProblem } from '../src/config/problems.js';
import { restartNeeded } from '../src/reload.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = '/etc/mdserver/mdserver.conf';

function raw(text: string): RawConfig {
  const out: RawConfig = new Map();
  for (const [section, keys] of parseIni(text)) {
    out.set(section, new Map([...keys].map(([k, value]) => [k, { value, file: 'test.conf' }])));
  }
  return out;
}

function build(text: string): { config: Config | null; problems: string[] } {
  const r = buildConfig(raw(text), ['test.conf'], MAIN);
  return { config: r.config, problems: r.problems.map((p) => `[${p.section}] ${p.key}: ${p.message}`) };
}

function config(text: string): Config {
  const { config, problems } = build(text);
  assert.ok(config, problems.join('\n'));
  return config;
}

/** Runs one parser on its own, returning the value and what it reported. */
function parse<T>(parser: Parser<T>, s: string): { value: T; failures: string[] } {
  const failures: string[] = [];
  const ctx: ParseContext = { configDir: '/etc/mdserver', value: () => '/run/mds', fail: (m) => failures.push(m), warn: () => undefined };
  return { value: parser(s, ctx), failures };
}

describe('the sample configuration', () => {
  const text = fs.readFileSync(path.join(ROOT, 'mdserver.conf.sample'), 'utf8');
  /** section -> its lines, from its `[name]` or `# [name]` header to the next one. */
  const blocks = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of text.split('\n')) {
    const header = /^(?:# )?\[([A-Za-z_-]+)\]\s*$/.exec(line);
    if (header?.[1]) blocks.set(header[1], (current = blocks.get(header[1]) ?? []));
    else current.push(line);
  }

  test('documents every setting in its own section, commented out with its default', () => {
    for (const { id, section, key, setting } of SETTING_LIST) {
      const lines = blocks.get(section);
      assert.ok(lines, `the sample has no [${section}] section`);
      const documented = lines.map((l) => new RegExp(`^# ${key} =(.*)$`).exec(l)?.[1]?.trim()).filter((v) => v !== undefined);
      assert.ok(documented.length > 0, `${id} is not documented in the sample`);
      // Defaults that depend on the host or the build are described in words instead.
      if (typeof setting.default === 'string') assert.ok(documented.includes(setting.default), `${id}: the sample does not give its default ${JSON.stringify(setting.default)}`);
    }
  });

  test('documents no setting that does not exist', () => {
    const known = new Set(SETTING_LIST.map((e) => e.id));
    for (const section of new Set(SETTING_LIST.map((e) => e.section))) {
      for (const line of blocks.get(section) ?? []) {
        const key = /^#? ?([a-z0-9_]+) =/.exec(line)?.[1];
        if (key) assert.ok(known.has(`${section}.${key}`), `[${section}] ${key} in the sample is not a setting`);
      }
    }
  });
});

describe('the settings table', () => {
  test('names each setting once, with a one-line description, apart from md_server\'s old names', () => {
    const ids = SETTING_LIST.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const e of SETTING_LIST) assert.match(e.setting.doc, /^[^\n]{10,100}$/, e.id);
    for (const id of Object.keys(LEGACY_KEYS)) assert.ok(!ids.includes(id), id);
  });

  test('every default is valid', () => {
    assert.deepEqual(build('').problems, []);
    for (const e of SETTING_LIST) assert.equal(config('').values.get(e.id), defaultValue(e.setting), e.id);
  });
});

describe('problems and the dump', () => {
  test('a problem names the file, section, key and value; a file problem only the file', () => {
    assert.equal(formatProblem({ file: 'a.conf', section: 'mdserver', key: 'port', value: 'x"y', message: 'expected a whole number' }),
      'a.conf: [mdserver] port = "x\\"y": expected a whole number');
    assert.equal(formatProblem({ file: 'b.conf', section: '', key: '', value: '', message: 'cannot read config file' }), 'b.conf: cannot read config file');
  });

  test('the dump is sorted by section.key and hides passwords (even under a misspelt section), keys and template data', () => {
    const lines = dumpConfig(config('[mdserver]\npassword = s1\n[mdsever]\npassword = s2\n[public-keys]\nme = ssh-rsa K\n[template-data]\nt = s3\n'));
    const ids = lines.map((l) => l.slice(0, l.indexOf('=')));
    assert.deepEqual(ids, [...ids].sort((a, b) => a.localeCompare(b)));
    for (const id of ['mdserver.password', 'mdsever.password', 'public-keys.me', 'template-data.t']) assert.ok(lines.includes(`${id}=<hidden>`), id);
    assert.ok(lines.includes('mdserver.port=80'));
    assert.ok(!lines.some((l) => /s1|s2|s3|ssh-rsa/.test(l)));
  });
});

describe('parsers', () => {
  test('booleans', () => {
    for (const [s, value, ok] of [['yes', true, true], ['OFF', false, true], ['1', true, true], ['maybe', false, false], ['', false, false]] as const) {
      assert.deepEqual(parse(bool, s), { value, failures: ok ? [] : ['expected a boolean (yes/no, true/false, on/off, 1/0)'] }, s);
    }
  });

  test('whole numbers within bounds', () => {
    const p = int(8, 30);
    for (const [s, value, ok] of [['8', 8, true], ['30', 30, true], ['31', 8, false], ['7', 8, false], ['-9', 8, false], ['1e1', 8, false], ['ten', 8, false]] as const) {
      assert.deepEqual(parse(p, s), { value, failures: ok ? [] : ['expected a whole number from 8 to 30'] }, s);
    }
  });

  test('IPv4 addresses', () => {
    for (const [s, ok] of [['10.122.0.0', true], ['10.122.0', false], ['10.122.0.256', false], ['010.1.1.1', false], ['::1', false]] as const) {
      assert.equal(parse(ipv4, s).failures.length === 0, ok, s);
    }
  });

  test('choices are taken in any case', () => {
    const p = choice(['optional', 'required']);
    assert.deepEqual(parse(p, 'Required'), { value: 'required', failures: [] });
    assert.deepEqual(parse(p, 'sometimes'), { value: 'optional', failures: ['expected optional or required'] });
  });

  test("md_server's boolean-or-value", () => {
    const p = nameOrNo(/^[a-z-]+$/, 'a prefix');
    for (const [s, value, ok] of [['no', null, true], ['', null, true], ['test-', 'test-', true], ['yes', null, false], ['Bad_1', null, false]] as const) {
      assert.deepEqual(parse(p, s), { value, failures: ok ? [] : ['expected a prefix, or no'] }, s);
    }
  });

  test('lists keep empty items only when they mean something', () => {
    assert.deepEqual(parse(list(':', true), ':.yaml').value, ['', '.yaml']);
    assert.deepEqual(parse(list(',', false), ' a, ,b ,').value, ['a', 'b']);
  });

  test('the admin socket: empty, off, or a path from the config directory', () => {
    for (const [s, expected] of [['', '/run/mds/admin.sock'], ['no', null], ['None', null], ['sock', '/etc/mdserver/sock'], ['/tmp/a.sock', '/tmp/a.sock']] as const) {
      assert.equal(adminSocketPath(s, '/run/mds', '/etc/mdserver'), expected, s);
    }
  });
});

describe('availability zones and regions', () => {
  const cases: [string, boolean][] = [
    ['mds-local-1a', true],
    ['us-west-2-lax-1b', true],
    ['ab', true],
    [`${'r'.repeat(63)}a`, true],
    [`${'r'.repeat(64)}a`, false],
    ['a', false],
    ['zone1', false],
    ['zone-A', false],
    ['two words', false],
  ];

  test('the configuration and a domain override accept the same zones', () => {
    for (const [zone, ok] of cases) {
      const fromConfig = build(`[instance-defaults]\navailability_zone = ${zone}\n`).problems;
      assert.equal(fromConfig.length === 0, ok, `${zone} in the configuration: ${fromConfig.join('; ')}`);
      assert.equal(overrideProblems({ availability_zone: zone }).length === 0, ok, `${zone} as an override`);
    }
  });

  test('a valid zone always gives a valid region', () => {
    for (const [zone] of cases.filter(([, ok]) => ok)) {
      assert.equal(config(`[instance-defaults]\navailability_zone = ${zone}\n`).instanceDefaults.region, regionOf(zone));
      assert.deepEqual(overrideProblems({ region: regionOf(zone) }), [], zone);
    }
  });
});

describe('what a reload cannot apply', () => {
  const base = config('');
  const dnsmasq = (keys: string): string => `the dnsmasq configuration changed (${keys}): restart mdserver-dnsmasq to apply it`;

  const cases: [string, string, string[]][] = [
    ['nothing changed', '', []],
    ['a new port', '[mdserver]\nport = 8080', ['[mdserver] port changed (80 -> 8080): restart mdserver to apply it']],
    ['the admin socket turned off', '[mdserver]\nadmin_socket = no', ['[mdserver] admin_socket changed (/var/run/mdserver/admin.sock -> null): restart mdserver to apply it']],
    ['the same database written another way', '[mdserver]\ndb_file = /var/lib/mdserver/../mdserver/db_file.json', []],
    ["dnsmasq's lease and domain", '[dnsmasq]\nlease_len = 3600\ndomain = vm.example', [dnsmasq('[dnsmasq] lease_len, [dnsmasq] domain')]],
    ['a run directory, which also moves the admin socket', '[dnsmasq]\nrun_dir = /run/mds', [
      '[mdserver] admin_socket changed (/var/run/mdserver/admin.sock -> /run/mds/admin.sock): restart mdserver to apply it',
      dnsmasq('[dnsmasq] run_dir'),
    ]],
    ['the gateway and DNS names, which dnsmasq re-reads on SIGHUP', '[dnsmasq]\ngateway = 10.122.0.9\nprefix = t-\nentry_order = prefix', []],
    ['limits, logging and templates', '[mdserver]\nrate_limit = 5\nlogfile = none\nuserdata_dir = /srv/userdata', []],
  ];
  for (const [name, text, expected] of cases) {
    test(name, () => assert.deepEqual(restartNeeded(base, config(text)), expected));
  }

  /** A valid value other than the default for every setting, and what else must change with it. */
  const OTHER: Record<string, string> = {
    'mdserver.port': '8080', 'mdserver.metrics': 'no', 'mdserver.listen_address': '127.0.0.1', 'mdserver.userdata_dir': '/srv/ud',
    'mdserver.userdata_suffixes': '.yml', 'mdserver.password': 'x', 'mdserver.default_template': '/srv/t',
    'mdserver.db_file': '/srv/db.json', 'mdserver.logfile': 'none', 'mdserver.debug': 'yes', 'mdserver.debug_userdata': 'yes',
    'mdserver.imds_tokens': 'required', 'mdserver.upload_max_bytes': '2048', 'mdserver.admin_socket': 'no',
    'mdserver.verify_mac': 'yes', 'mdserver.report_events': 'no', 'mdserver.require_filter': 'yes', 'mdserver.trusted_filters': 'my-filter',
    'mdserver.rate_limit': '5', 'mdserver.rate_burst': '5',
    'mdserver.userdata_prefix_dir': 'shared', 'mdserver.legacy_prefixes': 'web',
    'mdserver.max_connections_per_client': '4', 'mdserver.max_connections': '100',
    'mdserver.upload_token_file': path.join(ROOT, 'test', 'fixtures', 'upload-token'),
    'loglevels.base': 'debug', 'loglevels.stream': 'error', 'loglevels.file': 'info', 'loglevels.format': 'json',
    'dnsmasq.user': 'nobody', 'dnsmasq.base_dir': '/srv/dnsmasq', 'dnsmasq.run_dir': '/run/mds', 'dnsmasq.net_name': 'lab',
    'dnsmasq.net_address': '10.0.0.0\nnet_prefix = 8', 'dnsmasq.net_prefix': '15', 'dnsmasq.gateway': '10.122.0.9',
    'dnsmasq.use_dns': 'yes', 'dnsmasq.interface': 'br-lab', 'dnsmasq.listen_address': '10.122.0.2', 'dnsmasq.lease_len': '3600',
    'dnsmasq.prefix': 't-', 'dnsmasq.domain': 'vm.example', 'dnsmasq.entry_order': 'prefix,base',
    'service.name': 'other', 'service.type': 'other', 'service.version': '9', 'service.location': 'elsewhere',
    'service.ec2_versions': '2021-03-23,latest',
    'instance-defaults.availability_zone': 'lab-1b', 'instance-defaults.region': 'lab-2', 'instance-defaults.instance_type': 't',
    'instance-defaults.ami_id': 'ami-1', 'instance-defaults.account_id': '1', 'instance-defaults.security_groups': 'web',
    'openstack.enabled': 'no', 'openstack.network': 'dhcp', 'openstack.vendor_data_file': path.join(ROOT, 'package.json'),
    'openstack.vendor_data2_file': path.join(ROOT, 'package.json'),
    // The IPv6 prefix is in dnsmasq's file only with ipv6 = yes.
    'mdserver.ipv6': 'yes', 'mdserver.listen_address6': 'fd00:ec2::253', 'mdserver.listen_linklocal': 'no',
    'dnsmasq.net6_address': 'fd00:1::\ngateway6 = fd00:1::1\n[mdserver]\nipv6 = yes', 'dnsmasq.net6_prefix': '60\n[mdserver]\nipv6 = yes',
    'dnsmasq.gateway6': 'fd00:ec2::2', 'dnsmasq.service_names': 'mds',
    'nocloud.enabled': 'no', 'nocloud.network': 'dhcp', 'nocloud.vendor_data_file': path.join(ROOT, 'package.json'),
    'cloudstack.enabled': 'yes', 'cloudstack.password_ttl': '600', 'cloudstack.password_port': '8081',
    'store.url': 'postgresql://mdserver@db.example/mdserver', 'store.password_file': path.join(ROOT, 'test', 'fixtures', 'upload-token'),
    'store.host_name': 'host-b', 'store.dhcp_scope': 'local',
  };

  test("exactly the settings in dnsmasq's main file are flagged for a dnsmasq restart; every flagged change is named", () => {
    for (const { id, section, key, setting } of SETTING_LIST) {
      const value = OTHER[id];
      assert.ok(value !== undefined, `${id} needs another value in this test`);
      const next = config(`[${section}]\n${key} = ${value}\n`);
      assert.equal(renderConf(next) !== renderConf(base), setting.restart === 'mdserver-dnsmasq' || setting.restart === 'both', `${id} and dnsmasq's main file`);
      assert.equal(restartNeeded(base, next).length > 0, setting.restart !== undefined, `${id} and the restart list`);
    }
  });
});
