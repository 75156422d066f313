/**
 * The mixture-of-experts kernels (moeRoute, moeCombine) against their float64
 * definitions in tests/reference/moe.ts, on the default GPU and on one
 * without shader-f16. Tolerances: route 1e-6 + 1e-5·|ref| (softmax in f32),
 * with the kept set exact; combine 1e-6 + 1e-6·|ref|.
 */
import assert from "node:assert/strict";
import { gpu as sharedGpu, gpuTest, readBack, upload } from "../_gpu.ts";
import { type Gpu, requestGpu } from "../../lib/gpu/device.ts";
import { KernelContext } from "../../lib/gpu/_context.ts";
import type { BufferRef } from "../../lib/gpu/pipelines.ts";
import { moeRoute } from "../../lib/gpu/ops/moe_route.ts";
import { moeCombine } from "../../lib/gpu/ops/moe_combine.ts";
import { moeCombineRef, moeRouteRef, moeScatterRef } from "../reference/moe.ts";
import { moeScatter } from "../../lib/gpu/ops/moe_scatter.ts";
import { UsageError } from "../../lib/errors.ts";

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

function rand(r: () => number, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

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

async function read(g: Gpu, r: BufferRef, n: number): Promise<Float32Array> {
  return new Float32Array(
    await readBack(g.device, {
      buffer: r.buffer,
      offset: r.offset,
      size: n * 4,
    }),
  );
}

function close(
  got: Float32Array,
  want: Float64Array,
  atol: number,
  rtol: number,
  what: string,
) {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    const lim = atol + rtol * Math.abs(want[i]);
    assert.ok(
      Math.abs(got[i] - want[i]) <= lim,
      `${what}: element ${i}: got ${got[i]}, want ${want[i]}`,
    );
    // the kept set is exact: zero exactly where the reference is zero
    if (want[i] === 0) assert.equal(got[i], 0, `${what}: element ${i} kept`);
  }
}

const f32Gpu: Gpu | null = sharedGpu ? await requestGpu({ f16: false }) : null;

for (
  const [label, get] of [["", () => sharedGpu], [
    " (no f16)",
    () => f32Gpu,
  ]] as const
) {
  gpuTest(
    `moeRoute: top-k softmax, with and without renormalization${label}`,
    async () => {
      const g = get()!;
      const ctx = new KernelContext(g);
      const r = rng(11);
      for (
        const [T, E, k] of [[1, 8, 2], [5, 60, 4], [70, 128, 8], [3, 256, 1], [
          2,
          3,
          3,
        ]]
      ) {
        const logits = rand(r, T * E, 4);
        // an exact tie: equal logits go to the lower index
        if (E > 4) logits[1] = logits[3] = 10;
        for (const norm of [false, true]) {
          const route = upload(g, new Float32Array(T * E).fill(NaN));
          await run(g, ctx, (p) =>
            moeRoute(ctx, p, {
              logits: upload(g, logits),
              route,
              T,
              E,
              k,
              norm,
            }));
          close(
            await read(g, route, T * E),
            moeRouteRef(logits, T, E, k, norm),
            1e-6,
            1e-5,
            `T ${T} E ${E} k ${k} norm ${norm}`,
          );
        }
      }
      assert.throws(
        () =>
          moeRoute(ctx, {} as GPUComputePassEncoder, {
            logits: upload(g, new Float32Array(4)),
            route: upload(g, new Float32Array(4)),
            T: 1,
            E: 4,
            k: 5,
            norm: true,
          }),
        UsageError,
      );
    },
  );

  gpuTest(
    `moeCombine: scaled row add, router column or sigmoid gate${label}`,
    async () => {
      const g = get()!;
      const ctx = new KernelContext(g);
      const r = rng(12);
      for (
        const [T, D, stride, col, sigmoid] of [
          [1, 32, 8, 3, false],
          [9, 48, 6, 5, false],
          [4, 100, 1, 0, true],
        ] as const
      ) {
        const acc = rand(r, T * D, 1), y = rand(r, T * D, 2);
        const coef = rand(r, T * stride, 3);
        if (!sigmoid) coef[col] = 0; // token 0 not routed here: adds nothing
        const accBuf = upload(g, acc);
        await run(g, ctx, (p) =>
          moeCombine(ctx, p, {
            y: upload(g, y),
            coef: upload(g, coef),
            acc: accBuf,
            T,
            D,
            stride,
            col,
            sigmoid,
          }));
        const want = moeCombineRef(acc, y, coef, {
          T,
          D,
          stride,
          col,
          sigmoid,
        });
        const got = await read(g, accBuf, T * D);
        for (let i = 0; i < want.length; i++) {
          assert.ok(
            Math.abs(got[i] - want[i]) <= 1e-6 + 1e-6 * Math.abs(want[i]),
            `T ${T} D ${D}: element ${i}: got ${got[i]}, want ${want[i]}`,
          );
        }
        if (!sigmoid) assert.deepEqual(got.subarray(0, D), acc.subarray(0, D));
      }
    },
  );

  gpuTest(
    `moeScatter: gathered rows added back to their tokens${label}`,
    async () => {
      const g = get()!;
      const ctx = new KernelContext(g);
      const r = rng(13);
      for (
        const [T, D, rows] of [[1, 16, [0]], [9, 48, [7, 0, 3, 8]], [40, 300, [
          5,
          39,
          20,
        ]]] as const
      ) {
        const acc = rand(r, T * D, 1);
        const y = rand(r, rows.length * D, 2);
        const weights = rows.map(() => r());
        const sel = new Uint32Array(rows.length * 2);
        const f = new Float32Array(sel.buffer);
        rows.forEach((t, j) => (sel[2 * j] = t, f[2 * j + 1] = weights[j]));
        const accBuf = upload(g, acc);
        await run(g, ctx, (p) =>
          moeScatter(ctx, p, {
            y: upload(g, y),
            sel: upload(g, sel),
            acc: accBuf,
            n: rows.length,
            D,
          }));
        const want = moeScatterRef(
          acc,
          y,
          [...rows],
          weights.map(Math.fround),
          D,
        );
        const got = await read(g, accBuf, T * D);
        for (let i = 0; i < want.length; i++) {
          assert.ok(
            Math.abs(got[i] - want[i]) <= 1e-6 + 1e-6 * Math.abs(want[i]),
            `T ${T}: element ${i}: got ${got[i]}, want ${want[i]}`,
          );
        }
      }
    },
  );
}
