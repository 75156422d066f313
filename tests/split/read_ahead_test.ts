import assert from "node:assert/strict";
import { ReadAhead } from "../../lib/split/_read_ahead.ts";
import { evict, pageCache, resident } from "./_page_cache.ts";

const MiB = 1 << 20;

Deno.test("read-ahead: advises the ranges in order, a window ahead, one call at a time", async () => {
  const calls: string[] = [];
  let running = 0;
  let most = 0;
  const ra = new ReadAhead(
    [
      { path: "a", offset: 100, length: 40 * MiB },
      { path: null, offset: 0, length: 10 * MiB }, // not a file's: passed over
      { path: "b", offset: 7, length: 0 }, // empty: dropped
      { path: "b", offset: 5 * MiB, length: 30 * MiB },
    ],
    32 * MiB,
    async (path, offset, length) => {
      running++;
      most = Math.max(most, running);
      calls.push(`${path}@${offset}+${length / MiB}`);
      await new Promise((r) => setTimeout(r, 1));
      running--;
    },
  );
  ra.advance(0);
  await ra.idle();
  assert.deepEqual(calls, [`a@100+16`, `a@${100 + 16 * MiB}+16`]);
  assert.equal(ra.advised, 32 * MiB);
  ra.advance(10 * MiB); // until 42 MiB: the rest of a, then 2 MiB of null
  ra.advance(5 * MiB); // a position behind the last one changes nothing
  await ra.idle();
  assert.deepEqual(calls.slice(2), [`a@${100 + 32 * MiB}+8`]);
  assert.equal(ra.advised, 42 * MiB);
  ra.advance(60 * MiB); // until 92 MiB: the null range's 8, then b's 30
  await ra.idle();
  assert.deepEqual(calls.slice(3), [
    `b@${5 * MiB}+16`,
    `b@${21 * MiB}+14`,
  ]);
  assert.equal(ra.advised, 80 * MiB);
  assert.equal(most, 1);
  ra.close();
  ra.advance(200 * MiB); // closed: nothing more
  await ra.idle();
  assert.equal(calls.length, 5);
});

Deno.test("read-ahead: a failing advice is passed over", async () => {
  const calls: number[] = [];
  const ra = new ReadAhead(
    [{ path: "x", offset: 0, length: 48 * MiB }],
    48 * MiB,
    (_path, offset) => {
      calls.push(offset / MiB);
      return Promise.reject(new Error("EINVAL"));
    },
  );
  ra.advance(0);
  await ra.idle();
  assert.deepEqual(calls, [0, 16, 32]);
});

// The real advice: pages of a cold file are in the page cache after it.
Deno.test({
  name:
    "read-ahead: the advice brings a cold file's ranges into the page cache",
  ignore: !pageCache,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/src`;
      const size = 8 * MiB;
      await Deno.writeFile(path, new Uint8Array(size).fill(7));
      const f = await Deno.open(path, { read: true, write: true });
      await f.sync(); // clean pages can be dropped
      f.close();
      evict(path);
      const cold = resident(path, size);
      if (cold > size / 4096 / 4) {
        console.log(`  (pages not evicted here: ${cold} resident; skipped)`);
        return;
      }
      // the second half only, 4 MiB ahead of position 0
      const ra = new ReadAhead(
        [{ path, offset: 4 * MiB, length: 4 * MiB }],
        4 * MiB,
      );
      ra.advance(0);
      await ra.idle();
      // the reads were queued, not awaited: give them a moment
      for (let i = 0; i < 100 && resident(path, size) - cold < 1024; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      ra.close();
      const warm = resident(path, size);
      assert.ok(warm - cold >= 1024, `${cold} then ${warm} pages resident`);
      // nothing of the first half was asked for (read-around may add a little)
      const firstHalf = resident(path, 4 * MiB);
      assert.ok(firstHalf <= cold + 64, `first half: ${firstHalf} pages`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
