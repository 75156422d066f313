/**
 * Worker entry of the split's quantization pool (see _quant_pool.ts): each
 * message is one chunk of rows; the reply transfers the packed rows back,
 * and the input buffer with them (to be read into again), or, for a job
 * with `dest`, says how many bytes it wrote there and their CRC-32.
 *
 * @module
 */
import type { FloatDtype, PackedName } from "../quant/encoding.ts";
import { quantizeChunk, quantizeFileChunk } from "./_quant_rows.ts";
import { warmSimd } from "./_simd_quant.ts";

interface Job {
  id: number;
  kind: PackedName;
  dtype: FloatDtype;
  /** The float rows, or (with `file`) null: the worker reads them. */
  bytes: Uint8Array | null;
  /** Where to read them: absolute `offset` of `path`, `length` bytes. */
  file?: { path: string; offset: number; length: number };
  rows: number;
  cols: number;
  /** Spare buffers to pack into (output buffers already written). */
  out?: ArrayBuffer[];
  /** Ready this thread for chunks of this many values first (warmSimd). */
  warm?: number;
  /**
   * Write the packed rows (not the scales) here, absolute `offset` of
   * `path`, and reply with their length and CRC-32 instead of them.
   */
  dest?: { path: string; offset: number };
}

// deno-lint-ignore no-explicit-any
const scope = self as any;
scope.onmessage = (e: MessageEvent<Job>) => {
  const job = e.data;
  try {
    // ready for chunks of job.warm values, with spare output buffers (q8
    // sized, touched) for the pool to hand out before any is written back
    const spare: ArrayBuffer[] = [];
    if (job.warm) {
      warmSimd(job.warm);
      for (let i = 0; i < 4; i++) {
        for (const size of [job.warm, Math.ceil(job.warm / 32) * 2]) {
          const b = new ArrayBuffer(size);
          new Uint8Array(b).fill(1);
          spare.push(b);
        }
      }
    }
    const out = job.out ?? [];
    const q = job.file
      ? quantizeFileChunk({ ...job, file: job.file, out })
      : quantizeChunk({ ...job, bytes: job.bytes!, out });
    const written = "written" in q ? q.written : undefined;
    // spare buffers the packing did not use go back (and a written one)
    spare.push(...out);
    const transfer = new Set<ArrayBufferLike>(spare);
    if (!written) transfer.add(q.data.buffer);
    if (job.bytes) transfer.add(job.bytes.buffer);
    if (q.scales) transfer.add(q.scales.buffer);
    scope.postMessage(
      {
        id: job.id,
        data: written ? undefined : q.data,
        written,
        scales: q.scales,
        input: job.bytes ?? undefined,
        spare,
      },
      [...transfer],
    );
  } catch (err) {
    scope.postMessage({
      id: job.id,
      error: String((err as Error)?.message ?? err),
    });
  }
};
