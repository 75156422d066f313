/**
 * Sequential I/O rates measured on this machine: the floors of a split
 * (lib/split/_floor.ts) and of streaming (lib/engine/predict.ts).
 *
 * @module
 */
import { join } from "node:path";

/** Default bytes per read or write call of the probes. */
const CHUNK = 16 << 20;

/** How the probes read and write. */
export interface ProbeOptions {
  /**
   * Bytes per read or write call (default 16 MiB). Smaller pieces stay in
   * the CPU's cache between the kernel's copy and the next use: on this
   * project's VM 2 MiB reads a warm file at 6.5-6.8 GB/s, 16 MiB at 3-4.5.
   */
  chunk?: number;
}

async function readSome(
  files: string[],
  limit: number,
  chunk: number,
): Promise<number> {
  const buf = new Uint8Array(chunk);
  let total = 0;
  for (const path of files) {
    if (total >= limit) break;
    const f = await Deno.open(path, { read: true });
    try {
      while (total < limit) {
        const n = await f.read(buf.subarray(0, Math.min(chunk, limit - total)));
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
 * warm pass is timed), in bytes/s, reading `opts.chunk` bytes a call.
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
  opts: ProbeOptions = {},
): Promise<number> {
  const chunk = opts.chunk ?? CHUNK;
  await readSome(files, bytes, chunk);
  const t0 = performance.now();
  const n = await readSome(files, bytes, chunk);
  return n / Math.max((performance.now() - t0) / 1000, 1e-6);
}

/**
 * Rate of a sequential write of `bytes` to a temporary file in `dir`,
 * fdatasync'd before the clock stops, in bytes/s, writing `opts.chunk`
 * bytes a call. Like the read, it is timed on the second pass: the first
 * also pays for memory the page cache takes for the first time, which on
 * this project's VM varied 0.3-1.4 GB/s from run to run while the second
 * pass gave 1.25-1.5 (and an unquantized split wrote 1.5 GB, fsynced, at
 * 1.4-1.5 GB/s: a cold probe is no floor). The file is removed.
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
  opts: ProbeOptions = {},
): Promise<number> {
  const path = join(dir, `.strata-floor-${Deno.pid}.partial`);
  const buf = new Uint8Array(Math.min(opts.chunk ?? CHUNK, bytes));
  for (let i = 0; i < buf.length; i += 4096) buf[i] = (i >> 12) & 255; // not all zeros
  const f = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    const pass = async (): Promise<number> => {
      await f.truncate(0);
      await f.seek(0, Deno.SeekMode.Start);
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
    };
    await pass();
    return await pass();
  } finally {
    f.close();
    await Deno.remove(path).catch(() => {});
  }
}
