/**
 * Worker entry of the split's quantization pool (see _quant_pool.ts): each
 * message is one chunk of rows; the reply transfers the packed rows back.
 *
 * @module
 */
import {
  type FloatDtype,
  quantizeChunk,
  type QuantKind,
} from "./_quant_rows.ts";

interface Job {
  id: number;
  kind: QuantKind;
  dtype: FloatDtype;
  bytes: Uint8Array;
  rows: number;
  cols: number;
}

// deno-lint-ignore no-explicit-any
const scope = self as any;
scope.onmessage = (e: MessageEvent<Job>) => {
  const job = e.data;
  try {
    const q = quantizeChunk(job);
    // the input buffer goes back too, to be read into again
    scope.postMessage(
      { id: job.id, data: q.data, scales: q.scales, input: job.bytes },
      [q.data.buffer, q.scales.buffer, job.bytes.buffer],
    );
  } catch (err) {
    scope.postMessage({
      id: job.id,
      error: String((err as Error)?.message ?? err),
    });
  }
};
