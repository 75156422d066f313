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
  /**
   * GPU bytes of each layer's sub-layer streaming units (lib/engine/_units.ts),
   * in order; null (or absent) for a layer that streams whole only.
   */
  unitBytes?: (number[] | null)[];
  /** The largest buffer a slot may be (maxBufferSize): a bigger layer streams in units. */
  maxSlotBytes?: number;
  /**
   * What streams: "auto" (default) whole layers when a ring of at least 2
   * of them fits (1 without prefetch), else sub-layer units; "matrices"
   * always units.
   */
  units?: "auto" | "matrices";
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
  /** Bytes of one ring slot (the largest streamed unit). */
  slotBytes: number;
  /** What one ring slot holds: a whole layer, or a sub-layer unit (one or a few matrices). */
  unit: "layer" | "matrices";
  /** Units streamed per forward pass (the streamed layers when whole layers stream). */
  streamedUnits: number;
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
 * the most resident layers that fit with the ring. Whole layers stream when
 * a ring of at least 2 of them fits (the wanted slots first, then fewer);
 * otherwise the streamed layers go through the ring in sub-layer units
 * (`unitBytes`: one or a few matrices each), with the wanted slots down to
 * one; a ring of one whole layer is the last resort. Resident layers are
 * always whole.
 *
 * @throws {BudgetError} when even the essentials plus one slot do not fit.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planResidency } from "./plan.ts";
 * const base = { layerBytes: [200, 200, 200, 200, 200], headBytes: 100,
 *   kvBytesPerLayer: 10, activationBytes: 50, slots: 3 };
 * const p = planResidency({ ...base, budget: 1000 });
 * assert.deepEqual([p.resident, p.streamed, p.slots, p.unit], [[0], [1, 2, 3, 4], 3, "layer"]);
 * // two whole-layer slots do not fit beside the essentials: 4 units of 50 bytes per layer do
 * const u = planResidency({ ...base, budget: 560, unitBytes: base.layerBytes.map(() => [50, 50, 50, 50]) });
 * assert.deepEqual([u.resident, u.slots, u.slotBytes, u.unit, u.streamedUnits], [[0], 3, 50, "matrices", 16]);
 * ```
 */
export function planResidency(input: PlanInput): ResidencyPlan {
  const { budget, layerBytes, headBytes, activationBytes } = input;
  const L = layerBytes.length;
  const kvBytes = input.kvBytesPerLayer * L;
  const essentials = kvBytes + headBytes + activationBytes;
  const prefix = [0];
  for (const b of layerBytes) prefix.push(prefix[prefix.length - 1] + b);
  const maxSlot = input.maxSlotBytes ?? Infinity;
  const unitsOf = (i: number) => input.unitBytes?.[i] ?? null;
  const make = (
    r: number,
    slots: number,
    slotBytes: number,
    unit: ResidencyPlan["unit"],
  ): ResidencyPlan => {
    const residentBytes = prefix[r];
    let streamedUnits = L - r, streamedBytes = prefix[L] - residentBytes;
    if (unit === "matrices") {
      streamedUnits = streamedBytes = 0;
      for (let i = r; i < L; i++) {
        streamedUnits += unitsOf(i)!.length;
        streamedBytes += unitsOf(i)!.reduce((a, b) => a + b, 0);
      }
    }
    return {
      budget,
      resident: Array.from({ length: r }, (_, i) => i),
      streamed: Array.from({ length: L - r }, (_, i) => r + i),
      slots,
      slotBytes,
      unit,
      streamedUnits: slots > 0 ? streamedUnits : 0,
      kvBytes,
      headBytes,
      activationBytes,
      residentBytes,
      totalBytes: essentials + residentBytes + slots * slotBytes,
      bytesStreamedPerToken: streamedBytes,
    };
  };
  if (essentials + prefix[L] <= budget) return make(L, 0, 0, "layer");
  // the most resident layers with a ring of `want` slots of `unit`s, or null
  const attempt = (unit: ResidencyPlan["unit"], want: number) => {
    for (let r = L - 1; r >= 0; r--) {
      let slotBytes = 0, units = 0;
      for (let i = r; i < L && slotBytes <= maxSlot; i++) {
        const u = unit === "layer" ? [layerBytes[i]] : unitsOf(i);
        if (u === null) return null; // this layer cannot stream in units
        slotBytes = Math.max(slotBytes, ...u);
        units += u.length;
      }
      if (slotBytes > maxSlot) continue;
      const slots = Math.min(want, units);
      if (essentials + prefix[r] + slots * slotBytes <= budget) {
        return make(r, slots, slotBytes, unit);
      }
    }
    return null;
  };
  const W = Math.max(1, input.slots);
  const auto = input.units !== "matrices";
  let plan: ResidencyPlan | null = null;
  for (let want = W; auto && !plan && want >= Math.min(2, W); want--) {
    plan = attempt("layer", want);
  }
  for (let want = W; !plan && want >= 1; want--) {
    plan = attempt("matrices", want);
  }
  if (!plan && auto && W > 1) plan = attempt("layer", 1);
  if (plan) return plan;
  const smallest = (i: number) =>
    Math.min(
      layerBytes[i] <= maxSlot ? layerBytes[i] : Infinity,
      Math.max(...(unitsOf(i) ?? [Infinity])),
    );
  const minSlot = Math.max(0, ...layerBytes.map((_, i) => smallest(i)));
  throw new BudgetError(
    `GPU memory budget ${formatBytes(budget)} is too small: the KV cache (${
      formatBytes(kvBytes)
    }), ` +
      `head (${formatBytes(headBytes)}), activations (${
        formatBytes(activationBytes)
      }) and one ${
        layerBytes.every((_, i) => smallest(i) === layerBytes[i])
          ? "layer"
          : "streaming unit"
      } slot ` +
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
  if (p.slots > 0 && p.unit === "matrices") {
    s += ` in ${p.streamedUnits} sub-layer units (one or a few matrices)`;
  }
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
