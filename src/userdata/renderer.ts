// Renders an instance's user-data: finds its template (cached file checks), compiles it once per
// file version (Bottle placeholders carried over to eta), and renders it with the instance's data.

import fs from 'node:fs';
import path from 'node:path';
import { Eta } from 'eta';
import type { Config, ConfigSource } from '../config/index.js';
import { describe, MdsError } from '../errors.js';
import { moduleLogger } from '../log.js';
import type { InstanceData } from '../metadata/instanceData.js';
import { yamlQuote } from '../metadata/yaml.js';
import { convertBottle, renderPlaceholder, type Placeholder } from './bottle.js';
import { templateCandidates, type Candidates, type InstanceLookup } from './select.js';

const log = moduleLogger('userdata');

const eta = new Eta({ autoEscape: false, autoTrim: false, useWith: false, varName: 'it', cache: false });

type Compiled = (data: Record<string, unknown>) => string;

const MAX_FILE_STATES = 4096;

interface FileState {
  checkedAt: number;
  exists: boolean;
  mtimeMs: number;
  size: number;
}

interface CacheEntry {
  mtimeMs: number;
  size: number;
  fn: Compiled;
}

/** Compiles template text; Bottle placeholders become calls into the evaluator, never code. */
export function compileTemplate(text: string, file: string): Compiled {
  const { source, placeholders } = convertBottle(text, file);
  let fn: ReturnType<Eta['compile']>;
  try {
    fn = eta.compile(source);
  } catch (e) {
    throw new MdsError('TEMPLATE_UNSUPPORTED', `${file}: ${describe(e)}`, { cause: e });
  }
  return (data) => {
    const it = { ...data, __bottle: (i: number) => renderPlaceholder(placeholders[i] as Placeholder, data) };
    return fn.call(eta, it);
  };
}

/**
 * `it.yaml_quote(x)` for eta templates: `x` as a YAML double-quoted scalar (see metadata/yaml.ts),
 * a missing value as `""`. Bottle placeholders have the same as `{{yaml_quote(x)}}`.
 */
function etaYamlQuote(v: unknown): string {
  if (v === undefined || v === null) return yamlQuote('');
  if (typeof v === 'string') return yamlQuote(v);
  if (typeof v === 'number' || typeof v === 'boolean') return yamlQuote(String(v));
  throw new TypeError('yaml_quote() takes a string, a number or a boolean');
}

export class UserdataRenderer {
  private readonly files = new Map<string, FileState>();
  private readonly compiled = new Map<string, CacheEntry>();
  private readonly builtin: Compiled;

  /**
   * @param checkMs how long a file check is trusted: at most one stat per template file per
   *   interval, however many VMs ask.
   */
  /**
   * @param others the registered instances, so that a template is chosen only among the files
   *   that belong to the instance asking (see select.ts)
   */
  constructor(private readonly config: ConfigSource, builtinText: string, private readonly others: InstanceLookup, private readonly checkMs = 1000) {
    this.builtin = compileTemplate(builtinText, '(built-in template)');
  }

  /**
   * Per instance (its InstanceData lives as long as its cached metadata view: until the instance's
   * record or the configuration changes): the template files to try, and the last output with the
   * compiled template that made it. A template is treated as a function of the instance's data,
   * as md_server's were: it is rendered again only when the file changes (a new compiled
   * function) or the configuration is reloaded. Rendering on every request was a third of the
   * cost of a user-data request in `npm run bench`, and cloud-init asks for it more than once.
   *
   * The candidates also depend on the other instances (a name-based file is the instance's only
   * while no other one answers to it), so they are chosen again whenever the store's generation
   * moved: a view outlives changes to other records, and a tenant that named its domain after
   * the MAC or uuid the next VM will get must not keep that VM's template once it exists.
   */
  private readonly candidates = new WeakMap<InstanceData, { generation: number; c: Candidates }>();
  private readonly rendered = new WeakMap<InstanceData, { fn: Compiled; url: string; out: string }>();


  private state(file: string): FileState {
    const now = Date.now();
    const cached = this.files.get(file);
    if (cached && now - cached.checkedAt < this.checkMs) return cached;
    let st: FileState = { checkedAt: now, exists: false, mtimeMs: 0, size: 0 };
    try {
      const s = fs.statSync(file);
      if (s.isFile()) st = { checkedAt: now, exists: true, mtimeMs: s.mtimeMs, size: s.size };
    } catch {
      // missing: not a template
    }
    // Each instance has its own candidate names, so with thousands of instances the map would
    // keep an entry per candidate ever looked at; an entry is only trusted for checkMs anyway.
    if (this.files.size >= MAX_FILE_STATES) this.files.clear();
    this.files.set(file, st);
    return st;
  }

  private load(file: string, st: FileState): Compiled {
    const hit = this.compiled.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.fn;
    const fn = compileTemplate(fs.readFileSync(file, 'utf8'), file);
    this.compiled.set(file, { mtimeMs: st.mtimeMs, size: st.size, fn });
    log.debug('compiled template', { file });
    return fn;
  }

  /** `d`'s candidates as the store is now, warning of each file passed over when that list changed. */
  private candidatesFor(d: InstanceData, m: Config['mdserver']): Candidates {
    const generation = this.others.generation;
    const held = this.candidates.get(d);
    if (held?.generation === generation) return held.c;
    const c = templateCandidates(m, d.instance, this.others);
    this.candidates.set(d, { generation, c });
    const before = held ? new Set(held.c.passedOver.map((p) => p.path)) : new Set<string>();
    for (const p of c.passedOver) {
      if (!before.has(p.path) && this.state(p.path).exists) log.warn('not using a template that may not be this instance\'s', { instance: d.instance.name, file: p.path, why: p.why });
    }
    return c;
  }

  /** The template file that applies to `d`, or null for the built-in one. */
  choose(d: InstanceData): string | null {
    const m = this.config().mdserver;
    const { paths, explicit } = this.candidatesFor(d, m);
    for (const p of paths) if (this.state(p).exists) return p;
    if (explicit) {
      throw new MdsError('NOT_FOUND', `userdata template for prefix "${d.instance.metadata['userdata_prefix'] ?? ''}" not found for ${d.ipv4}`);
    }
    if (m.defaultTemplate) {
      if (this.state(path.resolve(m.defaultTemplate)).exists) return path.resolve(m.defaultTemplate);
      log.error('default template not found; using the built-in one', { file: m.defaultTemplate });
    }
    return null;
  }

  /** `reportUrl`: where the VM's cloud-init posts its events, at the address it reached mdserver on. */
  data(d: InstanceData, reportUrl = ''): Record<string, unknown> {
    const cfg = this.config();
    const keys: Record<string, string> = {};
    const data: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(cfg.templateData)) data[k] = v;
    // The built-in template's fqdn uses the dnsmasq domain unless template data names another.
    if (!('domain' in data)) data['domain'] = cfg.dnsmasq.domain ?? '';
    const core: Record<string, unknown> = {
      hostname: d.hostName,
      name: d.instance.name,
      uuid: d.instance.uuid,
      mac: d.mac,
      ipv4: d.ipv4,
      instance_id: d.instanceId,
      availability_zone: d.availabilityZone,
      region: d.region,
      metadata: { ...d.instance.metadata },
      public_keys: keys,
    };
    for (const k of cfg.publicKeys) {
      keys[k.name] = k.key;
      core[`public_key_${k.name}`] = k.key;
    }
    if (cfg.mdserver.password) core['mdserver_password'] = cfg.mdserver.password;
    core['report_url'] = reportUrl;
    core['yaml_quote'] = etaYamlQuote;
    // Core names always win over [template-data], as in md_server.
    return Object.assign(data, core);
  }

  /** Renders user-data for `d`; throws NOT_FOUND, BAD_USERDATA_PREFIX or TEMPLATE_FAILED. */
  render(d: InstanceData, reportUrl = ''): string {
    const file = this.choose(d);
    let out: string;
    try {
      const fn = file ? this.load(file, this.state(file)) : this.builtin;
      const last = this.rendered.get(d);
      if (last && last.fn === fn && last.url === reportUrl && !this.config().mdserver.debugUserdata) return last.out;
      out = fn(this.data(d, reportUrl));
      this.rendered.set(d, { fn, url: reportUrl, out });
    } catch (e) {
      log.error('userdata template failed', { instance: d.instance.name, file: file ?? '(built-in)', error: describe(e) });
      throw new MdsError('TEMPLATE_FAILED', `Userdata templating failure for ${d.instance.name}`, { cause: e });
    }
    if (this.config().mdserver.debugUserdata) this.debugWrite(d, out);
    return out;
  }

  private debugWrite(d: InstanceData, out: string): void {
    const file = path.join(this.config().dnsmasq.runDir, `${d.ipv4 || d.instance.uuid}.userdata`);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, out, { mode: 0o600 });
      fs.chmodSync(file, 0o600);
      log.debug('wrote rendered userdata', { file });
    } catch (e) {
      log.warn('cannot write rendered userdata', { file, error: describe(e) });
    }
  }
}
