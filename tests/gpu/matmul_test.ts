/**
 * Matmul / matvec kernels (lib/gpu/ops/matmul.ts) against the float64 reference
 * in tests/reference/matmul.ts on seeded random data, for every weight dtype,
 * T = 1 (matvec), B = 3 (small batch) and T = 37 (prefill), odd shapes (K = 37,
 * 100: the generic kernel where K is not a multiple of the vector width; K =
 * 128, 256: the fast kernels), fused bias, weights split into several parts,
 * and 2-D workgroup folding; each in both kernel families (lib/gpu/family.ts:
 * the CPU family's matvec_* / matmul_*, the GPU family's matvec_coop /
 * matmul_tiled), with K = 2080 so that rows have more units than
 * matvec_coop's 64 lanes.
 *
 * Dequantization on the GPU is exact in f32 (f16/bf16 → f32 exactly; q·d is a
 * ≤ 8-bit integer times an f16), so the only error is f32 summation. Tolerance:
 * |gpu − ref| ≤ 1e-6 + rtol · Σ_k |x_k · w_nk|, with rtol per dtype:
 * - f32, f16, bf16, q8: 2e-6 + K · 2⁻²⁴ (f32 rounding of K products and partial sums);
 * - q4: the same times 16: the kernel sums d · (Σ q·x − 8 · Σ x) with nibbles
 *   q ≤ 15, whose partial sums are up to 16× larger than the result's terms.
 */
import assert from "node:assert/strict";
import {
  gpu as sharedGpu,
  gpuTest,
  readF32,
  scratch,
  upload,
} from "../_gpu.ts";
import {
  type Gpu,
  type KernelFamily,
  requestGpu,
} from "../../lib/gpu/device.ts";
import { KernelContext } from "../../lib/gpu/_context.ts";
import {
  type GpuWeight,
  Kernels,
  planWeightParts,
  uploadWeight,
  weightRowBytes,
} from "../../lib/gpu/kernels.ts";
import { matmul, planMatmul } from "../../lib/gpu/ops/matmul.ts";
import {
  type EncodingName as WeightDtype,
  ENCODINGS,
} from "../../lib/quant/encoding.ts";
import { f32ToF16 } from "../../lib/quant/half.ts";
import { quantizeQ8 } from "../../lib/quant/q8.ts";
import { quantizeQ4 } from "../../lib/quant/q4.ts";
import {
  bf16BitsToNumber,
  dequantQ4Ref,
  dequantQ8Ref,
  halfBitsToNumber,
  matmulRef,
} from "../reference/matmul.ts";

/** mulberry32: seeded uniform [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randn(n: number, r: () => number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

interface Packed {
  /** Shard bytes. */
  data: Uint8Array;
  scales?: Uint16Array;
  /** What the bytes decode to, by the independent reference decoders. */
  ref: Float64Array;
}

/** Packs a random [N, K] matrix in `dtype` (q8/q4 via lib/quant, decoded by the test's own reference). */
function pack(
  dtype: WeightDtype,
  N: number,
  K: number,
  r: () => number,
): Packed {
  const w = randn(N * K, r);
  switch (dtype) {
    case "f32":
      return { data: new Uint8Array(w.buffer), ref: Float64Array.from(w) };
    case "f16": {
      const h = new Uint16Array(N * K);
      for (let i = 0; i < h.length; i++) h[i] = f32ToF16(w[i]);
      return {
        data: new Uint8Array(h.buffer),
        ref: Float64Array.from(h, halfBitsToNumber),
      };
    }
    case "bf16": {
      const bits = new Uint32Array(w.buffer);
      const h = new Uint16Array(N * K);
      for (let i = 0; i < h.length; i++) h[i] = bits[i] >>> 16; // truncation is a valid bf16 value
      return {
        data: new Uint8Array(h.buffer),
        ref: Float64Array.from(h, bf16BitsToNumber),
      };
    }
    case "q8": {
      const q = quantizeQ8(w, N, K);
      return {
        data: new Uint8Array(q.data.buffer),
        scales: q.scales,
        ref: dequantQ8Ref(q.data, q.scales, N, K),
      };
    }
    case "q4": {
      const q = quantizeQ4(w, N, K);
      return {
        data: q.data,
        scales: q.scales,
        ref: dequantQ4Ref(q.data, q.scales, N, K),
      };
    }
    default: // the GGUF block encodings: tests/gpu/ggml_kernels_test.ts
      throw new Error(`pack: ${dtype} is tested in ggml_kernels_test.ts`);
  }
}

interface Case {
  dtype: WeightDtype;
  N: number;
  K: number;
  T: number;
  bias?: boolean;
  maxPartBytes?: number;
  seed?: number;
}

async function runCase(
  g: Gpu,
  c: Case,
  ctx = new KernelContext(g),
): Promise<{ parts: number; kernel: string }> {
  const r = rng(c.seed ?? (c.N * 7919 + c.K * 31 + c.T));
  const p = pack(c.dtype, c.N, c.K, r);
  const x = randn(c.T * c.K, r);
  const bias = c.bias ? randn(c.N, r) : undefined;
  const w: GpuWeight = uploadWeight(g, {
    dtype: c.dtype,
    rows: c.N,
    cols: c.K,
    data: p.data,
    scales: p.scales,
    maxPartBytes: c.maxPartBytes,
  });
  const xRef = upload(g, x);
  const out = scratch(g, c.T * c.N * 4);
  const biasRef = bias ? upload(g, bias) : undefined;
  ctx.reset();
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  matmul(ctx, pass, { x: xRef, w, bias: biasRef, out, T: c.T });
  pass.end();
  ctx.flush();
  g.device.queue.submit([enc.finish()]);
  const got = await readF32(g, out, c.T * c.N);
  const want = matmulRef({ x, w: p.ref, bias, T: c.T, N: c.N, K: c.K });
  const rtol = (2e-6 + c.K * 2 ** -24) * (c.dtype === "q4" ? 16 : 1);
  for (let t = 0; t < c.T; t++) {
    for (let n = 0; n < c.N; n++) {
      let mag = 0;
      for (let k = 0; k < c.K; k++) {
        mag += Math.abs(x[t * c.K + k] * p.ref[n * c.K + k]);
      }
      const i = t * c.N + n;
      const tol = 1e-6 + rtol * mag;
      if (!(Math.abs(got[i] - want[i]) <= tol)) {
        assert.fail(
          `${c.dtype} N=${c.N} K=${c.K} T=${c.T}${
            c.bias ? " +bias" : ""
          } parts=${w.parts.length}: ` +
            `out[${t}, ${n}] = ${got[i]}, want ${want[i]} (tol ${
              tol.toExponential(2)
            })`,
        );
      }
    }
  }
  for (const part of w.parts) {
    part.data.buffer.destroy();
    part.scales?.buffer.destroy();
  }
  xRef.buffer.destroy();
  out.buffer.destroy();
  biasRef?.buffer.destroy();
  return {
    parts: w.parts.length,
    kernel: planMatmul(c.dtype, c.K, c.T, g).kernel,
  };
}

// every encoding of the registry (its reference decode: tests/reference/matmul.ts)
// GGUF block types (scales inline) are proven in ggml_kernels_test.ts
const DTYPES: WeightDtype[] = [...ENCODINGS.values()]
  .filter((e) => e.scales !== "inline").map((e) => e.name);
const SHAPES: [number, number][] = [[33, 37], [64, 100], [40, 128], [37, 256]];

// both kernel families (lib/gpu/family.ts) on this adapter, whatever it is
const FAMILIES: KernelFamily[] = ["cpu", "gpu"];
function inFamily(g: Gpu, kernels: KernelFamily): Gpu {
  return { ...g, kernels };
}

for (const family of FAMILIES) {
  for (const dtype of DTYPES) {
    gpuTest(
      `matmul ${dtype} (${family} kernels): T = 1, B = 3, T = 37 over odd shapes`,
      async (g0) => {
        const g = inFamily(g0, family);
        const kernels = new Set<string>();
        // K = 2080: more units per row than the GPU family's 64 lanes (65 q4 blocks, 260 f16 words)
        for (const [N, K] of [...SHAPES, [9, 2080]]) {
          for (const T of [1, 3, 37]) {
            kernels.add((await runCase(g, { dtype, N, K, T })).kernel);
          }
        }
        // both the fast kernels and the generic fallback were exercised
        const [mv, mm] = family === "cpu"
          ? [`matvec_${dtype}`, `matmul_${dtype}`]
          : [`matvec_coop_${dtype}`, `matmul_tiled_${dtype}`];
        assert.ok(
          kernels.has(mv) && kernels.has(mm) && kernels.has("matmul_generic"),
          [...kernels].join(", "),
        );
      },
    );

    gpuTest(`matmul ${dtype} (${family} kernels): fused bias`, async (g0) => {
      const g = inFamily(g0, family);
      for (const [N, K] of [[33, 37], [36, 256]] as [number, number][]) {
        for (const T of [1, 5]) {
          await runCase(g, { dtype, N, K, T, bias: true });
        }
      }
    });

    gpuTest(
      `matmul ${dtype} (${family} kernels): weight split into several parts`,
      async (g0) => {
        const g = inFamily(g0, family);
        for (const [N, K] of [[70, 128], [45, 37]] as [number, number][]) {
          const [rb, sb] = weightRowBytes(dtype, K);
          const maxPartBytes = Math.max(rb, sb) * 16; // 16 rows per part
          for (const T of [1, 6]) {
            const { parts } = await runCase(g, {
              dtype,
              N,
              K,
              T,
              bias: true,
              maxPartBytes,
            });
            assert.equal(parts, Math.ceil(N / 16));
          }
        }
      },
    );
  }
}

// On a device with `subgroups` the GPU family reduces with subgroupAdd (above); prove its workgroup-memory
// reduction there too. (Deno's lavapipe and llvmpipe have no `subgroups`: there the tests above run it.)
Deno.test({
  name:
    "matmul (gpu kernels): the workgroup-memory reduction on a device with subgroups",
  ignore: !sharedGpu?.subgroups,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const g: Gpu = { ...sharedGpu!, kernels: "gpu", subgroups: false };
    for (const dtype of DTYPES) {
      for (const [N, K] of [[40, 128], [9, 2080]] as [number, number][]) {
        assert.equal(planMatmul(dtype, K, 1, g).variant.slice(0, 2), "wg");
        await runCase(g, { dtype, N, K, T: 1, bias: true });
      }
    }
  },
});

gpuTest(
  "matmul: dispatches above maxComputeWorkgroupsPerDimension fold into 2-D",
  async (g) => {
    for (const kernels of FAMILIES) {
      const folded: Gpu = {
        ...g,
        kernels,
        limits: { ...g.limits, maxComputeWorkgroupsPerDimension: 2 },
      };
      for (const dtype of ["f32", "q4"] as WeightDtype[]) {
        for (
          const [K, T] of [[128, 1], [128, 9], [37, 2]] as [number, number][]
        ) {
          await runCase(
            folded,
            { dtype, N: 300, K, T, bias: true },
            new KernelContext(folded),
          );
        }
      }
    }
  },
);

gpuTest("matmul: planWeightParts covers rows within the byte limit", () => {
  assert.deepEqual(planWeightParts("f32", 10, 4, 64), [[0, 4], [4, 4], [8, 2]]);
  assert.deepEqual(planWeightParts("q4", 3, 64, 1 << 20), [[0, 3]]);
  assert.throws(() => planWeightParts("f32", 2, 100, 64));
});

gpuTest("matmul: rejects a mismatched output buffer", (g) => {
  const ctx = new KernelContext(g);
  const w = uploadWeight(g, {
    dtype: "f32",
    rows: 8,
    cols: 4,
    data: new Float32Array(32),
  });
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  assert.throws(
    () =>
      matmul(ctx, pass, { x: scratch(g, 16), w, out: scratch(g, 16), T: 1 }),
    /out holds/,
  );
  pass.end();
});

// The f16 weight path must not need shader-f16: run it on a device created without the feature.
Deno.test({
  name:
    "matmul f16/bf16 on a device without shader-f16 (requestGpu({ f16: false }))",
  ignore: sharedGpu === null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const g = await requestGpu({ f16: false });
    assert.equal(g.f16, false);
    assert.ok(!g.device.features.has("shader-f16"));
    for (const kernels of FAMILIES) {
      for (const dtype of ["f16", "bf16", "q8", "q4"] as WeightDtype[]) {
        for (const [N, K, T] of [[33, 37, 1], [40, 128, 1], [40, 128, 37]]) {
          await runCase({ ...g, kernels }, { dtype, N, K, T, bias: true });
        }
      }
    }
  },
});

gpuTest(
  "matmul: weight ranges with sizes that are not multiples of 4 (exact shard byte lengths)",
  async (g) => {
    // q4 [3, 32]: data 48 bytes, scales 6 bytes; f16 [3, 8]: 48 bytes — bound with their exact sizes
    const r = rng(5);
    for (const dtype of ["q4", "q8", "f16"] as WeightDtype[]) {
      const N = 3, K = dtype === "f16" ? 8 : 32;
      const p = pack(dtype, N, K, r);
      const w0 = uploadWeight(g, {
        dtype,
        rows: N,
        cols: K,
        data: p.data,
        scales: p.scales,
      });
      const part = w0.parts[0];
      const w: GpuWeight = {
        ...w0,
        parts: [{
          ...part,
          data: { ...part.data, size: p.data.byteLength },
          scales: part.scales
            ? { ...part.scales, size: p.scales!.byteLength }
            : undefined,
        }],
      };
      const x = randn(K, r);
      const xRef = upload(g, x);
      const out = scratch(g, N * 4);
      const ctx = new KernelContext(g);
      const enc = g.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      matmul(ctx, pass, { x: xRef, w, out, T: 1 });
      pass.end();
      ctx.flush();
      g.device.queue.submit([enc.finish()]);
      const got = await readF32(g, out, N);
      const want = matmulRef({ x, w: p.ref, T: 1, N, K });
      for (let n = 0; n < N; n++) {
        assert.ok(
          Math.abs(got[n] - want[n]) < 1e-4,
          `${dtype} row ${n}: ${got[n]} vs ${want[n]}`,
        );
      }
    }
  },
);

gpuTest(
  "Kernels façade: matmul then the ops' add in one pass, Params uploaded once by submit()",
  async (g) => {
    const k = await Kernels.create(g);
    const r = rng(11);
    const N = 40, K = 64;
    const p = pack("q8", N, K, r);
    const w = uploadWeight(g, {
      dtype: "q8",
      rows: N,
      cols: K,
      data: p.data,
      scales: p.scales,
    });
    const x = randn(K, r);
    const y = randn(N, r);
    const xRef = upload(g, x);
    const yRef = upload(g, y);
    const mid = scratch(g, N * 4);
    const out = scratch(g, N * 4);
    k.reset();
    const enc = g.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.matmul(pass, { x: xRef, w, out: mid, T: 1 });
    k.add(pass, { x: mid, y: yRef, out, n: N });
    pass.end();
    k.submit([enc.finish()]);
    const got = await readF32(g, out, N);
    const want = matmulRef({ x, w: p.ref, bias: y, T: 1, N, K });
    for (let n = 0; n < N; n++) {
      assert.ok(
        Math.abs(got[n] - want[n]) < 1e-4,
        `row ${n}: ${got[n]} vs ${want[n]}`,
      );
    }
    assert.equal(k.ctx.arena.count, 2); // one Params slice per dispatch
  },
);

Deno.test("requestGpu: no adapter → GpuError saying how to get one", async () => {
  const gpuApi = (globalThis.navigator as Navigator).gpu;
  if (!gpuApi) return;
  const original = gpuApi.requestAdapter;
  // deno-lint-ignore no-explicit-any
  (gpuApi as any).requestAdapter = () => Promise.resolve(null);
  try {
    await assert.rejects(
      () => requestGpu(),
      (e: Error) =>
        e.name === "GpuError" && /mesa-vulkan-drivers/.test(e.message) &&
        /GPU driver/.test(e.message),
    );
  } finally {
    // deno-lint-ignore no-explicit-any
    (gpuApi as any).requestAdapter = original;
  }
});
