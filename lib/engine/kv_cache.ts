/**
 * The KV cache: per decoder layer, one K and one V buffer on the GPU, f32
 * `[maxSeqLen, nKvHeads * headDim]` (row = position). The forward pass copies
 * the new rows in with `copyBufferToBuffer`; attention reads rows
 * `0..pos0+T-1`. Its bytes are counted in the residency plan.
 *
 * @module
 */
import { BudgetError, UsageError } from "../errors.ts";
import type { BufferRef } from "../gpu/kernels.ts";
import type { ModelConfig } from "../model/config.ts";

/** Default cap on the sequence length when none is given: 4096 positions. */
export const DEFAULT_MAX_SEQ_LEN = 4096;

/**
 * Bytes of one layer's K + V for `maxSeqLen` positions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvBytesPerLayer } from "./kv_cache.ts";
 * assert.equal(kvBytesPerLayer({ numKvHeads: 2, headDim: 16 }, 128), 32768);
 * ```
 */
export function kvBytesPerLayer(
  cfg: Pick<ModelConfig, "numKvHeads" | "headDim">,
  maxSeqLen: number,
): number {
  return 2 * maxSeqLen * cfg.numKvHeads * cfg.headDim * 4;
}

/**
 * The default maximum sequence length: min(max_position_embeddings, 4096).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultMaxSeqLen } from "./kv_cache.ts";
 * assert.equal(defaultMaxSeqLen({ maxPositionEmbeddings: 131072 }), 4096);
 * ```
 */
export function defaultMaxSeqLen(
  cfg: Pick<ModelConfig, "maxPositionEmbeddings">,
): number {
  return Math.min(cfg.maxPositionEmbeddings, DEFAULT_MAX_SEQ_LEN);
}

/**
 * Per-layer K/V buffers and the number of positions filled.
 *
 * @example
 * ```ts ignore
 * import { KvCache } from "./kv_cache.ts";
 * const kv = new KvCache(gpu.device, cfg, 512);
 * const { k, v } = kv.layer(0); // BufferRefs of [512, nKv*hd] f32
 * kv.destroy();
 * ```
 */
export class KvCache {
  /** Positions each buffer holds. */
  readonly maxSeqLen: number;
  /** Floats per row: nKvHeads * headDim. */
  readonly rowFloats: number;
  /** Positions already written (the next token's position). */
  length = 0;
  #k: GPUBuffer[] = [];
  #v: GPUBuffer[] = [];

  /** Allocates K and V for every layer. */
  constructor(
    device: GPUDevice,
    cfg: ModelConfig,
    maxSeqLen: number,
    maxBinding = Infinity,
  ) {
    if (!Number.isSafeInteger(maxSeqLen) || maxSeqLen < 1) {
      throw new UsageError(
        `maxSeqLen must be a positive integer, got ${maxSeqLen}`,
      );
    }
    this.maxSeqLen = maxSeqLen;
    this.rowFloats = cfg.numKvHeads * cfg.headDim;
    const size = maxSeqLen * this.rowFloats * 4;
    if (size > maxBinding) {
      throw new BudgetError(
        `KV cache of ${maxSeqLen} positions needs ${size} bytes per layer, over the ${maxBinding}-byte storage binding limit; lower --max-seq-len`,
      );
    }
    for (let i = 0; i < cfg.numLayers; i++) {
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST |
        GPUBufferUsage.COPY_SRC;
      this.#k.push(device.createBuffer({ label: `k_cache.${i}`, size, usage }));
      this.#v.push(device.createBuffer({ label: `v_cache.${i}`, size, usage }));
    }
  }

  /** Bytes of all buffers. */
  get bytes(): number {
    return this.#k.length * 2 * this.maxSeqLen * this.rowFloats * 4;
  }

  /** Layer `i`'s K and V caches. */
  layer(i: number): { k: BufferRef; v: BufferRef } {
    const size = this.maxSeqLen * this.rowFloats * 4;
    return {
      k: { buffer: this.#k[i], offset: 0, size },
      v: { buffer: this.#v[i], offset: 0, size },
    };
  }

  /** Byte offset of row `pos` in a layer's K or V buffer. */
  rowOffset(pos: number): number {
    return pos * this.rowFloats * 4;
  }

  /** Forgets all positions (the buffers are kept). */
  reset(): void {
    this.length = 0;
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    for (const b of [...this.#k, ...this.#v]) b.destroy();
    this.#k = [];
    this.#v = [];
  }
}
