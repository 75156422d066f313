import assert from "node:assert/strict";
import { DropBehind } from "../../lib/split/_drop_behind.ts";
import { pageCache, resident } from "./_page_cache.ts";

const MiB = 1 << 20;

Deno.test({
  name:
    "drop-behind: pages behind the lag leave the page cache, the rest stay, the bytes are intact",
  ignore: !pageCache,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/out`;
      const size = 24 * MiB;
      const data = new Uint8Array(size).map((_, i) => (i * 131 + 7) & 255);
      const f = await Deno.open(path, { write: true, create: true });
      const drop = DropBehind.open(path, { lag: 8 * MiB, step: 4 * MiB });
      assert.ok(drop, "Linux with FFI: drop-behind available");
      for (let at = 0; at < size; at += 2 * MiB) {
        for (let done = 0; done < 2 * MiB;) {
          done += await f.write(data.subarray(at + done, at + 2 * MiB));
        }
        drop.advance(at + 2 * MiB);
      }
      await drop.drain();
      await drop.close();
      const pages = (n: number) => n / 4096;
      // [0, 16 MiB) is 8 MiB behind the 24 MiB written: flushed and dropped
      const behind = resident(path, 16 * MiB);
      const all = resident(path, size);
      assert.ok(behind <= pages(MiB), `${behind} pages of the first 16 MiB`);
      assert.ok(
        all - behind >= pages(7 * MiB),
        `${all - behind} pages of the last 8 MiB`,
      );
      await f.sync();
      f.close();
      assert.deepEqual(await Deno.readFile(path), data);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("drop-behind: nothing is flushed or dropped within the lag", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, new Uint8Array(4 * MiB).fill(3));
    const drop = DropBehind.open(path, { lag: 4 * MiB, step: MiB });
    if (!drop) return; // not Linux, or no FFI
    drop.advance(4 * MiB);
    await drop.drain();
    await drop.close();
    if (pageCache) assert.equal(resident(path, 4 * MiB), 4 * MiB / 4096);
    assert.deepEqual(
      await Deno.readFile(path),
      new Uint8Array(4 * MiB).fill(3),
    );
  } finally {
    await Deno.remove(path);
  }
});
