/**
 * What the layer reader (reader.ts) uploads into and what it counts: the
 * upload target (WebGPU or a fake in tests) and the reader's totals.
 *
 * @module
 */

/** Where uploads go: a GPU (see {@link gpuUploadTarget}) or a fake in tests. */
export interface UploadTarget<B> {
  /** Creates a destination buffer of `size` bytes. */
  create(size: number, label: string): B;
  /** Copies `data` into `buffer` at `offset` (queue-ordered). */
  write(buffer: B, offset: number, data: Uint8Array): void;
  /** Resolves when all submitted work has finished (used without prefetch and in profile mode). */
  wait(): Promise<void>;
  /** Hands the writes issued so far to the queue (an empty submit on WebGPU). */
  flush?(): void;
  /** Frees a buffer. */
  destroy(buffer: B): void;
}

/**
 * The WebGPU upload target: storage buffers written with `queue.writeBuffer`.
 *
 * @example
 * ```ts ignore
 * import { gpuUploadTarget } from "./reader.ts";
 * const target = gpuUploadTarget(gpu.device);
 * const b = target.create(1024, "slot.0");
 * target.write(b, 0, new Uint8Array(1024));
 * ```
 */
export function gpuUploadTarget(device: GPUDevice): UploadTarget<GPUBuffer> {
  return {
    create: (size, label) =>
      device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST |
          GPUBufferUsage.COPY_SRC,
      }),
    write: (buffer, offset, data) =>
      device.queue.writeBuffer(
        buffer,
        offset,
        data.buffer as ArrayBuffer,
        data.byteOffset,
        data.byteLength,
      ),
    wait: () => device.queue.onSubmittedWorkDone(),
    flush: () => device.queue.submit([]),
    destroy: (b) => b.destroy(),
  };
}

/**
 * Bytes of `writeBuffer` between two submits of the staged writes, in
 * uploads of more than twice as many (smaller ones keep the submit their
 * compute makes anyway).
 */
export const FLUSH_BYTES = 16 << 20;

/**
 * A writer of one upload of `total` bytes into `buffer`, as the engine
 * uploads (the reader's ring, its resident layers and the expert store):
 * `chunk`-byte writes (default 1 MiB), and when `total` is over twice
 * {@link FLUSH_BYTES} a flush after every {@link FLUSH_BYTES} written, so
 * that wgpu's staging memory stays small and hot (a 448 MiB unit written
 * without a submit uploaded at 0.12 GB/s on lavapipe). The caller flushes
 * at the end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pieceWriter, type UploadTarget } from "./_upload.ts";
 * const sizes: number[] = [];
 * let flushes = 0;
 * const target = { create: () => 0, write: (_b: number, _o: number, d: Uint8Array) => void sizes.push(d.length),
 *   wait: async () => {}, flush: () => void flushes++, destroy: () => {} } as UploadTarget<number>;
 * pieceWriter(target, 0, 80 << 20)(0, new Uint8Array(80 << 20));
 * assert.deepEqual([sizes.length, flushes], [80, 5]);
 * ```
 */
export function pieceWriter<B>(
  target: UploadTarget<B>,
  buffer: B,
  total: number,
  chunk = 1 << 20,
): (at: number, data: Uint8Array) => void {
  const every = total > 2 * FLUSH_BYTES ? FLUSH_BYTES : Infinity;
  let unflushed = 0;
  return (at, data) => {
    for (let off = 0; off < data.length; off += chunk) {
      const n = Math.min(chunk, data.length - off);
      target.write(buffer, at + off, data.subarray(off, off + n));
      unflushed += n;
      if (unflushed >= every) {
        target.flush?.();
        unflushed = 0;
      }
    }
  };
}

/**
 * Writes `src` (a matrix's bytes straight from a mapped layer file) at `at`
 * with `up`: writeBuffer sizes are multiples of 4, so the body goes as it
 * is and a 1-3 byte tail through a zero-padded copy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeMapped } from "./_upload.ts";
 * const got: [number, number[]][] = [];
 * writeMapped((at, d) => void got.push([at, [...d]]), 8, new Uint8Array([1, 2, 3, 4, 5]));
 * assert.deepEqual(got, [[8, [1, 2, 3, 4]], [12, [5, 0, 0, 0]]]);
 * ```
 */
export function writeMapped(
  up: (at: number, data: Uint8Array) => void,
  at: number,
  src: Uint8Array,
): void {
  const body = src.length & ~3;
  up(at, src.subarray(0, body));
  if (body < src.length) {
    const tail = new Uint8Array(4);
    tail.set(src.subarray(body));
    up(at + body, tail);
  }
}

/** Timing of one streamed load. */
export interface LoadTiming {
  /** Layer index. */
  layer: number;
  /** Which of the layer's streaming units (0 when whole layers stream). */
  part: number;
  /** Wall time of the file read (in the background). */
  readMs: number;
  /** Time the forward pass waited for the read. */
  readWaitMs: number;
  /** Time spent in writeBuffer. */
  uploadMs: number;
  /** Bytes uploaded. */
  bytes: number;
}

/** Totals since the last {@link LayerReader.resetStats}. */
export interface ReaderStats {
  /** Background read time, summed over loads. */
  readS: number;
  /** Time the forward pass waited on reads. */
  readWaitS: number;
  /** Time spent in writeBuffer for streamed layers. */
  uploadS: number;
  /** Time waiting for the GPU (no-prefetch mode only). */
  syncS: number;
  /** Bytes uploaded for streamed layers. */
  bytesStreamed: number;
  /** Per-load timings (kept when profiling). */
  loads: LoadTiming[];
  /**
   * The most streamed units being read or uploaded ahead (read begun or
   * uploaded, not yet computed) at the moment another unit's compute was
   * submitted.
   */
  unitsInFlight: number;
}

/**
 * Totals before any load.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zeroStats } from "./_upload.ts";
 * assert.deepEqual([zeroStats().bytesStreamed, zeroStats().unitsInFlight], [0, 0]);
 * ```
 */
export function zeroStats(): ReaderStats {
  return {
    readS: 0,
    readWaitS: 0,
    uploadS: 0,
    syncS: 0,
    bytesStreamed: 0,
    loads: [],
    unitsInFlight: 0,
  };
}
