/**
 * The floor of a split, measured on this machine: how fast the source can be
 * read sequentially (warm: read once, timed the second time) and how fast
 * the output disk takes a sequential write that is fdatasync'd. The split
 * cannot beat min(read, write × source bytes / output bytes).
 *
 * @module
 */
import { syncedWriteRate, warmReadRate } from "../_io_rate.ts";

/** What {@link measureSplitFloor} measured. */
export interface SplitFloor {
  /** Warm sequential read of the source, bytes/s. */
  readBps: number;
  /** Sequential write + fdatasync in the output directory, bytes/s. */
  writeBps: number;
  /** Source bytes / output bytes of this split. */
  ratio: number;
  /** min(readBps, writeBps × ratio): the split's floor in source bytes/s. */
  bps: number;
  /** Bytes each probe used. */
  probeBytes: number;
  /** Bytes per read or write call of the probes (the split's copy piece). */
  chunkBytes: number;
}

/**
 * Measures the floor of a split of `sourceBytes` into `outputBytes`, with
 * probes of `probeBytes` (default: 256 MiB, at most the source size) read
 * and written `chunkBytes` a call (default 2 MiB, the split's copy piece:
 * the fastest size measured here, so the floor is not lowered by a probe
 * slower than the split could be).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { measureSplitFloor } from "./_floor.ts";
 * const d = await Deno.makeTempDir();
 * const src = `${d}/src`;
 * await Deno.writeFile(src, new Uint8Array(1 << 20));
 * const f = await measureSplitFloor({ files: [src], dir: d, sourceBytes: 2, outputBytes: 1, probeBytes: 1 << 20 });
 * assert.equal(f.bps, Math.min(f.readBps, 2 * f.writeBps));
 * await Deno.remove(d, { recursive: true });
 * ```
 */
export async function measureSplitFloor(o: {
  files: string[];
  dir: string;
  sourceBytes: number;
  outputBytes: number;
  probeBytes?: number;
  chunkBytes?: number;
}): Promise<SplitFloor> {
  const probe = Math.max(
    1 << 20,
    Math.min(o.probeBytes ?? 256 << 20, o.sourceBytes),
  );
  const chunk = o.chunkBytes ?? 2 << 20;
  const readBps = await warmReadRate(o.files, probe, { chunk });
  const writeBps = await syncedWriteRate(o.dir, probe, { chunk });
  const ratio = o.sourceBytes / Math.max(o.outputBytes, 1);
  return {
    readBps,
    writeBps,
    ratio,
    bps: Math.min(readBps, writeBps * ratio),
    probeBytes: probe,
    chunkBytes: chunk,
  };
}
