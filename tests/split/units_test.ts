/** lib/_units.ts and lib/_fs.ts: the helpers split, info, the engine and the hub share. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { formatBytes } from "../../lib/_units.ts";
import {
  crc32File,
  crc32Hex,
  exists,
  readFully,
  sha256File,
} from "../../lib/_fs.ts";
import { FormatError } from "../../lib/errors.ts";
import { crc32Bytes, tempDir } from "./_helpers.ts";

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

Deno.test("exists, crc32File, sha256File, readFully", async () => {
  const [dir, cleanup] = await tempDir();
  try {
    const p = join(dir, "a.bin");
    const bytes = new Uint8Array(100).map((_, i) => i);
    await Deno.writeFile(p, bytes);
    assert.equal(await exists(p), true);
    assert.equal(await exists(join(dir, "missing")), false);
    const want = createHash("sha256").update(bytes).digest("hex");
    assert.equal(await sha256File(p), want);
    assert.deepEqual(await crc32File(p, { sync: true }), {
      crc32: crc32Bytes(bytes),
      size: 100,
    });
    // Across several 8 MiB chunks (the running value carries over).
    const big = join(dir, "big.bin");
    const b = new Uint8Array((8 << 20) * 2 + 12345).map((_, i) => i * 7 + 3);
    await Deno.writeFile(big, b);
    assert.deepEqual(await crc32File(big), {
      crc32: crc32Bytes(b),
      size: b.length,
    });
    assert.equal(
      await sha256File(big),
      createHash("sha256").update(b).digest("hex"),
    );
    const empty = join(dir, "empty.bin");
    await Deno.writeFile(empty, new Uint8Array(0));
    assert.deepEqual(await crc32File(empty), { crc32: "00000000", size: 0 });
    assert.equal(crc32Hex(0xcbf43926), "cbf43926");
    assert.equal(crc32Hex(-1), "ffffffff");
    assert.equal(crc32Hex(5), "00000005");
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
