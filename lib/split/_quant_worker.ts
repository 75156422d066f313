/**
 * Worker entry of the split's quantization pool (see _quant_pool.ts): each
 * message is one chunk of rows; the reply transfers the packed rows back,
 * and the input buffer with them (to be read into again).
 *
 * @module
 */
import type { FloatDtype, PackedName } from "../quant/encoding.ts";
import { quantizeChunk, quantizeFileChunk } from "./_quant_rows.ts";

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
}

// deno-lint-ignore no-explicit-any
const scope = self as any;
scope.onmessage = (e: MessageEvent<Job>) => {
  const job = e.data;
  try {
    const q = job.file
      ? quantizeFileChunk({ ...job, file: job.file })
      : quantizeChunk({ ...job, bytes: job.bytes! });
    const transfer = new Set<ArrayBufferLike>([q.data.buffer]);
    if (job.bytes) transfer.add(job.bytes.buffer);
    if (q.scales) transfer.add(q.scales.buffer);
    scope.postMessage(
      {
        id: job.id,
        data: q.data,
        scales: q.scales,
        input: job.bytes ?? undefined,
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
