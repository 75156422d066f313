/**
 * A pool of GPU buffers: creating a buffer (and binding it the first time) is
 * expensive, so activations, KV scratch and weight staging reuse buffers by
 * size class.
 *
 * @module
 */
import type { BufferRef } from "./pipelines.ts";

/** Default usage: storage + copy in both directions. */
export const STORAGE_USAGE: number = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ |
  0x08; /* COPY_DST */

/**
 * Rounds `size` up to its pool size class: multiples of 256 bytes up to 4 KiB,
 * then 8 classes per power of two (≤ 12.5 % waste).
 *
 * @example
 * ```ts
 * import { sizeClass } from "./pool.ts";
 * console.log(sizeClass(1), sizeClass(1000), sizeClass(5000)); // 256 1024 5120
 * ```
 */
export function sizeClass(size: number): number {
  const s = Math.max(256, Math.ceil(size / 256) * 256);
  if (s <= 4096) return s;
  const step = 2 ** (Math.floor(Math.log2(s)) - 3);
  return Math.ceil(s / step) * step;
}

/**
 * Buffer pool keyed by (size class, usage).
 *
 * @example
 * ```ts ignore
 * import { BufferPool } from "./pool.ts";
 * const pool = new BufferPool(gpu.device);
 * const buf = pool.acquire(4096 * 4, "hidden");
 * // ... use buf, then:
 * pool.release(buf);
 * ```
 */
export class BufferPool {
  #device: GPUDevice;
  #free = new Map<string, GPUBuffer[]>();
  #bytes = 0;

  /** Creates an empty pool on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Bytes of every buffer this pool created and has not destroyed. */
  get bytesAllocated(): number {
    return this.#bytes;
  }

  /** Returns a buffer of at least `size` bytes with `usage` (default storage + copies). */
  acquire(
    size: number,
    label?: string,
    usage: number = STORAGE_USAGE,
  ): GPUBuffer {
    const cls = sizeClass(size);
    const list = this.#free.get(`${cls}:${usage}`);
    const hit = list?.pop();
    if (hit) return hit;
    this.#bytes += cls;
    return this.#device.createBuffer({
      label: label ?? `pool-${cls}`,
      size: cls,
      usage,
    });
  }

  /** Returns `buffer` to the pool for reuse (it must not be in use by pending work you still record). */
  release(buffer: GPUBuffer): void {
    const key = `${buffer.size}:${buffer.usage}`;
    let list = this.#free.get(key);
    if (!list) this.#free.set(key, list = []);
    list.push(buffer);
  }

  /** Destroys every free buffer (buffers still acquired are left alone). */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        this.#bytes -= b.size;
        b.destroy();
      }
    }
    this.#free.clear();
  }
}

/**
 * A {@link BufferRef} covering `buffer` (or `size` bytes from `offset`).
 *
 * @example
 * ```ts ignore
 * import { ref } from "./pool.ts";
 * const r = ref(buf); // { buffer: buf, offset: 0, size: buf.size }
 * ```
 */
export function ref(buffer: GPUBuffer, offset = 0, size?: number): BufferRef {
  return { buffer, offset, size: size ?? buffer.size - offset };
}

/**
 * Reads `src` back to the CPU (one copy + one mapAsync; ≥ 10 ms in Deno, so
 * do it once per forward pass).
 *
 * @example
 * ```ts ignore
 * import { readBack } from "./pool.ts";
 * const logits = new Float32Array(await readBack(device, outRef));
 * ```
 */
export async function readBack(
  device: GPUDevice,
  src: BufferRef,
): Promise<ArrayBuffer> {
  const size = Math.ceil(src.size / 4) * 4;
  const staging = device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src.buffer, src.offset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, src.size);
  staging.unmap();
  staging.destroy();
  return out;
}
