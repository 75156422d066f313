/**
 * Sequential I/O rates measured on this machine: the floors of a split
 * (lib/split/_floor.ts) and of streaming (lib/engine/predict.ts).
 *
 * @module
 */
import { join } from "node:path";

const CHUNK = 16 << 20;

async function readSome(files: string[], limit: number): Promise<number> {
  const buf = new Uint8Array(CHUNK);
  let total = 0;
  for (const path of files) {
    if (total >= limit) break;
    const f = await Deno.open(path, { read: true });
    try {
      while (total < limit) {
        const n = await f.read(buf.subarray(0, Math.min(CHUNK, limit - total)));
        if (n === null) break;
        total += n;
      }
    } finally {
      f.close();
    }
  }
  return total;
}

/**
 * Sequential read rate of `files` (up to `bytes`, read twice: the second,
 * warm pass is timed), in bytes/s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { warmReadRate } from "./_io_rate.ts";
 * const p = await Deno.makeTempFile();
 * await Deno.writeFile(p, new Uint8Array(1 << 20));
 * assert.ok((await warmReadRate([p], 1 << 20)) > 0);
 * await Deno.remove(p);
 * ```
 */
export async function warmReadRate(
  files: string[],
  bytes: number,
): Promise<number> {
  await readSome(files, bytes);
  const t0 = performance.now();
  const n = await readSome(files, bytes);
  return n / Math.max((performance.now() - t0) / 1000, 1e-6);
}

/**
 * Rate of a sequential write of `bytes` to a temporary file in `dir`,
 * fdatasync'd before the clock stops, in bytes/s. The file is removed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { syncedWriteRate } from "./_io_rate.ts";
 * const d = await Deno.makeTempDir();
 * assert.ok((await syncedWriteRate(d, 1 << 20)) > 0);
 * await Deno.remove(d, { recursive: true });
 * ```
 */
export async function syncedWriteRate(
  dir: string,
  bytes: number,
): Promise<number> {
  const path = join(dir, `.strata-floor-${Deno.pid}.partial`);
  const buf = new Uint8Array(Math.min(CHUNK, bytes));
  for (let i = 0; i < buf.length; i += 4096) buf[i] = (i >> 12) & 255; // not all zeros
  const f = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    const t0 = performance.now();
    let done = 0;
    while (done < bytes) {
      const n = Math.min(buf.length, bytes - done);
      let k = 0;
      while (k < n) k += await f.write(buf.subarray(k, n));
      done += n;
    }
    await f.syncData();
    return done / Math.max((performance.now() - t0) / 1000, 1e-6);
  } finally {
    f.close();
    await Deno.remove(path).catch(() => {});
  }
}
