/**
 * One chunk of rows of a float weight turned into a packed encoding: the
 * single call the split makes per chunk (in a worker, or on the main thread
 * when workers are unavailable). The float bytes are decoded into a reused
 * f32 scratch buffer, then packed by the encoding's codec in the registry
 * (lib/quant/encoding.ts); q8 and q4 go through the WebAssembly SIMD packer
 * (_simd_quant.ts), byte-identical to their codecs.
 *
 * @module
 */
import { f16Table, f32ToF16 } from "../quant/half.ts";
import {
  encoding,
  type FloatDtype,
  type PackedName,
  type PackedWeight,
} from "../quant/encoding.ts";
import {
  isSimdInput,
  isSimdMemory,
  quantizeSimd,
  quantizeSimdWide,
  simdInput,
  simdRawInput,
  simdWiden,
} from "./_simd_quant.ts";
import { FormatError, UsageError } from "../errors.ts";
import { crc32 } from "node:zlib";

let scratch = new Float32Array(0);

/**
 * Decodes little-endian F32/F16/BF16 `bytes` into `out` (which must hold
 * `bytes.length / elementSize` floats); returns the filled view.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRows } from "./_quant_rows.ts";
 * const w = decodeRows(new Uint8Array([0, 0x3c, 0, 0xc0]), "F16", new Float32Array(2));
 * assert.deepEqual([...w], [1, -2]);
 * ```
 */
export function decodeRows(
  bytes: Uint8Array,
  dtype: FloatDtype,
  out: Float32Array,
): Float32Array {
  const size = dtype === "F32" ? 4 : 2;
  const n = bytes.length / size;
  if (!Number.isInteger(n) || out.length < n) {
    throw new UsageError(
      `decodeRows: ${bytes.length} bytes of ${dtype} into ${out.length} floats`,
    );
  }
  const w = out.subarray(0, n);
  if (dtype === "F32") {
    new Uint8Array(w.buffer, w.byteOffset, bytes.length).set(bytes);
    return w;
  }
  const src = bytes.byteOffset % 2 === 0
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
    : new Uint16Array(bytes.slice().buffer);
  if (dtype === "F16") {
    const t = f16Table();
    for (let i = 0; i < n; i++) w[i] = t[src[i]];
  } else {
    const o = new Uint32Array(w.buffer, w.byteOffset, n);
    for (let i = 0; i < n; i++) o[i] = src[i] << 16;
  }
  return w;
}

/**
 * Packs `rows` rows of `cols` f32 values as `kind` (the encoding's codec;
 * rows placed in the SIMD module's memory by {@link simdInput} are packed
 * there when `kind` is q8 or q4, with the same bytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeRows } from "./_quant_rows.ts";
 * const q = quantizeRows("q4", new Float32Array([-8, 4]), 1, 2);
 * assert.equal(q.data[0], 0x80);
 * ```
 */
export function quantizeRows(
  kind: PackedName,
  w: Float32Array,
  rows: number,
  cols: number,
  out: ArrayBuffer[] = [],
): PackedWeight {
  if (
    (kind === "q8" || kind === "q4") && isSimdInput(w) &&
    w.length === rows * cols
  ) {
    const q = quantizeSimd(kind, rows, cols, f32ToF16, out);
    if (q) return q;
  }
  return encoding(kind).encode(w, rows, cols);
}

/**
 * Decodes and packs one chunk of rows, reusing a module-level scratch
 * buffer (or the SIMD module's memory) for the f32 copy; `out` may hold
 * spare buffers the SIMD packer writes its result into instead of new
 * memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeChunk } from "./_quant_rows.ts";
 * const bytes = new Uint8Array(new Float32Array([-8, 4]).buffer);
 * const q = quantizeChunk({ kind: "q4", dtype: "F32", bytes, rows: 1, cols: 2 });
 * assert.equal(q.data[0], 0x80);
 * ```
 */
export function quantizeChunk(job: {
  kind: PackedName;
  dtype: FloatDtype;
  bytes: Uint8Array;
  rows: number;
  cols: number;
  out?: ArrayBuffer[];
}): PackedWeight {
  const n = job.rows * job.cols;
  if ((job.kind === "q8" || job.kind === "q4") && job.dtype !== "F32") {
    // widened in registers and packed in one pass
    const q = quantizeSimdWide(
      job.kind,
      job.dtype,
      job.bytes,
      job.rows,
      job.cols,
      f32ToF16,
      job.out,
    );
    if (q) return q;
  }
  let into = job.kind === "q8" || job.kind === "q4" ? simdInput(n) : null;
  if (!into) {
    if (scratch.length < n) scratch = new Float32Array(n);
    into = scratch;
  }
  const w = job.dtype !== "F32" && isSimdInput(into) &&
      simdWiden(job.bytes, job.dtype, n)
    ? into
    : decodeRows(job.bytes, job.dtype, into);
  const q = quantizeRows(job.kind, w, job.rows, job.cols, job.out);
  // data and scales are recycled separately once written: never one buffer
  if (q.scales && q.scales.buffer === q.data.buffer) {
    return { data: q.data, scales: q.scales.slice() };
  }
  return q;
}

/** Files the chunks are read from, open for the life of this thread. */
const files = new Map<string, Deno.FsFile>();

/** Fills `into` from absolute `offset` of `path` (synchronous: a worker thread). */
function readAt(path: string, offset: number, into: Uint8Array): void {
  let f = files.get(path);
  if (!f) {
    f = Deno.openSync(path, { read: true });
    files.set(path, f);
  }
  f.seekSync(offset, Deno.SeekMode.Start);
  for (let got = 0; got < into.length;) {
    const n = f.readSync(into.subarray(got));
    if (n === null || n === 0) {
      throw new FormatError(
        path,
        `ends before byte ${offset + into.length} (a tensor's data)`,
      );
    }
    got += n;
  }
}

/** Rows packed by a worker that wrote them out itself: their length and CRC-32. */
export interface WrittenRows {
  bytes: number;
  crc: number;
}

/**
 * A chunk's packed rows: in memory, or (with `written`) already written to
 * the output file, `data` then empty.
 */
export type PackedChunk = PackedWeight & { written?: WrittenRows };

/** Rows to read from a file and pack ({@link quantizeFileChunk}). */
export interface FileChunkJob {
  kind: PackedName;
  dtype: FloatDtype;
  /** `length` bytes at absolute `offset` of `path`. */
  file: { path: string; offset: number; length: number };
  rows: number;
  cols: number;
  /** Spare buffers to pack into. */
  out?: ArrayBuffer[];
}

/**
 * {@link quantizeChunk} of rows this thread reads itself from `file`
 * (`length` bytes at absolute `offset` of `path`): F16/BF16 into q8/q4 go
 * straight into the SIMD module's memory, no copy on the way; anything
 * else is read into a buffer first. The same bytes as {@link quantizeChunk}.
 * With `dest`, the packed rows are also written at absolute `dest.offset`
 * of the existing file `dest.path` (straight from the SIMD module's memory)
 * and the result carries their length and CRC-32 (`written`) with empty
 * `data`; a buffer the rows were packed into goes back to `out`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeFileChunk } from "./_quant_rows.ts";
 * const path = Deno.makeTempFileSync();
 * Deno.writeFileSync(path, new Uint8Array(new Float32Array([0, -8, 4]).buffer));
 * const q = quantizeFileChunk({ kind: "q4", dtype: "F32", rows: 1, cols: 2,
 *   file: { path, offset: 4, length: 8 } });
 * assert.equal(q.data[0], 0x80);
 * Deno.removeSync(path);
 * ```
 */
export function quantizeFileChunk(
  job: FileChunkJob & { dest?: { path: string; offset: number } },
): PackedChunk {
  const q = packFileChunk(job, job.dest !== undefined);
  if (!job.dest) return q;
  writeAt(job.dest.path, job.dest.offset, q.data);
  const written = { bytes: q.data.length, crc: crc32(q.data) };
  // a buffer of its own (not the module's memory) goes back as a spare
  if (!isSimdMemory(q.data.buffer) && q.data.buffer !== q.scales?.buffer) {
    job.out?.push(q.data.buffer as ArrayBuffer);
  }
  return { data: new Uint8Array(0), scales: q.scales, written };
}

/** Writes `bytes` at absolute `offset` of the existing file `path`. */
function writeAt(path: string, offset: number, bytes: Uint8Array): void {
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(path, { write: true });
    f.seekSync(offset, Deno.SeekMode.Start);
    for (let done = 0; done < bytes.length;) {
      done += f.writeSync(bytes.subarray(done));
    }
  } catch (e) {
    throw new FormatError(path, `cannot write: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    f?.close();
  }
}

/** {@link quantizeFileChunk}'s packing; `view`: see quantizeSimdWide. */
function packFileChunk(job: FileChunkJob, view: boolean): PackedWeight {
  const { path, offset, length } = job.file;
  const n = job.rows * job.cols;
  if (
    (job.kind === "q8" || job.kind === "q4") && job.dtype !== "F32" &&
    length === n * 2 && job.cols % 32 === 0
  ) {
    const raw = simdRawInput(n);
    if (raw) {
      readAt(path, offset, raw);
      const q = quantizeSimdWide(
        job.kind,
        job.dtype,
        null,
        job.rows,
        job.cols,
        f32ToF16,
        job.out,
        view,
      );
      if (q) return q;
      // a NaN or an overflowing scale: the general path, bytes read again
    }
  }
  const bytes = new Uint8Array(length);
  readAt(path, offset, bytes);
  return quantizeChunk({ ...job, bytes });
}
