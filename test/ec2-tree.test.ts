// The EC2 metadata tree over HTTP, read the way cloud-init reads it: every listing names exactly
// what is served, single values carry no trailing newline, MACs are lower case, and the values
// cloud-init, ec2-metadata and the AWS SDKs use are there, per instance.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/index.js';
import { tagKeyProblem } from '../src/metadata/ec2.js';
import { request, startWithVms, tempDir, upload, withVms, writeConfig, type DomainSpec, type TestServer } from './helpers.js';

const VERSIONS = ['2009-04-04', '2016-09-02', '2018-09-24', '2021-03-23', 'latest'];

const PLAIN: DomainSpec = { name: 'plain', uuid: '6a1f0c2e-8d4b-4f7a-9e3c-1b2d3e4f5a6b', mac: '52:54:00:AB:CD:EF' };
const PLACED: DomainSpec = {
  name: 'placed',
  uuid: '7b2e1d3f-9e5c-4a8b-8f4d-2c3e4f5a6b7c',
  mac: '52:54:00:12:34:56',
  arch: 'aarch64',
  metadata: {
    availability_zone: 'lab-east-2b',
    instance_type: 'm5.large',
    ami_id: 'ami-0123456789abcdef0',
    security_groups: 'web, db',
    userdata_prefix: 'testing',
    'Team.Name': 'storage',
    _index: 'reserved by EC2',
    [`k${'x'.repeat(128)}`]: 'too long a key',
  },
};
const BADLY_PLACED: DomainSpec = {
  name: 'badly-placed',
  uuid: '8c3f2e4a-0f6d-4b9c-9a5e-3d4f5a6b7c8d',
  mac: '52:54:00:65:43:21',
  metadata: { availability_zone: 'two words', instance_type: 'a b' },
};

interface Crawled {
  /** Every path fetched, mapped to its body. */
  values: Map<string, string>;
  /** Paths a listing named that did not answer 200. */
  failures: string[];
}

/**
 * Reads a listing recursively as cloud-init's MetadataMaterializer does: a line ending in `/` is a
 * directory fetched with the slash, a line `N=name` is a key fetched from `N/openssh-key`, any
 * other line is a leaf.
 */
async function crawl(port: number, from: string, start: string): Promise<Crawled> {
  const out: Crawled = { values: new Map(), failures: [] };
  const walk = async (url: string): Promise<void> => {
    const r = await request(port, url, { from });
    if (r.status !== 200) {
      out.failures.push(`${url} -> ${r.status}`);
      return;
    }
    out.values.set(url, r.body);
    for (const line of r.body.split('\n')) {
      if (line.endsWith('/')) await walk(url + line);
      else {
        const m = /^(\d+)=/.exec(line);
        const leaf = url + (m ? `${m[1]}/openssh-key` : encodeURIComponent(line));
        const v = await request(port, leaf, { from });
        if (v.status !== 200) out.failures.push(`${leaf} -> ${v.status}`);
        else out.values.set(leaf, v.body);
      }
    }
  };
  await walk(start);
  return out;
}

describe('the EC2 tree', () => {
  let srv: TestServer;
  let plain: string;
  let placed: string;
  let badly: string;

  before(async () => {
    [srv, plain, placed, badly] = await startWithVms({}, [PLAIN, PLACED, BADLY_PLACED]);
  });
  after(() => srv.close());

  const get = async (path: string, from: string): Promise<string> => {
    const r = await request(srv.port, path, { from });
    assert.equal(r.status, 200, `${path}: ${r.status} ${r.body}`);
    return r.body;
  };

  test('by default the root lists every version cloud-init probes, and latest', async () => {
    assert.equal(await get('/', plain), VERSIONS.map((v) => `${v}/`).join('\n'));
    for (const v of VERSIONS) assert.equal(await get(`/${v}/meta-data/instance-id`, plain), `i-${plain}`);
  });

  test('a recursive crawl of meta-data and dynamic finds every listed entry, in every version', async () => {
    for (const from of [plain, placed]) {
      for (const v of VERSIONS) {
        for (const start of [`/${v}/meta-data/`, `/${v}/dynamic/`]) {
          const c = await crawl(srv.port, from, start);
          assert.deepEqual(c.failures, [], `${start} from ${from}`);
          assert.ok(c.values.size >= 3, `${start} serves something`);
        }
      }
    }
  });

  test('single values and listings never end in a newline', async () => {
    const c = await crawl(srv.port, placed, '/latest/meta-data/');
    const d = await crawl(srv.port, placed, '/latest/dynamic/');
    for (const [path, body] of [...c.values, ...d.values]) {
      assert.ok(!body.endsWith('\n') && !body.endsWith('\r'), `${path} ends with a newline: ${JSON.stringify(body)}`);
    }
  });

  test('meta-data lists exactly the keys cloud-init and EC2 tools read', async () => {
    assert.equal(
      await get('/latest/meta-data/', plain),
      [
        'ami-id', 'ami-launch-index', 'hostname', 'instance-id', 'instance-type', 'local-hostname', 'local-ipv4',
        'mac', 'network/', 'placement/', 'public-keys/', 'reservation-id', 'security-groups',
      ].join('\n'),
    );
  });

  test('the instance is described by its own address, name and MAC, in lower case', async () => {
    const md = '/2021-03-23/meta-data';
    assert.equal(await get(`${md}/local-ipv4`, plain), plain);
    assert.equal(await get(`${md}/local-hostname`, plain), 'plain');
    assert.equal(await get(`${md}/hostname`, plain), 'plain');
    assert.equal(await get(`${md}/mac`, plain), '52:54:00:ab:cd:ef');
    assert.equal(await get(`${md}/ami-launch-index`, plain), '0');
    assert.match(await get(`${md}/reservation-id`, plain), /^r-[0-9a-f]{17}$/);
  });

  test('network/interfaces/macs has one entry, the VM MAC, with what cloud-init needs for its network config', async () => {
    const macs = '/latest/meta-data/network/interfaces/macs/';
    assert.equal(await get(macs, plain), '52:54:00:ab:cd:ef/');
    const nic = `${macs}52:54:00:ab:cd:ef/`;
    assert.equal(
      await get(nic, plain),
      [
        'device-number', 'interface-id', 'local-hostname', 'local-ipv4s', 'mac', 'owner-id', 'security-groups',
        'subnet-id', 'subnet-ipv4-cidr-block', 'vpc-id', 'vpc-ipv4-cidr-block', 'vpc-ipv4-cidr-blocks',
      ].join('\n'),
    );
    assert.equal(await get(`${nic}device-number`, plain), '0');
    assert.equal(await get(`${nic}mac`, plain), '52:54:00:ab:cd:ef');
    assert.equal(await get(`${nic}local-ipv4s`, plain), plain);
    assert.equal(await get(`${nic}subnet-ipv4-cidr-block`, plain), '127.1.0.0/16');
    assert.match(await get(`${nic}vpc-id`, plain), /^vpc-[0-9a-f]{17}$/);
    assert.match(await get(`${nic}interface-id`, plain), /^eni-[0-9a-f]{17}$/);
    assert.equal(await get(`${nic}owner-id`, plain), '000000000000');
    // Each VM sees only its own interface.
    assert.equal(await get(macs, placed), '52:54:00:12:34:56/');
    assert.equal((await request(srv.port, nic, { from: placed })).status, 404);
  });

  test('placement and instance facts come from [instance-defaults] unless the domain overrides them', async () => {
    assert.equal(await get('/latest/meta-data/placement/', plain), 'availability-zone\nregion');
    assert.equal(await get('/latest/meta-data/placement/availability-zone', plain), 'mds-local-1a');
    assert.equal(await get('/latest/meta-data/placement/region', plain), 'mds-local-1');
    assert.equal(await get('/latest/meta-data/instance-type', plain), 'kvm.libvirt');
    assert.equal(await get('/latest/meta-data/ami-id', plain), 'ami-00000000');
    assert.equal(await get('/latest/meta-data/security-groups', plain), 'default');

    assert.equal(await get('/latest/meta-data/placement/availability-zone', placed), 'lab-east-2b');
    assert.equal(await get('/latest/meta-data/placement/region', placed), 'lab-east-2');
    assert.equal(await get('/latest/meta-data/instance-type', placed), 'm5.large');
    assert.equal(await get('/latest/meta-data/ami-id', placed), 'ami-0123456789abcdef0');
    // EC2 serves one group per line.
    assert.equal(await get('/latest/meta-data/security-groups', placed), 'web\ndb');
    assert.equal(await get('/latest/meta-data/network/interfaces/macs/52:54:00:12:34:56/security-groups', placed), 'web\ndb');
  });

  test('an override that is not a single well-formed value is ignored, not served', async () => {
    assert.equal(await get('/latest/meta-data/placement/availability-zone', badly), 'mds-local-1a');
    assert.equal(await get('/latest/meta-data/instance-type', badly), 'kvm.libvirt');
  });

  test('mdserver: metadata is served as instance tags, except keys EC2 would refuse', async () => {
    assert.ok((await get('/latest/meta-data/', placed)).split('\n').includes('tags/'));
    assert.equal(await get('/latest/meta-data/tags/', placed), 'instance/');
    const keys = (await get('/latest/meta-data/tags/instance/', placed)).split('\n').sort();
    assert.deepEqual(keys, ['Team.Name', 'ami_id', 'availability_zone', 'instance_type', 'security_groups', 'userdata_prefix']);
    assert.equal(await get('/latest/meta-data/tags/instance/Team.Name', placed), 'storage');
    assert.equal(await get('/latest/meta-data/tags/instance/availability_zone', placed), 'lab-east-2b');
    assert.equal((await request(srv.port, '/latest/meta-data/tags/instance/_index', { from: placed })).status, 404);
  });

  test('a domain without mdserver: metadata has no tags directory, as EC2 without tags in metadata', async () => {
    assert.ok(!(await get('/latest/meta-data/', plain)).includes('tags/'));
    assert.equal((await request(srv.port, '/latest/meta-data/tags/', { from: plain })).status, 404);
  });

  test('dynamic lists only the identity document, which says who the instance is', async () => {
    assert.equal(await get('/latest/dynamic/', placed), 'instance-identity/');
    assert.equal(await get('/latest/dynamic/instance-identity/', placed), 'document');
    const doc = JSON.parse(await get('/latest/dynamic/instance-identity/document', placed)) as Record<string, unknown>;
    assert.equal(doc['instanceId'], `i-${placed}`);
    assert.equal(doc['privateIp'], placed);
    assert.equal(doc['availabilityZone'], 'lab-east-2b');
    assert.equal(doc['region'], 'lab-east-2');
    assert.equal(doc['instanceType'], 'm5.large');
    assert.equal(doc['imageId'], 'ami-0123456789abcdef0');
    assert.equal(doc['architecture'], 'arm64');
    assert.equal(doc['accountId'], '000000000000');
    assert.equal(doc['version'], '2017-09-30');
    assert.match(String(doc['pendingTime']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    for (const k of ['kernelId', 'ramdiskId', 'billingProducts', 'devpayProductCodes', 'marketplaceProductCodes']) {
      assert.equal(doc[k], null, k);
    }
    const plainDoc = JSON.parse(await get('/latest/dynamic/instance-identity/document', plain)) as Record<string, unknown>;
    assert.equal(plainDoc['architecture'], 'x86_64');
    assert.equal(plainDoc['region'], 'mds-local-1');
  });

  test('pendingTime is the first upload: uploading the domain again does not move it', async () => {
    const docOf = async () => JSON.parse(await get('/latest/dynamic/instance-identity/document', plain)) as Record<string, unknown>;
    const first = (await docOf())['pendingTime'];
    await new Promise((r) => setTimeout(r, 1100));
    await upload(srv.port, PLAIN);
    assert.equal((await docOf())['pendingTime'], first);
  });

  test('directories answer with and without a trailing slash; leaves answer with one too', async () => {
    const listing = await get('/latest/meta-data/', plain);
    assert.equal(await get('/latest/meta-data', plain), listing);
    assert.equal(await get('/latest/meta-data/placement', plain), 'availability-zone\nregion');
    assert.equal(await get('/latest/dynamic/instance-identity', plain), 'document');
    assert.equal(await get('/latest/meta-data/instance-id/', plain), `i-${plain}`);
    // ec2-metadata asks for `latest//meta-data/reservation-id`, the AWS SDK for `//latest/...`.
    assert.match(await get('/latest//meta-data/reservation-id', plain), /^r-/);
    assert.equal(await get('//latest/meta-data/instance-id', plain), `i-${plain}`);
  });

  test('paths below a leaf, unknown keys and bad escapes are 4xx, never 500', async () => {
    for (const [path, status] of [
      ['/latest/meta-data/instance-id/more', 404],
      ['/latest/meta-data/network/interfaces/macs/52:54:00:00:00:00/', 404],
      ['/latest/dynamic/instance-identity/signature', 404],
      ['/latest/meta-data/%E0%A4%A', 400],
    ] as const) {
      assert.equal((await request(srv.port, path, { from: plain })).status, status, path);
    }
  });
});

describe('a configuration that serves fewer versions', () => {
  test('still answers for what it lists and 404s the rest', async () => {
    await withVms({ service: { ec2_versions: '2018-09-24' } }, [PLAIN], async (srv, ip) => {
      assert.equal((await request(srv.port, '/', { from: ip })).body, '2018-09-24/');
      assert.equal((await request(srv.port, '/2018-09-24/meta-data/local-ipv4', { from: ip })).body, ip);
      assert.equal((await request(srv.port, '/2021-03-23/meta-data/instance-id', { from: ip })).status, 404);
      assert.equal((await request(srv.port, '/latest/meta-data/instance-id', { from: ip })).status, 404);
      // The token route does not depend on the versions served.
      const t = await request(srv.port, '/latest/api/token', { from: ip, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } });
      assert.equal(t.status, 200);
    });
  });
});

describe('instance tag keys', () => {
  test("follow EC2's rules for tags in metadata", () => {
    for (const ok of ['Name', 'team.name', 'a-b_c:d@e+f,g', 'a=1', 'x'.repeat(128), '1', 'aws:role']) {
      assert.equal(tagKeyProblem(ok), null, ok);
    }
    for (const bad of ['', 'a b', 'a/b', 'café', 'x'.repeat(129), '.', '..', '_index', 'tab\tkey']) {
      assert.notEqual(tagKeyProblem(bad), null, JSON.stringify(bad));
    }
  });

  test('refuse <number>=<name>, which cloud-init would fetch as public key <number>', () => {
    for (const bad of ['0=x', '12=name', '+1=x', '-1=x', '1_0=x']) {
      assert.match(tagKeyProblem(bad) ?? '', /public key/, bad);
    }
    assert.equal(tagKeyProblem('a1=x'), null);
    assert.equal(tagKeyProblem('1a=x'), null);
  });
});

describe('[instance-defaults] and ec2_versions in the configuration', () => {
  test('values served as single metadata values must be one word, and each problem names the key', () => {
    const dir = tempDir();
    try {
      const file = writeConfig(dir, { 'instance-defaults': { instance_type: 'big one', ami_id: 'ami-1', security_groups: 'web, db', availability_zone: 'zone1' } });
      assert.throws(() => loadConfig(file), (e: Error) => {
        assert.match(e.message, /\[instance-defaults\] instance_type = "big one": expected one word/);
        assert.match(e.message, /\[instance-defaults\] availability_zone = "zone1": expected a zone name ending in a letter/);
        assert.doesNotMatch(e.message, /security_groups|ami_id/);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a version list cloud-init cannot use, or without latest, is a warning, not an error', () => {
    const dir = tempDir();
    try {
      const { warnings } = loadConfig(writeConfig(dir, { service: { ec2_versions: '2007-01-19' } }));
      assert.ok(warnings.some((w) => /ec2_versions lists none of 2021-03-23, 2018-09-24, 2016-09-02, 2009-04-04/.test(w)), warnings.join('\n'));
      assert.ok(warnings.some((w) => /lacks latest/.test(w)), warnings.join('\n'));
      const defaults = loadConfig(writeConfig(dir)).warnings;
      assert.ok(!defaults.some((w) => /ec2_versions/.test(w)), defaults.join('\n'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
