/** lib/_units.ts and lib/_fs.ts: the helpers split, info, the engine and the hub share. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { formatBytes } from "../../lib/_units.ts";
import { exists, hashFile, readFully, sha256File } from "../../lib/_fs.ts";
import { FormatError } from "../../lib/errors.ts";
import { tempDir } from "./_helpers.ts";

Deno.test("formatBytes: binary units (engine plans) and decimal units (split, info)", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1024), "1.00 KiB");
  assert.equal(formatBytes(1536 * 1024), "1.50 MiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.00 GiB");
  assert.equal(formatBytes(5 * 1024 ** 5), "5120.00 TiB");
  assert.equal(formatBytes(999, 1000), "999 B");
  assert.equal(formatBytes(1000, 1000), "1.00 kB");
  assert.equal(formatBytes(12_000_000, 1000), "12.0 MB");
  assert.equal(formatBytes(1536 * 1024 * 1024, 1000), "1.61 GB");
  assert.equal(formatBytes(Infinity, 1000), "Infinity");
});

Deno.test("exists, hashFile, sha256File, readFully", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const p = join(dir, "a.bin");
    const bytes = new Uint8Array(100).map((_, i) => i);
    await Deno.writeFile(p, bytes);
    assert.equal(await exists(p), true);
    assert.equal(await exists(join(dir, "missing")), false);
    const want = createHash("sha256").update(bytes).digest("hex");
    assert.deepEqual(await hashFile(p, { sync: true }), {
      sha256: want,
      size: 100,
    });
    assert.equal(await sha256File(p), want);
    const f = await Deno.open(p);
    try {
      const into = new Uint8Array(10);
      await readFully(p, f, 90, into);
      assert.deepEqual([...into], [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
      await assert.rejects(
        () => readFully(p, f, 95, new Uint8Array(10)),
        (e: Error) => e instanceof FormatError && e.message.includes(p),
      );
    } finally {
      f.close();
    }
  } finally {
    await cleanup();
  }
});
