import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { f16ToF32 } from "../../lib/quant/half.ts";
import { QK } from "../../lib/quant/layout.ts";
import { encoding, storedShapes } from "../../lib/quant/encoding.ts";
import { dequantizeQ4, quantizeQ4 } from "../../lib/quant/q4.ts";
import { dequantizeQ8, quantizeQ8 } from "../../lib/quant/q8.ts";

/** Deterministic test matrix: uniform noise, a few outliers, one all-zero row block. */
function matrix(rows: number, cols: number, seed: number): Float32Array {
  const w = new Float32Array(rows * cols);
  let s = seed >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = (s / 2 ** 32 - 0.5) * 0.2;
    if (s % 97 === 0) w[i] *= 40; // outliers
  }
  if (rows > 1) w.fill(0, cols, cols + Math.min(cols, QK)); // row 1: first block all zero
  return w;
}

const SHAPES: [number, number][] = [
  [1, 1],
  [3, 31],
  [2, 32],
  [4, 33],
  [5, 37],
  [3, 100],
  [2, 64],
  [7, 4096],
];

Deno.test("q8 round trip: |x − x̂| ≤ d/2 per block (+ f16 scale rounding), padding and zero blocks", () => {
  for (const [rows, cols] of SHAPES) {
    const w = matrix(rows, cols, rows * 1000 + cols);
    const q = quantizeQ8(w, rows, cols);
    const nb = Math.ceil(cols / 32);
    const shapes = storedShapes(encoding("q8"), rows, cols);
    assert.deepEqual(shapes.data.shape, [rows, nb * 32]);
    assert.deepEqual(shapes.scales?.shape, [rows, nb]);
    assert.equal(q.data.length, rows * nb * 32);
    assert.equal(q.scales.length, rows * nb);
    const back = dequantizeQ8(q, rows, cols);
    assert.equal(back.length, rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < nb; b++) {
        const n = Math.min(32, cols - 32 * b);
        let amax = 0;
        for (let j = 0; j < n; j++) {
          amax = Math.max(amax, Math.abs(w[r * cols + 32 * b + j]));
        }
        const d = amax / 127; // exact quantization step (independent of the implementation)
        const ds = f16ToF32(q.scales[r * nb + b]); // stored step
        // the scale stored is d rounded to f16 (relative error ≤ 2^-11 for normal f16)
        assert.ok(
          Math.abs(ds - d) <= d * 2 ** -11 + 2 ** -25,
          `scale ${ds} vs ${d}`,
        );
        const bound = d / 2 + 127 * Math.abs(ds - d) + amax * 1e-6;
        for (let j = 0; j < 32; j++) {
          const qi = q.data[(r * nb + b) * 32 + j];
          if (j >= n) {
            assert.equal(qi, 0, "padding is zero");
            continue;
          }
          const x = w[r * cols + 32 * b + j];
          const xh = back[r * cols + 32 * b + j];
          assert.ok(Math.abs(qi) <= 127);
          assert.ok(
            Math.abs(x - xh) <= bound,
            `r${r} b${b} j${j}: |${x} − ${xh}| > ${bound}`,
          );
          if (amax === 0) assert.equal(xh, 0);
          else if (Math.abs(x) === amax) assert.equal(Math.abs(qi), 127);
        }
        if (amax === 0) {
          assert.equal(q.scales[r * nb + b], 0, "all-zero block has scale 0");
        }
      }
    }
  }
});

Deno.test("q8: a hand-made block", () => {
  // d = 127/127 = 1: q = round-half-away-from-zero(x)
  const w = new Float32Array([127, -127, 0.5, -0.5, 1.49, -2.5, 0, 3]);
  const q = quantizeQ8(w, 1, 8);
  assert.equal(q.scales[0], 0x3c00); // f16 1.0
  assert.deepEqual([...q.data.subarray(0, 8)], [127, -127, 1, -1, 1, -3, 0, 3]);
  assert.deepEqual([...q.data.subarray(8)], new Array(24).fill(0));
  assert.deepEqual([...dequantizeQ8(q, 1, 8)], [127, -127, 1, -1, 1, -3, 0, 3]);
  const z = quantizeQ8(new Float32Array(40), 1, 40);
  assert.deepEqual([...z.scales], [0, 0]);
  assert.ok(z.data.every((v) => v === 0));
  assert.deepEqual([...dequantizeQ8(z, 1, 40)], new Array(40).fill(0));
});

Deno.test("q4 round trip: |x − x̂| ≤ |d|/2 (≤ |d| where the +8 side clamps at 15), + f16 scale rounding", () => {
  for (const [rows, cols] of SHAPES) {
    const w = matrix(rows, cols, rows * 7 + cols);
    const q = quantizeQ4(w, rows, cols);
    const nb = Math.ceil(cols / 32);
    const shapes = storedShapes(encoding("q4"), rows, cols);
    assert.deepEqual(shapes.data.shape, [rows, nb * 16]);
    assert.equal(shapes.data.dtype, "U8");
    assert.equal(q.data.length, rows * nb * 16);
    assert.equal(q.scales.length, rows * nb);
    const back = dequantizeQ4(q, rows, cols);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < nb; b++) {
        const n = Math.min(32, cols - 32 * b);
        let max = 0;
        for (let j = 0; j < n; j++) {
          const v = w[r * cols + 32 * b + j];
          if (Math.abs(v) > Math.abs(max)) max = v;
        }
        const d = max / -8; // exact step
        const ds = f16ToF32(q.scales[r * nb + b]);
        assert.ok(
          Math.abs(ds - d) <= Math.abs(d) * 2 ** -11 + 2 ** -25,
          `scale ${ds} vs ${d}`,
        );
        const slack = 8 * Math.abs(ds - d) + Math.abs(max) * 1e-6;
        const bytes = q.data.subarray((r * nb + b) * 16, (r * nb + b + 1) * 16);
        for (let j = 0; j < 32; j++) {
          const nib = j < 16 ? bytes[j] & 15 : bytes[j - 16] >> 4;
          if (j >= n) {
            assert.equal(nib, 8, "padding element (0.0) is nibble 8");
            continue;
          }
          const x = w[r * cols + 32 * b + j];
          const xh = back[r * cols + 32 * b + j];
          assert.equal(xh, ds * (nib - 8));
          const clamped = d !== 0 && x / d > 7.5;
          const bound = (clamped ? Math.abs(d) : Math.abs(d) / 2) + slack;
          assert.ok(
            Math.abs(x - xh) <= bound,
            `r${r} b${b} j${j}: |${x} − ${xh}| > ${bound}`,
          );
          if (x === max && d !== 0) {
            assert.equal(nib, 0, "the extreme element maps to nibble 0");
          }
        }
        if (max === 0) {
          assert.equal(q.scales[r * nb + b], 0, "all-zero block has scale 0");
          assert.ok(bytes.every((v) => v === 0x88));
        }
      }
    }
  }
});

Deno.test("q4: byte j holds element j (low nibble) and element j+16 (high nibble)", () => {
  // max = -8 at element 0 → d = -8 / -8 = 1, so q = x + 8 exactly for integers in [-8, 7]
  const w = new Float32Array(32);
  for (let j = 0; j < 16; j++) {
    w[j] = j - 8; // nibble j
    w[j + 16] = 7 - j; // nibble 15 - j
  }
  const q = quantizeQ4(w, 1, 32);
  assert.equal(q.scales[0], 0x3c00);
  const expected = Array.from({ length: 16 }, (_, j) => j + 16 * (15 - j));
  assert.deepEqual([...q.data], expected);
  assert.deepEqual([...dequantizeQ4(q, 1, 32)], [...w]);

  // positive max: d = -1; the opposite extreme clamps at 15 (error |d|)
  const p = quantizeQ4(new Float32Array([8, -8, 4, 0]), 1, 4);
  assert.equal(p.scales[0], 0xbc00); // f16 -1.0
  assert.equal(p.data[0] & 15, 0); // 8 → q 0 → -1 * (0 - 8) = 8
  assert.equal(p.data[1] & 15, 15); // -8 → trunc(16.5) = 16 → clamped to 15 → -7
  assert.equal(p.data[2] & 15, 4); // 4 → trunc(-4 + 8.5) = 4
  assert.equal(p.data[3] & 15, 8);
  assert.equal(p.data[0] >> 4, 8); // element 16: padding
  assert.deepEqual([...dequantizeQ4(p, 1, 4)], [8, -7, 4, -0]);
});

Deno.test("quantizers reject mismatched sizes", () => {
  assert.throws(() => quantizeQ8(new Float32Array(5), 2, 3), UsageError);
  assert.throws(() => quantizeQ4(new Float32Array(6), 0, 6), UsageError);
  assert.throws(() => quantizeQ4(new Float32Array(6), 2.5, 2), UsageError);
  assert.throws(
    () =>
      dequantizeQ8(
        { data: new Int8Array(32), scales: new Uint16Array(2) },
        1,
        10,
      ),
    UsageError,
  );
  assert.throws(
    () =>
      dequantizeQ4(
        { data: new Uint8Array(32), scales: new Uint16Array(1) },
        1,
        32,
      ),
    UsageError,
  );
  assert.throws(() => storedShapes(encoding("q8"), 1, 0), UsageError);
});

Deno.test("speed: 11008 x 4096 quantizes in seconds", () => {
  const rows = 11008, cols = 4096;
  const w = matrix(rows, cols, 42);
  let t = performance.now();
  const q8 = quantizeQ8(w, rows, cols);
  const t8 = performance.now() - t;
  t = performance.now();
  const q4 = quantizeQ4(w, rows, cols);
  const t4 = performance.now() - t;
  console.log(
    `quantize 11008x4096: q8 ${t8.toFixed(0)} ms, q4 ${t4.toFixed(0)} ms`,
  );
  assert.equal(q8.scales.length, rows * 128);
  assert.equal(q4.data.length, rows * 128 * 16);
  assert.ok(t8 < 20_000 && t4 < 20_000, "quantization far too slow");
});

Deno.test("q8/q4 bytes match llama.cpp's reference quantizers (block_q8_0 / block_q4_0)", () => {
  // Expected bytes: output of quantize_row_q8_0_ref and quantize_row_q4_0_ref from ggml/src/ggml-quants.c
  // (llama.cpp @ c392e50), compiled with gcc -mf16c (fp16 via _cvtss_sh), run on the input below. Each block
  // there is the f16 scale (LE) followed by the quants; here scales and quants are separate arrays.
  const x = new Float32Array(96);
  for (let i = 0; i < 96; i++) {
    x[i] = i < 32
      ? (((i * 37) % 61) - 30) / 8
      : i < 64
      ? (((i * 7919) % 1000) - 500) / 12345 * 0.37
      : i % 5 === 0
      ? 0.25 * (i % 3 - 1)
      : 0;
  }
  const hex = (s: string) =>
    Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
  const ref8 = hex(
    "8f27811eb855ef8926c15df8922fc966009a37d16e08a33fda7711ab48e27f19b450b007e8d4bfaa96816c57422e1904f0dbc6b29d88735e4a352" +
      "00bf7e2cdb9a48f7a650818007f00000000000000000081000000007f00000000000000000081000000007f",
  );
  const ref4 = hex(
    "8037b05af39d27c16af49e37d16bf5ae38d2a0172705f4e3d1b0af9d7c6b5a482716f4e300a808808888888888888888f88f88888808",
  );
  const q8 = quantizeQ8(x, 1, 96);
  const q4 = quantizeQ4(x, 1, 96);
  for (let b = 0; b < 3; b++) {
    assert.equal(
      q8.scales[b],
      ref8[b * 34] | (ref8[b * 34 + 1] << 8),
      `q8 scale ${b}`,
    );
    assert.deepEqual(
      [...new Uint8Array(q8.data.buffer, b * 32, 32)],
      [...ref8.subarray(b * 34 + 2, b * 34 + 34)],
      `q8 block ${b}`,
    );
    assert.equal(
      q4.scales[b],
      ref4[b * 18] | (ref4[b * 18 + 1] << 8),
      `q4 scale ${b}`,
    );
    assert.deepEqual([...q4.data.subarray(b * 16, b * 16 + 16)], [
      ...ref4.subarray(b * 18 + 2, b * 18 + 18),
    ]);
  }
});
