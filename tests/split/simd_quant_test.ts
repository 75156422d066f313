/**
 * The split's WebAssembly SIMD quantizer gives the bytes lib/quant gives
 * (quantizeQ8/quantizeQ4, themselves checked against llama.cpp's rules in
 * tests/quant): random rows, ties between +m and -m, zero and -0 blocks,
 * infinities, tiny blocks whose 1/d overflows, NaNs and ragged rows (the
 * last two fall back to lib/quant).
 */
import assert from "node:assert/strict";
import { quantizeQ4 } from "../../lib/quant/q4.ts";
import { quantizeQ8 } from "../../lib/quant/q8.ts";
import { toF16Bits } from "../../lib/testing/tiny_model.ts";
import {
  quantizeChunk,
  quantizeFileChunk,
} from "../../lib/split/_quant_rows.ts";
import {
  quantizeSimd,
  quantizeSimdWide,
  type Simd,
  simdInput,
  simdModule,
  simdQuant,
  simdWiden,
  warmSimd,
} from "../../lib/split/_simd_quant.ts";
import { f32ToF16, fromFloat32, toFloat32 } from "../../lib/quant/half.ts";
import { PACKED, type PackedName } from "../../lib/quant/encoding.ts";

function rows(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (next() - 0.5) * (i % 97 === 0 ? 50 : 1);
  return w;
}

function check(w: Float32Array, r: number, c: number, label: string) {
  const bytes = new Uint8Array(w.slice().buffer);
  for (const kind of ["q8", "q4"] as const) {
    const want = kind === "q8" ? quantizeQ8(w, r, c) : quantizeQ4(w, r, c);
    const got = quantizeChunk({ kind, dtype: "F32", bytes, rows: r, cols: c });
    assert.deepEqual(
      got.data,
      new Uint8Array(want.data.buffer),
      `${label} ${kind} data`,
    );
    assert.deepEqual(got.scales, want.scales, `${label} ${kind} scales`);
  }
}

Deno.test("SIMD quantization is available and bit-identical to lib/quant", () => {
  assert.ok(simdQuant() !== null, "WebAssembly SIMD");
  const r = 64, c = 256;
  const w = rows(r * c, 7);
  // ties: +m before -m, and -m before +m, in one block each
  w.set([5, 0, -5], 32 * 3);
  w.set([-7, 1, 7], 32 * 5 + 10);
  // zero, -0 and mixed-zero blocks
  w.fill(0, 32 * 8, 32 * 9);
  w.fill(-0, 32 * 9, 32 * 10);
  // infinities
  w[32 * 12 + 4] = Infinity;
  w[32 * 13 + 30] = -Infinity;
  w[32 * 13 + 2] = Infinity;
  // values at rounding boundaries for q8 (x * 127 / amax = k + 0.5)
  for (let j = 0; j < 32; j++) w[32 * 20 + j] = (j - 16) + 0.5;
  w[32 * 20 + 31] = 127;
  check(w, r, c, "mixed");
  // (and this chunk did take the SIMD path)
  for (const kind of ["q8", "q4"] as const) {
    simdInput(r * c)!.set(w);
    assert.ok(quantizeSimd(kind, r, c, f32ToF16) !== null, kind);
  }
  // f32 subnormal-sized blocks: 1/d overflows, lib/quant does the chunk
  const tiny = rows(4 * 64, 9).map((x) => x * 1e-39);
  check(tiny, 4, 64, "tiny");
  // a NaN anywhere: lib/quant does the chunk
  const nan = rows(8 * 64, 3);
  nan[100] = NaN;
  check(nan, 8, 64, "nan");
  // ragged rows (cols not a multiple of 32)
  check(rows(5 * 70, 4), 5, 70, "ragged");
});

Deno.test("SIMD quantization of F16 chunks matches lib/quant on the decoded floats", () => {
  const r = 32, c = 4096;
  const w = rows(r * c, 11);
  const h = new Uint16Array(r * c);
  for (let i = 0; i < h.length; i++) h[i] = toF16Bits(w[i]);
  const bytes = new Uint8Array(h.buffer);
  // decode independently: exact half → float
  const f = new Float32Array(r * c);
  for (let i = 0; i < h.length; i++) {
    const e = (h[i] >> 10) & 31, m = h[i] & 1023, s = h[i] & 0x8000 ? -1 : 1;
    f[i] = e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  for (const kind of ["q8", "q4"] as const) {
    const want = kind === "q8" ? quantizeQ8(f, r, c) : quantizeQ4(f, r, c);
    const got = quantizeChunk({ kind, dtype: "F16", bytes, rows: r, cols: c });
    assert.deepEqual(got.data, new Uint8Array(want.data.buffer), kind);
    assert.deepEqual(got.scales, want.scales, kind);
  }
});

Deno.test("F16/BF16 widened and packed tile by tile, from memory or read from a file, match lib/quant (a ragged last tile, a NaN in a late tile)", async () => {
  const r = 17, c = 4128; // 70176 values: two 32768-value tiles and a tail
  const w = rows(r * c, 5);
  const path = await Deno.makeTempFile();
  try {
    for (const dtype of ["F16", "BF16"] as const) {
      for (const nan of [false, true]) {
        const h = new Uint16Array(r * c);
        for (let i = 0; i < h.length; i++) {
          h[i] = dtype === "F16"
            ? toF16Bits(w[i])
            : new Uint32Array(new Float32Array([w[i]]).buffer)[0] >>> 16;
        }
        if (nan) h[70000] = dtype === "F16" ? 0x7e00 : 0x7fc0;
        // decode independently: exact half → float, bfloat16 → its top bits
        const f = new Float32Array(r * c);
        for (let i = 0; i < h.length; i++) {
          if (dtype === "BF16") {
            f[i] = new Float32Array(new Uint32Array([h[i] << 16]).buffer)[0];
            continue;
          }
          const e = (h[i] >> 10) & 31, m = h[i] & 1023;
          const s = h[i] & 0x8000 ? -1 : 1;
          f[i] = e === 31
            ? NaN
            : e === 0
            ? s * m * 2 ** -24
            : s * (1 + m / 1024) * 2 ** (e - 15);
        }
        const bytes = new Uint8Array(h.buffer);
        // the rows at byte 6 of a file, as a tensor in a safetensors file
        await Deno.writeFile(
          path,
          new Uint8Array([...new Uint8Array(6), ...bytes]),
        );
        for (const kind of ["q8", "q4"] as const) {
          const want = kind === "q8"
            ? quantizeQ8(f, r, c)
            : quantizeQ4(f, r, c);
          const job = { kind, dtype, rows: r, cols: c };
          const a = quantizeChunk({ ...job, bytes });
          const b = quantizeFileChunk({
            ...job,
            file: { path, offset: 6, length: bytes.length },
          });
          for (const got of [a, b]) {
            assert.deepEqual(
              got.data,
              new Uint8Array(want.data.buffer),
              `${dtype} ${kind} nan=${nan}`,
            );
            assert.deepEqual(got.scales, want.scales, `${dtype} ${kind}`);
          }
        }
      }
    }
    // a file shorter than the rows: a one-line FormatError naming it
    assert.throws(
      () =>
        quantizeFileChunk({
          kind: "q4",
          dtype: "F16",
          rows: 1,
          cols: 64,
          file: { path, offset: 0, length: 128 * 1024 * 1024 },
        }),
      /ends before byte/,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("the quantization pool: workers give lib/quant's bytes; a worker that cannot start leaves the work to this thread", async () => {
  const { QuantPool } = await import("../../lib/split/_quant_pool.ts");
  const r = 16, c = 96;
  const w = rows(r * c, 5);
  const want = quantizeQ4(w, r, c);
  for (
    const opts of [
      { workers: 2 },
      {
        workers: 1,
        url: new URL("data:application/javascript,throw new Error('no')"),
      },
    ]
  ) {
    const pool = await QuantPool.create(opts);
    try {
      assert.equal(pool.workers, opts.url ? 0 : 2);
      const got = await pool.quantize(
        "q4",
        "F32",
        new Uint8Array(w.slice().buffer),
        r,
        c,
      );
      assert.deepEqual(got.data, want.data);
      assert.deepEqual(got.scales, want.scales);
    } finally {
      pool.close();
    }
  }
});

Deno.test("the quantization pool packs every encoding of the registry as its codec does, from F32, F16 and BF16", async () => {
  const { QuantPool } = await import("../../lib/split/_quant_pool.ts");
  const r = 6, c = 512; // whole K-quant blocks (256) and 32-blocks
  const w = rows(r * c, 11);
  const pool = await QuantPool.create({ workers: 2 });
  try {
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const bytes = fromFloat32(w, dtype);
      const exact = toFloat32(bytes, dtype); // what the codec sees
      for (const e of PACKED) {
        const want = e.encode(exact, r, c);
        const got = await pool.quantize(
          e.name as PackedName,
          dtype,
          bytes.slice(),
          r,
          c,
        );
        assert.deepEqual(
          new Uint8Array(
            got.data.buffer,
            got.data.byteOffset,
            got.data.byteLength,
          ),
          new Uint8Array(
            want.data.buffer,
            want.data.byteOffset,
            want.data.byteLength,
          ),
          `${e.name} ${dtype} data`,
        );
        assert.deepEqual(got.scales, want.scales, `${e.name} ${dtype} scales`);
      }
    }
  } finally {
    pool.close();
  }
});

Deno.test("SIMD widening of F16 and BF16 gives lib/quant/half.ts's f32 for every 16-bit pattern", () => {
  assert.ok(simdQuant(), "WebAssembly SIMD is available");
  const n = 65536;
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = i;
  const bytes = new Uint8Array(bits.buffer);
  for (const dtype of ["F16", "BF16"] as const) {
    const into = simdInput(n)!;
    assert.ok(simdWiden(bytes, dtype, n));
    const got = new Uint32Array(into.buffer, 0, n).slice();
    const want = toFloat32(bytes, dtype);
    const wantBits = new Uint32Array(want.buffer, want.byteOffset, n);
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(want[i])) {
        // a NaN stays a NaN with its sign (payload bits are not compared)
        assert.ok(Number.isNaN(into[i]), `${dtype} ${i.toString(16)}`);
        assert.equal(
          got[i] >>> 31,
          i >>> 15,
          `${dtype} ${i.toString(16)} sign`,
        );
      } else {
        assert.equal(got[i], wantBits[i], `${dtype} ${i.toString(16)}`);
      }
    }
  }
  // ragged sizes are left to JavaScript
  assert.equal(simdWiden(new Uint8Array(6), "F16", 3), false);
});

Deno.test("the quantization pool packs into written output buffers handed back, and reads into returned inputs", async () => {
  const { QuantPool } = await import("../../lib/split/_quant_pool.ts");
  const r = 8, c = 64;
  const w = rows(r * c, 3);
  const pool = await QuantPool.create({ workers: 0 }); // this thread: buffers keep their identity
  try {
    const input = pool.buffer(r * c * 4);
    input.set(new Uint8Array(w.slice().buffer));
    const a = await pool.quantize("q4", "F32", input, r, c);
    assert.equal(pool.buffer(r * c * 4).buffer, input.buffer); // the input came back
    pool.recycleOutput(a.data);
    pool.recycleOutput(a.scales!);
    const b = await pool.quantize(
      "q4",
      "F32",
      new Uint8Array(w.slice().buffer),
      r,
      c,
    );
    assert.equal(b.data.buffer, a.data.buffer);
    assert.equal(b.scales!.buffer, a.scales!.buffer);
    const want = quantizeQ4(w, r, c);
    assert.deepEqual(b.data, want.data);
    assert.deepEqual(b.scales, want.scales);
  } finally {
    pool.close();
  }
});

Deno.test("the runtime's Float16Array rounds scales as f32ToF16 does (every exponent, ties, subnormals)", () => {
  const F16 = (globalThis as {
    Float16Array?: new (n: number) => ArrayLike<number> & {
      set(a: ArrayLike<number>): void;
      buffer: ArrayBufferLike;
    };
  }).Float16Array;
  if (!F16) return; // the packer then calls f32ToF16 per scale
  const bits = new Uint32Array(1 << 20);
  let s = 7;
  for (let i = 0; i < bits.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // low mantissa bits forced to an exact f16 tie on a quarter of them
    bits[i] = (i & 3) === 0 ? (s & ~0x1fff) | 0x1000 : s;
    if (((bits[i] >>> 23) & 0xff) === 0xff) bits[i] &= ~0x7f800000; // no NaN/inf
  }
  const f = new Float32Array(bits.buffer);
  const h = new F16(f.length);
  h.set(f);
  const got = new Uint16Array(h.buffer);
  for (let i = 0; i < f.length; i++) {
    if (got[i] !== f32ToF16(f[i])) {
      assert.fail(`${f[i]}: ${got[i]} vs ${f32ToF16(f[i])}`);
    }
  }
});

Deno.test("F16/BF16 packed in one pass (widened in registers) match lib/quant at the edges: ties between +m and -m, the largest last, zero and -0 blocks, subnormal halves, tiny and huge blocks; infinities fall back", () => {
  const r = 16, c = 128; // 64 blocks
  const w = rows(r * c, 21);
  w.set([5, 0, -5], 32 * 1); // +m first
  w.set([-7, 1, 7], 32 * 2 + 10); // -m first
  w[32 * 3 + 31] = 9; // the largest is the block's last element
  w[32 * 4 + 31] = -9;
  w.fill(0, 32 * 5, 32 * 6);
  w.fill(-0, 32 * 6, 32 * 7);
  w.set([-0, 0, -0], 32 * 7);
  for (let j = 0; j < 32; j++) w[32 * 8 + j] = (j - 16) * 2 ** -24; // subnormal halves
  for (let j = 0; j < 32; j++) w[32 * 9 + j] = (j % 5 - 2) * 2 ** -20;
  for (let j = 0; j < 32; j++) w[32 * 10 + j] = (j - 15) * 2048; // up to 34816
  w[32 * 11 + 7] = 65504; // the largest half
  w[32 * 11 + 8] = -65504;
  for (let j = 0; j < 32; j++) w[32 * 12 + j] = (j - 16) + 0.5; // q8 ties
  w[32 * 12 + 31] = 127;
  for (const dtype of ["F16", "BF16"] as const) {
    const h = new Uint16Array(r * c);
    for (let i = 0; i < h.length; i++) {
      h[i] = dtype === "F16"
        ? toF16Bits(w[i])
        : new Uint32Array(new Float32Array([w[i]]).buffer)[0] >>> 16;
    }
    // decoded independently: exact half → float, bfloat16 → its top bits
    const f = dtype === "F16"
      ? Float32Array.from(h, (x) => {
        const e = (x >> 10) & 31, m = x & 1023, s = x & 0x8000 ? -1 : 1;
        return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
      })
      : new Float32Array(Uint32Array.from(h, (x) => x << 16).buffer);
    for (const inf of [false, true]) {
      const hh = h.slice();
      const ff = f.slice();
      if (inf) {
        hh[32 * 13 + 3] = dtype === "F16" ? 0xfc00 : 0xff80; // -Infinity
        ff[32 * 13 + 3] = -Infinity;
      }
      const bytes = new Uint8Array(hh.buffer);
      for (const kind of ["q8", "q4"] as const) {
        const want = kind === "q8"
          ? quantizeQ8(ff, r, c)
          : quantizeQ4(ff, r, c);
        const label = `${dtype} ${kind}${inf ? " with -Infinity" : ""}`;
        const fused = quantizeSimdWide(kind, dtype, bytes, r, c, f32ToF16);
        assert.equal(fused === null, inf, `${label}: the one-pass path`);
        const got = quantizeChunk({ kind, dtype, bytes, rows: r, cols: c });
        assert.deepEqual(got.data, new Uint8Array(want.data.buffer), label);
        assert.deepEqual(got.scales, want.scales, label);
      }
    }
  }
  // BF16 blocks so small that 1/d overflows: lib/quant does the chunk
  const tiny = rows(2 * 64, 9).map((x) => x * 1e-39);
  const hb = Uint16Array.from(
    new Uint32Array(tiny.buffer),
    (x) => x >>> 16,
  );
  const fb = new Float32Array(Uint32Array.from(hb, (x) => x << 16).buffer);
  for (const kind of ["q8", "q4"] as const) {
    const bytes = new Uint8Array(hb.buffer);
    assert.equal(quantizeSimdWide(kind, "BF16", bytes, 2, 64, f32ToF16), null);
    const want = kind === "q8" ? quantizeQ8(fb, 2, 64) : quantizeQ4(fb, 2, 64);
    const got = quantizeChunk({
      kind,
      dtype: "BF16",
      bytes,
      rows: 2,
      cols: 64,
    });
    assert.deepEqual(got.data, new Uint8Array(want.data.buffer), kind);
    assert.deepEqual(got.scales, want.scales, kind);
  }
});

Deno.test("the one-pass kernels give the same bytes with the relaxed truncation as with the saturating one", () => {
  const plain = simdModule(false);
  const relaxed = simdModule(true);
  assert.ok(plain !== null, "WebAssembly SIMD");
  if (relaxed === null) return; // a runtime without relaxed SIMD uses plain
  const n = 1 << 16;
  const w = rows(n, 33);
  w.set([5, 0, -5], 64);
  for (let j = 0; j < 32; j++) w[128 + j] = (j - 16) + 0.5;
  for (let j = 0; j < 32; j++) w[160 + j] = (j - 16) * 2 ** -24;
  w.fill(0, 192, 224);
  w[250] = 65504;
  for (const dtype of ["F16", "BF16"] as const) {
    const h = Uint16Array.from(
      w,
      (x) =>
        dtype === "F16"
          ? toF16Bits(x)
          : new Uint32Array(new Float32Array([x]).buffer)[0] >>> 16,
    );
    for (const kind of ["q8", "q4"] as const) {
      const name = `${kind}${dtype.toLowerCase()}` as
        | "q8f16"
        | "q4f16"
        | "q8bf16"
        | "q4bf16";
      const outs: Uint8Array[] = [plain, relaxed].map((m: Simd) => {
        m.memory.grow(Math.ceil((n * 4) / 65536));
        new Uint16Array(m.memory.buffer, 0, n).set(h);
        assert.equal(m[name](0, n / 32, n * 2, n * 3 + 64), 0, name);
        return new Uint8Array(m.memory.buffer, n * 2, n + 64 + n / 8).slice();
      });
      const at = outs[0].findIndex((b, i) => b !== outs[1][i]);
      assert.equal(at, -1, `${name}: data and scales differ at byte ${at}`);
    }
  }
});

Deno.test("chunks of different sizes on one thread, after a warm-up, all match lib/quant (the memory regions are sized for the largest)", () => {
  warmSimd(64 * 256);
  for (const [r, c] of [[64, 256], [3, 64], [80, 256], [1, 32], [64, 256]]) {
    const w = rows(r * c, r + c);
    const h = Uint16Array.from(w, toF16Bits);
    const f = Float32Array.from(h, (x) => {
      const e = (x >> 10) & 31, m = x & 1023, s = x & 0x8000 ? -1 : 1;
      return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    });
    const bytes = new Uint8Array(h.buffer);
    for (const kind of ["q8", "q4"] as const) {
      const want = kind === "q8" ? quantizeQ8(f, r, c) : quantizeQ4(f, r, c);
      const got = quantizeSimdWide(kind, "F16", bytes, r, c, f32ToF16);
      assert.ok(got !== null, `${r}x${c} ${kind}: the one-pass path`);
      assert.deepEqual(got.data, new Uint8Array(want.data.buffer), `${r}x${c}`);
      assert.deepEqual(got.scales, want.scales, `${r}x${c} ${kind}`);
    }
  }
});
