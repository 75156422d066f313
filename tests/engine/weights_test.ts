/**
 * The weights view's row splits of fused matrices (lib/engine/_weights.ts):
 * the offsets on paper, and on the GPU a matmul through each split view equals
 * the matmul through the same rows uploaded on their own.
 */
import assert from "node:assert/strict";
import { gpuTest, readF32, scratch, upload } from "../_gpu.ts";
import {
  type GpuWeight,
  Kernels,
  uploadWeight,
} from "../../lib/gpu/kernels.ts";
import { quantizeQ8 } from "../../lib/quant/q8.ts";
import { splitRows } from "../../lib/engine/_weights.ts";
import { FormatError, UnsupportedError } from "../../lib/errors.ts";

const buffer = {} as GPUBuffer; // offsets only
const at = { align: 256, path: "layers/000.safetensors", role: "qkvProj" };

Deno.test("weights: splitRows cuts parts and scales at the right rows", () => {
  // q8, K = 64: 64 data bytes and 4 scale bytes per row; parts of 128 rows
  const w: GpuWeight = {
    dtype: "q8",
    rows: 256,
    cols: 64,
    parts: [0, 1].map((i) => ({
      rowStart: 128 * i,
      rows: 128,
      data: { buffer, offset: 1024 * i, size: 128 * 64 },
      scales: { buffer, offset: 65536 + 1024 * i, size: 128 * 4 },
    })),
  };
  const [a, b, c] = splitRows(w, [64, 64, 128], at);
  assert.deepEqual([a.rows, b.rows, c.rows], [64, 64, 128]);
  assert.deepEqual(b.parts, [{
    rowStart: 0,
    rows: 64,
    data: { buffer, offset: 64 * 64, size: 64 * 64 },
    scales: { buffer, offset: 65536 + 256, size: 256 },
  }]);
  assert.deepEqual(c.parts.map((p) => [p.rowStart, p.data.offset]), [[
    0,
    1024,
  ]]);
  // a block across a part boundary keeps one part per piece
  const [d, e] = splitRows(w, [192, 64], at);
  assert.deepEqual(d.parts.map((p) => [p.rowStart, p.rows]), [[0, 128], [
    128,
    64,
  ]]);
  assert.deepEqual(e.parts.map((p) => [p.rowStart, p.rows]), [[0, 64]]);
  // scales of row 32 start at byte 128: not a binding offset
  assert.throws(
    () => splitRows(w, [32, 224], at),
    (err) =>
      err instanceof UnsupportedError && /qkvProj.*256-byte/.test(err.message),
  );
  assert.throws(() => splitRows(w, [64, 64], at), FormatError);
});

gpuTest(
  "weights: matmul through split views = matmul of the rows alone (f32, q8; several parts)",
  async (g) => {
    const K = await Kernels.create(g);
    const cols = 64, counts = [64, 64, 128], rows = 256;
    const align = g.device.limits.minStorageBufferOffsetAlignment;
    let s = 7;
    const rnd = () =>
      ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
    const W = Float32Array.from({ length: rows * cols }, rnd);
    for (const T of [1, 5]) {
      const x = upload(g, Float32Array.from({ length: T * cols }, rnd));
      for (const dtype of ["f32", "q8"] as const) {
        const enc = (w: Float32Array, n: number, maxPartBytes?: number) =>
          dtype === "f32"
            ? uploadWeight(g, { dtype, rows: n, cols, data: w, maxPartBytes })
            : uploadWeight(g, {
              dtype,
              rows: n,
              cols,
              ...quantizeQ8(w, n, cols),
              maxPartBytes,
            });
        // parts of 128 rows (f32: 256-byte rows; q8: 64-byte rows)
        const fused = enc(W, rows, 128 * (dtype === "f32" ? 256 : 64));
        assert.equal(fused.parts.length, 2);
        const views = splitRows(fused, counts, { ...at, align });
        let r0 = 0;
        for (let b = 0; b < counts.length; b++) {
          const n = counts[b];
          const alone = enc(W.subarray(r0 * cols, (r0 + n) * cols), n);
          const out1 = scratch(g, T * n * 4), out2 = scratch(g, T * n * 4);
          K.reset();
          const e = g.device.createCommandEncoder();
          const pass = e.beginComputePass();
          K.matmul(pass, { x, w: views[b], out: out1, T });
          K.matmul(pass, { x, w: alone, out: out2, T });
          pass.end();
          K.submit([e.finish()]);
          const [a, want] = [
            await readF32(g, out1, T * n),
            await readF32(g, out2, T * n),
          ];
          assert.deepEqual(a, want, `${dtype} T=${T} block ${b}`);
          assert.ok(want.some((v) => v !== 0));
          r0 += n;
        }
      }
    }
  },
);
