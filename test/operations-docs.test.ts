// What doc/operations.md hands an operator: the Grafana dashboard imports (the fields Grafana
// needs are there and consistent), and every PromQL expression in it and in the example alert
// rules names a metric a running mdserver actually exports, as Prometheus' own parser reads it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { PYTHON, runPy } from './cloudinit.js';
import { request, startTestServer, type TestServer } from './helpers.js';
import { ROOT } from './process.js';

const hasParser = spawnSync(PYTHON, ['-c', 'import prometheus_client.parser, yaml'], { encoding: 'utf8' }).status === 0;
if (!hasParser && process.env['CI'] === 'true') throw new Error('python3-prometheus-client and python3-yaml are required under CI');
const skip = hasParser ? false : 'needs python3-prometheus-client and python3-yaml';

interface Panel {
  id: unknown; type: unknown; title: unknown; datasource: unknown;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: { refId: unknown; expr: unknown }[];
}
interface Rule { alert?: string; expr?: unknown; annotations?: { summary?: unknown } }

const DOC = path.join(ROOT, 'doc');
const dashboard = JSON.parse(fs.readFileSync(path.join(DOC, 'grafana-dashboard.json'), 'utf8')) as {
  panels: Panel[]; uid: unknown; title: unknown; schemaVersion: unknown; __inputs: { name: string; type: string; pluginId: string }[];
  templating: { list: { name: string; query: { query: string } | string }[] };
};

/** The metric names in a PromQL expression (ours all start with `mdserver_`). */
const metricsIn = (expr: string): string[] => [...expr.matchAll(/\bmdserver_[a-z_]+\b/g)].map((m) => m[0]);

describe('the operations documents', { skip }, () => {
  let t: TestServer;
  const exported = new Set<string>();
  /** Each metric as the documents name it: counters with `_total`, histograms by their base name. */
  const families = new Set<string>();
  before(async () => {
    t = await startTestServer();
    const p = runPy<{ types: Record<string, string>; samples: [string][] }>('parse_metrics.py', (await request(t.port, '/metrics')).body);
    for (const [name] of p.samples) exported.add(name);
    // A labelled counter with nothing counted yet has no sample: its family still names it.
    for (const [family, type] of Object.entries(p.types)) {
      if (type === 'counter') exported.add(`${family}_total`);
      else if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(family + s);
      else exported.add(family);
      families.add(type === 'counter' ? `${family}_total` : family);
    }
  });
  after(() => t.close());

  test('the Grafana dashboard has what an import needs, and panels that do not overlap', () => {
    assert.equal(typeof dashboard.uid, 'string');
    assert.equal(typeof dashboard.title, 'string');
    assert.equal(typeof dashboard.schemaVersion, 'number');
    assert.deepEqual(dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
    assert.ok(dashboard.panels.length >= 8);
    const ids = dashboard.panels.map((p) => p.id);
    assert.ok(ids.every((id) => Number.isInteger(id)), 'integer ids');
    assert.equal(new Set(ids).size, ids.length, 'unique ids');
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      assert.ok([g.x, g.y, g.w, g.h].every(Number.isInteger) && g.x >= 0 && g.y >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24, `gridPos of ${String(p.title)}`);
      for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
        assert.ok(!cells.has(`${x},${y}`), `${String(p.title)} overlaps another panel`);
        cells.add(`${x},${y}`);
      }
      assert.ok(typeof p.type === 'string' && typeof p.title === 'string' && p.datasource, String(p.title));
      assert.ok(p.targets.length > 0, String(p.title));
      assert.equal(new Set(p.targets.map((x) => x.refId)).size, p.targets.length, `refIds of ${String(p.title)}`);
    }
  });

  test('every dashboard query names only metrics mdserver exports', () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((x) => String(x.expr)));
    exprs.push(...dashboard.templating.list.map((v) => (typeof v.query === 'string' ? v.query : v.query.query)));
    for (const e of exprs) {
      assert.ok(metricsIn(e).length > 0, e);
      for (const m of metricsIn(e)) assert.ok(exported.has(m), `${m} (in ${e}) is not exported`);
    }
  });

  test('the example alert rules load as Prometheus rule groups and name only exported metrics', () => {
    const rules = runPy<{ groups: { name: string; rules: Rule[] }[] }>('parse_yaml.py', path.join(DOC, 'prometheus-alerts.yml'));
    const all = rules.groups.flatMap((g) => g.rules);
    const names = all.map((r) => r.alert);
    for (const want of ['MdserverVmProvisioningFailed', 'MdserverSpoofingAttempts', 'MdserverDnsmasqNotSignalled']) assert.ok(names.includes(want), want);
    for (const r of all) {
      assert.equal(typeof r.expr, 'string', r.alert);
      assert.equal(typeof r.annotations?.summary, 'string', r.alert);
      assert.ok(metricsIn(String(r.expr)).length > 0, r.alert);
      for (const m of metricsIn(String(r.expr))) assert.ok(exported.has(m), `${m} (alert ${String(r.alert)}) is not exported`);
    }
  });

  test('doc/operations.md describes every exported metric, and only those', () => {
    const text = fs.readFileSync(path.join(DOC, 'operations.md'), 'utf8');
    const rows = [...text.matchAll(/^\| `(mdserver_[a-z_]+)` \|/gm)].map((m) => m[1] as string);
    assert.deepEqual(rows.sort(), [...families].sort());
  });
});
