/**
 * The read-only file maps the reader uploads streamed layers from: the mapped
 * bytes equal the file's, read-ahead advice is accepted, and mapping is
 * refused (null) where it cannot work, so the reader falls back to reads.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { canMap, mapFile } from "../../lib/engine/_mmap.ts";

Deno.test({
  name:
    "mmap: a mapped file holds the file's bytes; WILLNEED advice is accepted",
  ignore: !canMap(),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "strata-mmap-" });
    try {
      const path = join(dir, "layer.bin");
      const bytes = new Uint8Array(3 * 4096 + 123);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
      await Deno.writeFile(path, bytes);
      const m = mapFile(path, bytes.length);
      assert.ok(m, "mapping works where canMap() says so");
      try {
        assert.deepEqual(m.bytes, bytes);
        assert.equal(m.willNeed(), true);
      } finally {
        m.unmap();
      }
      assert.equal(m.willNeed(), false, "no advice after unmap");
      assert.equal(mapFile(join(dir, "missing.bin"), 10), null);
      assert.equal(mapFile(path, 0), null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
