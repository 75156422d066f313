/**
 * The residency plan: which decoder layers stay on the GPU and which stream
 * through a ring of weight slots, under a GPU memory budget.
 *
 * Counted first (the essentials): the KV cache, the head (final norm +
 * lm_head, or the tied embedding matrix), the activations and the ring slots.
 * Then as many layers as fit stay resident (layers 0..r-1); the rest (r..L-1)
 * stream through the ring. A budget that cannot hold the essentials plus one
 * slot throws a {@link BudgetError} saying how much is needed.
 *
 * WebGPU does not expose how much memory a GPU has, so the default budget is
 * a documented guess ({@link defaultGpuMemory}).
 *
 * @module
 */
import { BudgetError, UsageError } from "../errors.ts";
import { formatBytes } from "../_units.ts";

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  K: 1e3,
  KB: 1e3,
  KIB: 2 ** 10,
  M: 1e6,
  MB: 1e6,
  MIB: 2 ** 20,
  G: 1e9,
  GB: 1e9,
  GIB: 2 ** 30,
  T: 1e12,
  TB: 1e12,
  TIB: 2 ** 40,
};

/**
 * Parses a byte size: a number of bytes, or a string like `"2GB"`, `"512MiB"`,
 * `"1.5 GiB"`, `"1000000"` (decimal units KB/MB/GB, binary KiB/MiB/GiB).
 *
 * @throws {UsageError} for anything else.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSize } from "./plan.ts";
 * assert.deepEqual([parseSize("2GB"), parseSize("512MiB"), parseSize(4096)], [2000000000, 536870912, 4096]);
 * ```
 */
export function parseSize(size: number | string): number {
  if (typeof size === "number") {
    if (!Number.isFinite(size) || size <= 0) {
      throw new UsageError(
        `GPU memory size must be a positive number of bytes, got ${size}`,
      );
    }
    return Math.floor(size);
  }
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(size);
  const unit = m ? UNITS[m[2].toUpperCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new UsageError(
      `bad size '${size}': use bytes or a number with KB/MB/GB (decimal) or KiB/MiB/GiB (binary), e.g. 2GB`,
    );
  }
  return Math.floor(Number(m[1]) * unit);
}

/** What {@link defaultGpuMemory} looks at. */
export interface AdapterFacts {
  /** True for software adapters (lavapipe/llvmpipe, SwiftShader): GPU memory is system RAM. */
  isFallback: boolean;
  /** Largest buffer the device allows. */
  maxBufferSize: number;
  /** System RAM in bytes, when known. */
  systemMemory?: number;
}

/** The assumed memory of a hardware GPU when nothing says otherwise: 8 GiB. */
export const ASSUMED_GPU_MEMORY: number = 8 * 2 ** 30;

/**
 * The default budget. WebGPU does not report a GPU's memory, so:
 * `$STRATA_GPU_MEMORY` when set; on a software adapter (CPU rasterizer) 50 %
 * of system RAM (it is the same memory the host buffers live in); otherwise
 * 75 % of an assumed 8 GiB GPU ({@link ASSUMED_GPU_MEMORY}) — pass
 * `gpuMemory` to use more of a bigger card.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultGpuMemory } from "./plan.ts";
 * if (!Deno.env.get("STRATA_GPU_MEMORY")) {
 *   assert.equal(defaultGpuMemory({ isFallback: false, maxBufferSize: 2 ** 31 }), 6442450944);
 * }
 * ```
 */
export function defaultGpuMemory(a: AdapterFacts): number {
  let env: string | undefined;
  try {
    env = Deno.env.get("STRATA_GPU_MEMORY");
  } catch {
    env = undefined; // no --allow-env
  }
  if (env) {
    try {
      return parseSize(env);
    } catch (e) {
      throw new UsageError(
        `STRATA_GPU_MEMORY='${env}': ${(e as Error).message}`,
      );
    }
  }
  if (a.isFallback && a.systemMemory) return Math.floor(a.systemMemory * 0.5);
  return Math.floor(ASSUMED_GPU_MEMORY * 0.75);
}

/** Input of {@link planResidency}: GPU bytes of everything. */
export interface PlanInput {
  /** The budget in bytes (hard limit). */
  budget: number;
  /** GPU bytes of each decoder layer (as laid out in a slot). */
  layerBytes: number[];
  /** GPU bytes of the head: final norm + lm_head (or the tied embedding matrix). */
  headBytes: number;
  /** GPU bytes of the KV cache for one layer at `maxSeqLen`. */
  kvBytesPerLayer: number;
  /** GPU bytes of the activations, scratch, Params arena and readback buffers. */
  activationBytes: number;
  /** Ring slots wanted when layers stream (3 = prefetch depth 2; 1 without prefetch). */
  slots: number;
}

/** The result of {@link planResidency}. */
export interface ResidencyPlan {
  /** The budget in bytes. */
  budget: number;
  /** Layers kept on the GPU (0..r-1). */
  resident: number[];
  /** Layers streamed through the ring (r..L-1), in order. */
  streamed: number[];
  /** Ring slots (0 when nothing streams). */
  slots: number;
  /** Bytes of one ring slot (largest streamed layer). */
  slotBytes: number;
  /** KV cache bytes (all layers). */
  kvBytes: number;
  /** Head bytes. */
  headBytes: number;
  /** Activation bytes. */
  activationBytes: number;
  /** Resident layer bytes. */
  residentBytes: number;
  /** Everything the plan puts on the GPU (≤ budget). */
  totalBytes: number;
  /** Weight bytes read and uploaded per forward pass (per generated token). */
  bytesStreamedPerToken: number;
}

/**
 * Chooses resident and streamed layers under `budget`: essentials first, then
 * the most resident layers that fit with the ring; if the wanted ring does
 * not fit, fewer slots (down to one) are tried.
 *
 * @throws {BudgetError} when even the essentials plus one slot do not fit.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planResidency } from "./plan.ts";
 * const p = planResidency({ budget: 1000, layerBytes: [200, 200, 200, 200, 200], headBytes: 100,
 *   kvBytesPerLayer: 10, activationBytes: 50, slots: 3 });
 * assert.deepEqual([p.resident, p.streamed, p.slots], [[0], [1, 2, 3, 4], 3]);
 * ```
 */
export function planResidency(input: PlanInput): ResidencyPlan {
  const { budget, layerBytes, headBytes, activationBytes } = input;
  const L = layerBytes.length;
  const kvBytes = input.kvBytesPerLayer * L;
  const essentials = kvBytes + headBytes + activationBytes;
  const prefix = [0];
  for (const b of layerBytes) prefix.push(prefix[prefix.length - 1] + b);
  const make = (r: number, slots: number, slotBytes: number): ResidencyPlan => {
    const residentBytes = prefix[r];
    return {
      budget,
      resident: Array.from({ length: r }, (_, i) => i),
      streamed: Array.from({ length: L - r }, (_, i) => r + i),
      slots,
      slotBytes,
      kvBytes,
      headBytes,
      activationBytes,
      residentBytes,
      totalBytes: essentials + residentBytes + slots * slotBytes,
      bytesStreamedPerToken: prefix[L] - residentBytes,
    };
  };
  if (essentials + prefix[L] <= budget) return make(L, 0, 0);
  for (let want = Math.max(1, input.slots); want >= 1; want--) {
    for (let r = L - 1; r >= 0; r--) {
      const slots = Math.min(want, L - r);
      let slotBytes = 0;
      for (let i = r; i < L; i++) {
        slotBytes = Math.max(slotBytes, layerBytes[i]);
      }
      if (essentials + prefix[r] + slots * slotBytes <= budget) {
        return make(r, slots, slotBytes);
      }
    }
  }
  const minSlot = Math.max(0, ...layerBytes);
  throw new BudgetError(
    `GPU memory budget ${formatBytes(budget)} is too small: the KV cache (${
      formatBytes(kvBytes)
    }), ` +
      `head (${formatBytes(headBytes)}), activations (${
        formatBytes(activationBytes)
      }) and one layer slot ` +
      `(${formatBytes(minSlot)}) need ${
        formatBytes(essentials + minSlot)
      }; raise --gpu-memory or lower --max-seq-len`,
  );
}

/**
 * One paragraph describing a plan (printed on stderr at start). With
 * `uploadBytesPerSecond` it adds the floor the streamed bytes imply.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describePlan, planResidency } from "./plan.ts";
 * const p = planResidency({ budget: 1000, layerBytes: [200, 200, 200, 200, 200], headBytes: 100,
 *   kvBytesPerLayer: 10, activationBytes: 50, slots: 3 });
 * assert.match(describePlan(p, 1e9), /resident layers 0 \(1, 200 B\), streamed layers 1-4 \(4\) through 3 slot/);
 * ```
 */
export function describePlan(
  p: ResidencyPlan,
  uploadBytesPerSecond?: number,
): string {
  const range = (a: number[]) =>
    a.length === 0
      ? "none"
      : a.length === 1
      ? `${a[0]}`
      : `${a[0]}-${a[a.length - 1]}`;
  let s =
    `plan: budget ${formatBytes(p.budget)}, using ${
      formatBytes(p.totalBytes)
    }; ` +
    `resident layers ${range(p.resident)} (${p.resident.length}, ${
      formatBytes(p.residentBytes)
    }), ` +
    `streamed layers ${range(p.streamed)} (${p.streamed.length})`;
  if (p.slots > 0) {
    s += ` through ${p.slots} slot(s) of ${formatBytes(p.slotBytes)}`;
  }
  s += `; KV cache ${formatBytes(p.kvBytes)}, head ${
    formatBytes(p.headBytes)
  }, activations ${formatBytes(p.activationBytes)}; streamed per token ${
    formatBytes(p.bytesStreamedPerToken)
  }`;
  if (uploadBytesPerSecond && p.bytesStreamedPerToken > 0) {
    const t = p.bytesStreamedPerToken / uploadBytesPerSecond;
    s += ` → floor ${(t * 1000).toFixed(1)} ms/token (${
      (1 / t).toFixed(2)
    } tokens/s) at ${(uploadBytesPerSecond / 1e9).toFixed(2)} GB/s upload`;
  }
  return s;
}
