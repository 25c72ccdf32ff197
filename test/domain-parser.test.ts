// The domain XML parser pool: large documents are parsed by reused worker threads and read
// exactly as the main thread reads them; small ones never start a thread.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMdsError } from '../src/errors.js';
import { DomainParser, isSmallDocument } from '../src/instances/domainParser.js';
import { parseDomainXml } from '../src/libvirt/domain.js';
import { domainXml, hostileDomainXml, VM1 } from './helpers.js';

const MATCH = { network: 'mds', bridge: 'br-mds' };

function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  return p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => {
      assert.ok(isMdsError(e), String(e));
      return { code: e.code, message: e.message };
    },
  );
}

describe('the domain XML parser pool', () => {
  test('an ordinary domain is parsed on the main thread: no worker is started', async () => {
    const parser = new DomainParser();
    try {
      assert.ok(isSmallDocument(domainXml(VM1), 1000));
      assert.deepEqual(await parser.parse(domainXml(VM1), MATCH), parseDomainXml(domainXml(VM1), MATCH));
      assert.equal(parser.workersStarted, 0);
    } finally {
      await parser.close();
    }
  });

  test('eight large documents at once are parsed by two reused workers, each read as the main thread reads it', async () => {
    const parser = new DomainParser({ workers: 2 });
    try {
      const docs = Array.from({ length: 8 }, (_, i) => hostileDomainXml(16 * 1024, `big${i}`));
      assert.ok(!isSmallDocument(docs[0] as string, 1000));
      const infos = await Promise.all(docs.map((d) => parser.parse(d, MATCH)));
      assert.deepEqual(infos, docs.map((d) => parseDomainXml(d, MATCH)));
      assert.deepEqual(infos.map((i) => i.name), ['big0', 'big1', 'big2', 'big3', 'big4', 'big5', 'big6', 'big7']);
      assert.equal(parser.workersStarted, 2, 'the pool is reused, not a thread per document');
    } finally {
      await parser.close();
    }
  });

  test('a bad large document is refused by a worker with the code and message the main thread gives', async () => {
    const parser = new DomainParser({ workers: 1 });
    try {
      const noInterface = hostileDomainXml(16 * 1024).replace("network='mds' bridge='br-mds'", "network='other'");
      const inline = await refusal(Promise.resolve().then(() => parseDomainXml(noInterface, MATCH)));
      assert.deepEqual(await refusal(parser.parse(noInterface, MATCH)), inline);
      assert.equal(inline.code, 'NO_MDS_INTERFACE');
      const broken = hostileDomainXml(16 * 1024).replace('</devices>', '');
      assert.equal((await refusal(parser.parse(broken, MATCH))).code, 'BAD_DOMAIN_XML');
      // The worker that refused them is still the one serving.
      await parser.parse(hostileDomainXml(16 * 1024), MATCH);
      assert.equal(parser.workersStarted, 1);
    } finally {
      await parser.close();
    }
  });

  test('a parse that overruns its time is refused, and its worker is replaced for the next document', async () => {
    const parser = new DomainParser({ workers: 1, timeoutMs: 1 });
    try {
      const expected = { code: 'BAD_DOMAIN_XML', message: 'the domain XML took longer than 0.001 s to parse' };
      assert.deepEqual(await refusal(parser.parse(hostileDomainXml(160 * 1024), MATCH)), expected);
      assert.deepEqual(await refusal(parser.parse(hostileDomainXml(160 * 1024), MATCH)), expected);
      assert.equal(parser.workersStarted, 2, 'the overrunning worker was stopped and another started');
    } finally {
      await parser.close();
    }
  });

  test('closing refuses what is still queued and stops the workers', async () => {
    const parser = new DomainParser({ workers: 1 });
    const queued = [parser.parse(hostileDomainXml(160 * 1024), MATCH), parser.parse(hostileDomainXml(16 * 1024), MATCH)].map(refusal);
    await parser.close();
    for (const q of queued) assert.equal((await q).code, 'INTERNAL');
    assert.equal((await refusal(parser.parse(hostileDomainXml(16 * 1024), MATCH))).code, 'INTERNAL');
  });
});
