/**
 * The non-matmul kernels (lib/gpu/ops/*.ts) against the float64 references in
 * tests/reference/ on seeded random data. Every test runs on the shared test
 * GPU and again on a device created with `requestGpu({ f16: false })`, each
 * in both kernel families (lib/gpu/family.ts; for attention the GPU family
 * splits decode contexts into more, shorter ranges).
 *
 * Tolerances (|gpu − ref| ≤ atol + rtol·|ref|), f32 arithmetic on the GPU:
 * - rmsnorm 1e-5 + 1e-5·|ref|; add/siluMul 1e-6 + 1e-6·|ref|;
 * - rope 1e-5 + 4e-7·maxPos absolute for |x| ≤ 2 (the angle pos·invFreq is
 *   rounded to f32 as in Hugging Face's f32 rotary embedding); at positions
 *   ≥ 65537 against that f32-rounded angle: 2e-5·max(1, pos / 65536);
 * - attention 2e-5 + 1e-4·|ref| (softmax in f32, inputs O(1));
 * - topk: exact (values and indices), against a sort of the same f32 logits.
 */
import assert from "node:assert/strict";
import { gpu as sharedGpu, gpuTest, readBack } from "../_gpu.ts";
import {
  type Gpu,
  type KernelFamily,
  requestGpu,
} from "../../lib/gpu/device.ts";
import { KernelContext } from "../../lib/gpu/_context.ts";
import type { BufferRef } from "../../lib/gpu/pipelines.ts";
import * as ops from "../../lib/gpu/ops/mod.ts";
import { rmsnormRef } from "../reference/rmsnorm.ts";
import { ropeRef } from "../reference/rope.ts";
import { attentionRef } from "../reference/attention.ts";
import { addRef, siluMulRef } from "../reference/activation.ts";
import { topkRef } from "../reference/topk.ts";
import { UsageError } from "../../lib/errors.ts";
import { Kernels } from "../../lib/gpu/kernels.ts";

// ---------------------------------------------------------------- helpers

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

/** n values uniform in [-scale, scale) as f32. */
function randF32(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

const USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/** A buffer of `bytes` (+ slack) with `data` at `offset` (256-aligned). */
function buffer(g: Gpu, bytes: number): GPUBuffer {
  return g.device.createBuffer({
    size: Math.max(256, Math.ceil(bytes / 256) * 256 + 256),
    usage: USAGE,
  });
}

function put(
  g: Gpu,
  buf: GPUBuffer,
  offset: number,
  data: ArrayBufferView,
): BufferRef {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  g.device.queue.writeBuffer(buf, offset, padded);
  return { buffer: buf, offset, size: buf.size - offset };
}

function upload(g: Gpu, data: ArrayBufferView): BufferRef {
  return put(g, buffer(g, data.byteLength), 0, data);
}

/** A buffer of `bytes` filled with NaN (so unwritten outputs are visible). */
function nanBuffer(g: Gpu, bytes: number): BufferRef {
  return upload(g, new Float32Array(Math.ceil(bytes / 4)).fill(NaN));
}

async function readF32(g: Gpu, r: BufferRef, n: number): Promise<Float32Array> {
  return new Float32Array(
    await readBack(g.device, {
      buffer: r.buffer,
      offset: r.offset,
      size: n * 4,
    }),
  );
}

/** Records `fn` into one compute pass, submits it and waits for validation errors. */
async function run(
  g: Gpu,
  ctx: KernelContext,
  fn: (pass: GPUComputePassEncoder) => void,
): Promise<void> {
  ctx.reset();
  g.device.pushErrorScope("validation");
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  fn(pass);
  pass.end();
  ctx.flush();
  g.device.queue.submit([enc.finish()]);
  const err = await g.device.popErrorScope();
  if (err) throw new Error(`WebGPU validation: ${err.message}`);
}

function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: { atol: number; rtol: number },
  what: string,
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const lim = tol.atol + tol.rtol * Math.abs(want[i]);
    if (!(err <= lim)) {
      throw new assert.AssertionError({
        message: `${what}: element ${i}: got ${got[i]}, want ${
          want[i]
        } (|err| ${err} > ${lim})`,
      });
    }
    if (err > worst) [worst, at] = [err, i];
  }
  void at;
}

// ---------------------------------------------------------------- suites

const f32Gpu: Gpu | null = sharedGpu ? await requestGpu({ f16: false }) : null;
const contexts = new Map<Gpu, KernelContext>();
function contextFor(g: Gpu): KernelContext {
  let c = contexts.get(g);
  if (!c) contexts.set(g, c = new KernelContext(g));
  return c;
}

/** The device `g` with kernel family `kernels` (one object per pair, so contexts are reused). */
const inFamily = new Map<string, Gpu>();
function family(g: Gpu, kernels: KernelFamily, key: string): Gpu {
  let f = inFamily.get(`${key}.${kernels}`);
  if (!f) inFamily.set(`${key}.${kernels}`, f = { ...g, kernels });
  return f;
}

/** Registers `fn` for the shared GPU and for the f16-disabled device, each in both kernel families. */
function opTest(
  name: string,
  fn: (g: Gpu, ctx: KernelContext) => Promise<void>,
): void {
  for (const k of ["cpu", "gpu"] as const) {
    gpuTest(`ops (${k} kernels): ${name}`, (g0) => {
      const g = family(g0, k, "shared");
      return fn(g, contextFor(g));
    });
    gpuTest(`ops (${k} kernels, f16 off): ${name}`, () => {
      const g = family(f32Gpu!, k, "f32");
      return fn(g, contextFor(g));
    });
  }
}

opTest(
  "rmsnorm rows × dim (37, 100, 4096; in place; disjoint ranges of one buffer)",
  async (g, ctx) => {
    const r = rng(1);
    for (const [rows, dim] of [[1, 37], [5, 100], [3, 4096], [7, 8]]) {
      const x = randF32(r, rows * dim, 3);
      const w = randF32(r, dim, 2);
      const eps = 1e-6;
      const want = rmsnormRef({ x, weight: w, rows, dim, eps });
      const tol = { atol: 1e-5, rtol: 1e-5 };
      // separate buffers
      const xb = upload(g, x),
        wb = upload(g, w),
        out = nanBuffer(g, rows * dim * 4);
      await run(
        g,
        ctx,
        (p) => ops.rmsnorm(ctx, p, { x: xb, weight: wb, out, rows, dim, eps }),
      );
      assertClose(
        await readF32(g, out, rows * dim),
        want,
        tol,
        `rmsnorm ${rows}×${dim}`,
      );
      // in place
      await run(
        g,
        ctx,
        (p) =>
          ops.rmsnorm(ctx, p, { x: xb, weight: wb, out: xb, rows, dim, eps }),
      );
      assertClose(
        await readF32(g, xb, rows * dim),
        want,
        tol,
        `rmsnorm in place ${rows}×${dim}`,
      );
      // x and out in one buffer
      const off = Math.ceil((rows * dim * 4) / 256) * 256;
      const both = buffer(g, off * 2);
      const xr = put(g, both, 0, x),
        or = { buffer: both, offset: off, size: off };
      await run(
        g,
        ctx,
        (p) =>
          ops.rmsnorm(ctx, p, {
            x: { ...xr, size: off },
            weight: wb,
            out: or,
            rows,
            dim,
            eps,
          }),
      );
      assertClose(
        await readF32(g, or, rows * dim),
        want,
        tol,
        `rmsnorm one buffer ${rows}×${dim}`,
      );
    }
  },
);

opTest(
  "rmsnorm per head (Qwen3 q/k norm: rows = T·nHeads, dim = headDim)",
  async (g, ctx) => {
    const r = rng(2);
    const T = 3, nHeads = 5, hd = 16;
    const q = randF32(r, T * nHeads * hd, 2);
    const w = randF32(r, hd);
    const want = rmsnormRef({
      x: q,
      weight: w,
      rows: T * nHeads,
      dim: hd,
      eps: 1e-6,
    });
    const qb = upload(g, q);
    await run(g, ctx, (p) =>
      ops.rmsnorm(ctx, p, {
        x: qb,
        weight: upload(g, w),
        out: qb,
        rows: T * nHeads,
        dim: hd,
        eps: 1e-6,
      }));
    assertClose(await readF32(g, qb, q.length), want, {
      atol: 1e-5,
      rtol: 1e-5,
    }, "q norm");
  },
);

opTest(
  "rope (T 1/5, pos0 0/7/1000, headDim 8/16/64, partial rotary, scaled tables)",
  async (g, ctx) => {
    const r = rng(3);
    const cases = [
      { T: 1, nHeads: 3, headDim: 8, rotaryDim: 8, pos0: 0 },
      { T: 5, nHeads: 2, headDim: 16, rotaryDim: 16, pos0: 7 },
      { T: 4, nHeads: 4, headDim: 64, rotaryDim: 64, pos0: 1000 },
      { T: 3, nHeads: 2, headDim: 64, rotaryDim: 16, pos0: 11 }, // partial rotary (factor 0.25)
      { T: 2, nHeads: 1, headDim: 16, rotaryDim: 10, pos0: 3 },
      { T: 2, nHeads: 2, headDim: 8, rotaryDim: 8, pos0: 131000 }, // angles ≫ 2π: range reduction
    ];
    for (const c of cases) {
      const half = c.rotaryDim / 2;
      // theta 10000 table, with a llama3-like kink: every other frequency divided by 8
      const invFreq = new Float32Array(half).map((_, i) =>
        (i % 2 ? 1 / 8 : 1) / Math.pow(10000, (2 * i) / c.rotaryDim)
      );
      const x = randF32(r, c.T * c.nHeads * c.headDim, 2);
      const want = ropeRef({ ...c, x, invFreq });
      const xb = upload(g, x);
      await run(
        g,
        ctx,
        (p) => ops.rope(ctx, p, { ...c, x: xb, invFreq: upload(g, invFreq) }),
      );
      const tol = { atol: 1e-5 + 2e-7 * (c.pos0 + c.T) * 2, rtol: 1e-6 };
      assertClose(
        await readF32(g, xb, x.length),
        want,
        tol,
        `rope ${JSON.stringify(c)}`,
      );
    }
    // Large positions, one token each, against the f32-rounded angle the kernel
    // starts from (Math.fround(pos · invFreq)): checks its reduction mod 2π
    // (exact for angles below 2π·2^16 ≈ 411k, i.e. any position up to that).
    for (const pos0 of [65537, 131000, 262147]) {
      const c = { T: 1, nHeads: 1, headDim: 16, rotaryDim: 16, pos0 };
      const invFreq = new Float32Array(8).map((_, i) =>
        1 / Math.pow(10000, i / 8)
      );
      const angleFreq = Array.from(
        invFreq,
        (f) => Math.fround(pos0 * f) / pos0,
      );
      const x = randF32(r, 16, 2);
      const want = ropeRef({ ...c, x, invFreq: angleFreq });
      const xb = upload(g, x);
      await run(
        g,
        ctx,
        (p) => ops.rope(ctx, p, { ...c, x: xb, invFreq: upload(g, invFreq) }),
      );
      assertClose(await readF32(g, xb, 16), want, {
        atol: 2e-5 * Math.max(1, pos0 / 65536),
        rtol: 1e-6,
      }, `rope pos ${pos0}`);
    }
  },
);

opTest(
  "rope interleaved (pairs (2i, 2i+1), GLM): full and partial rotary (fraction 0.5 as GLM's default, 0.25)",
  async (g, ctx) => {
    const r = rng(5);
    const cases = [
      { T: 1, nHeads: 3, headDim: 8, rotaryDim: 8, pos0: 0 },
      { T: 5, nHeads: 2, headDim: 16, rotaryDim: 8, pos0: 7 }, // fraction 0.5
      { T: 3, nHeads: 4, headDim: 128, rotaryDim: 64, pos0: 1000 }, // GLM-4's real heads
      { T: 2, nHeads: 2, headDim: 32, rotaryDim: 8, pos0: 11 }, // fraction 0.25
    ];
    for (const c of cases) {
      const half = c.rotaryDim / 2;
      const invFreq = new Float32Array(half).map((_, i) =>
        1 / Math.pow(10000, (2 * i) / c.rotaryDim)
      );
      const x = randF32(r, c.T * c.nHeads * c.headDim, 2);
      const want = ropeRef({ ...c, x, invFreq, interleaved: true });
      // the two pairings differ on this input: the test sees which one ran
      const other = ropeRef({ ...c, x, invFreq });
      let apart = 0;
      for (let i = 0; i < x.length; i++) {
        apart = Math.max(apart, Math.abs(want[i] - other[i]));
      }
      assert.ok(c.pos0 + c.T === 1 || apart > 1e-2, "pairings differ");
      const xb = upload(g, x);
      await run(
        g,
        ctx,
        (p) =>
          ops.rope(ctx, p, {
            ...c,
            x: xb,
            invFreq: upload(g, invFreq),
            interleaved: true,
          }),
      );
      const got = await readF32(g, xb, x.length);
      assertClose(got, want, {
        atol: 1e-5 + 2e-7 * (c.pos0 + c.T) * 2,
        rtol: 1e-6,
      }, `rope interleaved ${JSON.stringify(c)}`);
      // dims rotaryDim..headDim-1 of every head pass through bit for bit
      for (let h = 0; h < c.T * c.nHeads; h++) {
        for (let j = c.rotaryDim; j < c.headDim; j++) {
          const i = h * c.headDim + j;
          assert.equal(got[i], x[i], "unrotated tail");
        }
      }
    }
  },
);

opTest(
  "attention prefill and decode (GQA 1/2/4/7, headDim 8/16/64, pos0 > 0, splits)",
  async (g, ctx) => {
    const r = rng(4);
    const cases = [
      { T: 1, pos0: 0, nHeads: 2, nKvHeads: 2, headDim: 8 },
      { T: 1, pos0: 36, nHeads: 4, nKvHeads: 2, headDim: 16 },
      { T: 6, pos0: 0, nHeads: 4, nKvHeads: 1, headDim: 16 },
      { T: 5, pos0: 13, nHeads: 8, nKvHeads: 2, headDim: 64 },
      { T: 70, pos0: 3, nHeads: 2, nKvHeads: 1, headDim: 8 }, // > one 64-position chunk
      { T: 2, pos0: 9, nHeads: 14, nKvHeads: 2, headDim: 64 }, // Qwen2.5-0.5B grouping (7 per kv head)
      { T: 1, pos0: 299, nHeads: 4, nKvHeads: 1, headDim: 16, splitLen: 64 }, // forced split-K decode
      { T: 3, pos0: 150, nHeads: 4, nKvHeads: 2, headDim: 8, splitLen: 64 }, // split prefill, empty splits
      { T: 1, pos0: 1999, nHeads: 8, nKvHeads: 2, headDim: 64 }, // automatic split (long context)
      { T: 1, pos0: 20, nHeads: 2, nKvHeads: 2, headDim: 256 },
      { T: 3, pos0: 4, nHeads: 2, nKvHeads: 1, headDim: 20 }, // dims not a multiple of 16
      { T: 4, pos0: 2, nHeads: 6, nKvHeads: 2, headDim: 16 }, // group 3: a quad with an unused lane
      { T: 3, pos0: 30, nHeads: 12, nKvHeads: 2, headDim: 8 }, // group 6: quads of 4 + 2
      { T: 2, pos0: 5, nHeads: 8, nKvHeads: 1, headDim: 32 }, // group 8: two full quads
      { T: 9, pos0: 5, nHeads: 4, nKvHeads: 2, headDim: 16, maxScratch: 2000 }, // token chunks
      {
        T: 5,
        pos0: 100,
        nHeads: 8,
        nKvHeads: 2,
        headDim: 8,
        splitLen: 32,
        maxScratch: 7000,
      }, // token chunks with splits
    ];
    for (const c of cases) {
      const maxSeq = c.pos0 + c.T + 5; // rows past the context hold NaN: reading them would show
      const kvDim = c.nKvHeads * c.headDim;
      const ctxLen = c.pos0 + c.T;
      const q = randF32(r, c.T * c.nHeads * c.headDim, 1);
      const k = new Float32Array(maxSeq * kvDim).fill(NaN);
      const v = new Float32Array(maxSeq * kvDim).fill(NaN);
      k.set(randF32(r, ctxLen * kvDim, 2));
      v.set(randF32(r, ctxLen * kvDim, 1));
      const scale = 1 / Math.sqrt(c.headDim);
      const want = attentionRef({ ...c, q, k, v, scale });
      const out = nanBuffer(g, q.byteLength);
      const args = {
        ...c,
        q: upload(g, q),
        kCache: upload(g, k),
        vCache: upload(g, v),
        out,
        scale,
      };
      await run(g, ctx, (p) => ops.attention(ctx, p, args));
      const plan = ops.attentionPlan({ ...c, family: g.kernels });
      assertClose(
        await readF32(g, out, q.length),
        want,
        { atol: 2e-5, rtol: 1e-4 },
        `attention ${JSON.stringify(c)} plan ${JSON.stringify(plan)}`,
      );
      if (c.pos0 === 1999) {
        assert.ok(plan.nSplit > 1, "long decode context is split");
      }
    }
  },
);

opTest(
  "attention: K and V as disjoint ranges of one buffer",
  async (g, ctx) => {
    const r = rng(5);
    const c = { T: 2, pos0: 4, nHeads: 4, nKvHeads: 2, headDim: 16 };
    const kvDim = c.nKvHeads * c.headDim, n = (c.pos0 + c.T) * kvDim;
    const q = randF32(r, c.T * c.nHeads * c.headDim),
      k = randF32(r, n),
      v = randF32(r, n);
    const off = Math.ceil((n * 4) / 256) * 256;
    const kv = buffer(g, off * 2);
    const kr = put(g, kv, 0, k), vr = put(g, kv, off, v);
    const out = nanBuffer(g, q.byteLength);
    await run(g, ctx, (p) =>
      ops.attention(ctx, p, {
        ...c,
        q: upload(g, q),
        kCache: { ...kr, size: off },
        vCache: vr,
        out,
        scale: 0.3,
      }));
    assertClose(
      await readF32(g, out, q.length),
      attentionRef({ ...c, q, k, v, scale: 0.3 }),
      { atol: 2e-5, rtol: 1e-4 },
      "kv one buffer",
    );
  },
);

opTest(
  "siluMul and add (n 1/37/1000; in place on each input)",
  async (g, ctx) => {
    const r = rng(6);
    const tol = { atol: 1e-6, rtol: 1e-6 };
    for (const n of [1, 37, 1000]) {
      const gate = randF32(r, n, 20), up = randF32(r, n, 3);
      const hb = siluMulRef(gate, up), sum = addRef(gate, up);
      const gb = upload(g, gate), ub = upload(g, up), out = nanBuffer(g, n * 4);
      await run(
        g,
        ctx,
        (p) => ops.siluMul(ctx, p, { gate: gb, up: ub, out, n }),
      );
      assertClose(await readF32(g, out, n), hb, tol, `siluMul ${n}`);
      await run(g, ctx, (p) => ops.add(ctx, p, { x: gb, y: ub, out, n }));
      assertClose(await readF32(g, out, n), sum, tol, `add ${n}`);
      for (const into of ["x", "y"] as const) {
        const xb = upload(g, gate), yb = upload(g, up);
        const o = into === "x" ? xb : yb;
        await run(g, ctx, (p) => ops.add(ctx, p, { x: xb, y: yb, out: o, n }));
        assertClose(
          await readF32(g, o, n),
          sum,
          tol,
          `add in place (${into}) ${n}`,
        );
        const gb2 = upload(g, gate), ub2 = upload(g, up);
        const o2 = into === "x" ? gb2 : ub2;
        await run(
          g,
          ctx,
          (p) => ops.siluMul(ctx, p, { gate: gb2, up: ub2, out: o2, n }),
        );
        assertClose(
          await readF32(g, o2, n),
          hb,
          tol,
          `siluMul in place (${into === "x" ? "gate" : "up"}) ${n}`,
        );
      }
    }
  },
);

async function runTopk(
  g: Gpu,
  ctx: KernelContext,
  logits: Float32Array,
  k: number,
) {
  const out = upload(g, new Uint32Array(2 * k).fill(0x7fc00000));
  await run(
    g,
    ctx,
    (p) =>
      ops.topk(ctx, p, { logits: upload(g, logits), out, V: logits.length, k }),
  );
  const raw = await readBack(g.device, {
    buffer: out.buffer,
    offset: 0,
    size: 8 * k,
  });
  const f = new Float32Array(raw), u = new Uint32Array(raw);
  return Array.from(
    { length: k },
    (_, i) => ({ value: f[2 * i], index: u[2 * i + 1] }),
  );
}

opTest(
  "topk against a sort (V 33..256000, k 1/5/50/64, ties by lower index)",
  async (g, ctx) => {
    const r = rng(8);
    const cases: [number, number, string][] = [
      [100, 1, "uniform"],
      [37, 5, "uniform"],
      [4096, 64, "ascending"], // worst case for the per-thread insertion
      [50000, 1, "uniform"],
      [151936, 50, "uniform"],
      [256000, 64, "uniform"], // passes [250, 16, 1]: two merge passes
      [100000, 20, "ties"], // few distinct values: order by index
      [9000, 64, "ties"],
    ];
    for (const [V, k, kind] of cases) {
      const logits = kind === "ascending"
        ? new Float32Array(V).map((_, i) => i * 1e-3)
        : kind === "ties"
        ? new Float32Array(V).map(() =>
          Math.floor(r() * 4) - 20 + (r() < 0.001 ? 30 : 0)
        )
        : randF32(r, V, 30);
      const got = await runTopk(g, ctx, logits, k);
      assert.deepEqual(got, topkRef(logits, k), `topk V=${V} k=${k} ${kind}`);
    }
    // V < k: the tail is (-inf, 0xffffffff); -inf logits still beat the filler
    const small = new Float32Array([2, -Infinity, 7, 2]);
    const got = await runTopk(g, ctx, small, 6);
    assert.deepEqual(got, [
      ...topkRef(small, 4),
      { value: -Infinity, index: 0xffffffff },
      { value: -Infinity, index: 0xffffffff },
    ]);
  },
);

gpuTest(
  "ops: 2-D dispatch beyond 65,535 workgroups (rmsnorm rows, rope; add/siluMul index the same way)",
  async (g) => {
    const ctx = contextFor(g);
    const r = rng(9);
    // rmsnorm: one workgroup per row
    const rows = 70001, dim = 8;
    const x = randF32(r, rows * dim), w = randF32(r, dim);
    const out = nanBuffer(g, x.byteLength);
    await run(
      g,
      ctx,
      (p) =>
        ops.rmsnorm(ctx, p, {
          x: upload(g, x),
          weight: upload(g, w),
          out,
          rows,
          dim,
          eps: 1e-5,
        }),
    );
    assertClose(
      await readF32(g, out, x.length),
      rmsnormRef({ x, weight: w, rows, dim, eps: 1e-5 }),
      { atol: 1e-5, rtol: 1e-5 },
      "rmsnorm 70001 rows",
    );
    // rope: 64 threads per workgroup, T·nHeads·half > 65535·64
    const c = { T: 2049, nHeads: 32, headDim: 128, rotaryDim: 128, pos0: 0 };
    const q = randF32(r, c.T * c.nHeads * c.headDim);
    const invFreq = new Float32Array(64).map((_, i) =>
      1 / Math.pow(10000, i / 64)
    );
    const qb = upload(g, q);
    await run(
      g,
      ctx,
      (p) => ops.rope(ctx, p, { ...c, x: qb, invFreq: upload(g, invFreq) }),
    );
    assertClose(
      await readF32(g, qb, q.length),
      ropeRef({ ...c, x: q, invFreq }),
      { atol: 1e-5 + 2e-7 * c.T * 2, rtol: 1e-6 },
      "rope fold",
    );
  },
);

gpuTest("ops: argument errors", (g) => {
  const ctx = contextFor(g);
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  const buf = upload(g, new Float32Array(64));
  const part = { buffer: buf.buffer, offset: 0, size: 128 };
  const shifted = { buffer: buf.buffer, offset: 64, size: 128 }; // not 256-aligned but never bound
  assert.throws(
    () => ops.add(ctx, pass, { x: part, y: buf, out: shifted, n: 32 }),
    UsageError,
  );
  assert.throws(
    () =>
      ops.topk(ctx, pass, {
        logits: buf,
        out: upload(g, new Float32Array(256)),
        V: 10,
        k: 65,
      }),
    UsageError,
  );
  assert.throws(
    () =>
      ops.rope(ctx, pass, {
        x: buf,
        T: 1,
        nHeads: 1,
        headDim: 8,
        rotaryDim: 7,
        pos0: 0,
        invFreq: buf,
      }),
    UsageError,
  );
  assert.throws(
    () =>
      ops.attention(ctx, pass, {
        q: buf,
        kCache: buf,
        vCache: buf,
        out: upload(g, new Float32Array(64)),
        T: 1,
        pos0: 0,
        nHeads: 3,
        nKvHeads: 2,
        headDim: 8,
        scale: 1,
      }),
    UsageError,
  );
  pass.end();
});

gpuTest(
  "ops: through the Kernels façade (rmsnorm → add → topk, one submit)",
  async (g) => {
    const k = await Kernels.create(g);
    const r = rng(10);
    const rows = 50, dim = 37;
    const table = randF32(r, rows * dim);
    const ids = [3, 49, 3];
    const weight = randF32(r, dim);
    const T = ids.length;
    const x = ids.flatMap((id) =>
      Array.from(table.subarray(id * dim, (id + 1) * dim))
    );
    // the engine gathers embedding rows on the CPU
    const emb = upload(g, new Float32Array(x)),
      normed = nanBuffer(g, T * dim * 4),
      out = nanBuffer(g, 8 * 5);
    k.reset();
    const enc = g.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.rmsnorm(pass, {
      x: emb,
      weight: upload(g, weight),
      out: normed,
      rows: T,
      dim,
      eps: 1e-5,
    });
    k.add(pass, { x: normed, y: emb, out: normed, n: T * dim });
    k.topk(pass, { logits: normed, out, V: T * dim, k: 5 });
    pass.end();
    k.submit([enc.finish()]);
    const want = addRef(rmsnormRef({ x, weight, rows: T, dim, eps: 1e-5 }), x);
    const got = await readF32(g, normed, T * dim);
    assertClose(got, want, { atol: 1e-5, rtol: 1e-5 }, "rmsnorm → add");
    const raw = await readBack(g.device, {
      buffer: out.buffer,
      offset: 0,
      size: 40,
    });
    const idx = Array.from(
      { length: 5 },
      (_, i) => new Uint32Array(raw)[2 * i + 1],
    );
    assert.deepEqual(idx, topkRef(got, 5).map((e) => e.index));
  },
);
