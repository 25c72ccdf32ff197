// Committing in groups (instances/groupCommit.ts) and the metadata warnings a registration logs
// (instances/warnings.ts), without a server.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GroupCommit } from '../src/instances/groupCommit.js';
import { metadataWarnings } from '../src/instances/warnings.js';

/** A commit that records each group it is given and answers item -> item * 10, or an Error for negatives. */
function recorder() {
  const groups: number[][] = [];
  const commit = (items: readonly number[]) => {
    groups.push([...items]);
    return Promise.resolve(items.map((i) => (i < 0 ? new Error(`refused ${i}`) : i * 10)));
  };
  return { groups, commit };
}

const settled = <T>(p: Promise<T>) => p.then((v) => ({ ok: v }), (e: Error) => ({ error: e.message }));

describe('GroupCommit', () => {
  test('what is submitted in one turn of the event loop is committed as one group, in order', async () => {
    const r = recorder();
    const g = new GroupCommit(r.commit);
    const got = await Promise.all([g.submit(1), g.submit(2), g.submit(3)]);
    assert.deepEqual(got, [10, 20, 30]);
    assert.deepEqual(r.groups, [[1, 2, 3]]);
  });

  test('submissions in later turns make later groups', async () => {
    const r = recorder();
    const g = new GroupCommit(r.commit);
    await g.submit(1);
    await Promise.all([g.submit(2), g.submit(3)]);
    assert.deepEqual(r.groups, [[1], [2, 3]]);
  });

  test("an item's own error fails that item alone", async () => {
    const g = new GroupCommit(recorder().commit);
    const got = await Promise.all([g.submit(1), g.submit(-2), g.submit(3)].map(settled));
    assert.deepEqual(got, [{ ok: 10 }, { error: 'refused -2' }, { ok: 30 }]);
  });

  test('a commit that fails fails every item of its group, and the next group is committed', async () => {
    let fail = true;
    const g = new GroupCommit((items: readonly number[]) => (fail ? Promise.reject(new Error('disk full')) : Promise.resolve([...items])));
    const got = await Promise.all([g.submit(1), g.submit(2)].map(settled));
    assert.deepEqual(got, [{ error: 'disk full' }, { error: 'disk full' }]);
    fail = false;
    assert.equal(await g.submit(3), 3);
  });

  test('while a commit is in flight, what arrives gathers into the next group', async () => {
    const groups: number[][] = [];
    let release = (): void => {};
    const g = new GroupCommit<number, number>((items) => {
      groups.push([...items]);
      // The first commit waits until released, as a commit over a network would.
      return groups.length === 1 ? new Promise<number[]>((resolve) => (release = () => resolve([...items]))) : Promise.resolve([...items]);
    });
    const first = g.submit(1);
    await new Promise((r) => setImmediate(r));
    const later = [g.submit(2), g.submit(3)];
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(groups, [[1]], 'nothing else is committed while the first commit is in flight');
    release();
    assert.deepEqual(await Promise.all([first, ...later]), [1, 2, 3]);
    assert.deepEqual(groups, [[1], [2, 3]]);
  });
});

describe('metadataWarnings', () => {
  const cases: [string, Record<string, string>, RegExp[]][] = [
    ['nothing for well-formed overrides and tag keys', { availability_zone: 'lab-1a', instance_type: 'm1.small', Team: 'storage' }, []],
    ['an override that is ignored, saying what was expected', { availability_zone: 'two words' }, [/^mdserver:availability_zone = "two words" is ignored: expected a zone name/]],
    ['a key EC2 would not accept as a tag', { 'a b': 'x' }, [/^mdserver:a b is not served as an instance tag: EC2 tag keys/]],
    ['a reserved tag key', { _index: 'x' }, [/^mdserver:_index is not served as an instance tag: EC2 reserves/]],
    ['overrides first, then tag keys', { 'a b': 'x', instance_type: 'a b' }, [/^mdserver:instance_type = /, /^mdserver:a b is not served/]],
  ];
  for (const [label, metadata, expected] of cases) {
    test(label, () => {
      const got = metadataWarnings(metadata);
      assert.equal(got.length, expected.length, got.join('\n'));
      expected.forEach((re, i) => assert.match(got[i] ?? '', re));
    });
  }
});
