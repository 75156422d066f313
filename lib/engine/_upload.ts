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
