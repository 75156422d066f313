import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  bf16ToF32,
  f16Table,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  fromFloat32,
  toFloat32,
} from "../../lib/quant/half.ts";

const hasF16 =
  typeof (globalThis as { Float16Array?: unknown }).Float16Array === "function";
type F16ArrayCtor = new (
  n: number | ArrayBufferLike,
) => ArrayLike<number> & { [i: number]: number };
const F16 =
  (globalThis as unknown as { Float16Array: F16ArrayCtor }).Float16Array;

function bitsToF32(b: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, b >>> 0, true);
  return dv.getFloat32(0, true);
}

Deno.test("f32ToF16: IEEE 754 binary16 bit patterns", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite
    [65519, 0x7bff], // below the midpoint to 65536
    [65520, 0x7c00], // midpoint: ties to even → infinity
    [1e9, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -25, 0x0000], // half the smallest subnormal: tie → even (0)
    [1.5 * 2 ** -24, 0x0002], // tie between 1 and 2 → even (2)
    [2.5 * 2 ** -24, 0x0002], // tie between 2 and 3 → even (2)
    [0.75 * 2 ** -24, 0x0001],
    [2 ** -26, 0x0000],
    [-(2 ** -24), 0x8001],
    [1 / 3, 0x3555],
    [1 + 2 ** -11, 0x3c00], // tie → even mantissa 0
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even mantissa 2
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from subnormal into the smallest normal
    [bitsToF32(0x00000001), 0x0000], // f32 subnormal
  ];
  for (const [x, h] of cases) {
    assert.equal(f32ToF16(x).toString(16), h.toString(16), `f32ToF16(${x})`);
  }
  const nan = f32ToF16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x03ff, 0);
  assert.ok(Number.isNaN(f16ToF32(nan)));
  // a signalling-looking NaN payload that would truncate to zero mantissa stays NaN
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(bitsToF32(0x7f800001)))));
});

Deno.test("f16ToF32: known values", () => {
  assert.equal(f16ToF32(0x3c00), 1);
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x03ff), 2 ** -14 - 2 ** -24);
  assert.equal(f16ToF32(0x0400), 2 ** -14);
  assert.equal(f16ToF32(0xc000), -2);
  assert.equal(f16ToF32(0x3555), 0.333251953125);
  assert.equal(f16ToF32(0x7c00), Infinity);
  assert.equal(f16ToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.ok(Object.is(f16ToF32(0x8000), -0));
});

Deno.test(
  "f16 conversions agree with V8's Float16Array (independent implementation)",
  { ignore: !hasF16 },
  () => {
    const a = new F16(1);
    const table = f16Table();
    const u16 = new Uint16Array(1);
    // every f16 bit pattern decodes identically
    for (let h = 0; h < 65536; h++) {
      u16[0] = h;
      const ref = new F16(u16.buffer)[0];
      const got = f16ToF32(h);
      if (Number.isNaN(ref)) {
        assert.ok(Number.isNaN(got) && Number.isNaN(table[h]), `h=${h}`);
        continue;
      }
      assert.ok(
        Object.is(got, ref),
        `f16ToF32(0x${h.toString(16)}) = ${got}, Float16Array says ${ref}`,
      );
      assert.ok(Object.is(table[h], ref));
      // f32 → f16 of every finite f16 value is exact, and of every midpoint to the next value is a tie
      if (Number.isFinite(ref)) {
        assert.equal(f32ToF16(ref), h);
        const next = f16ToF32(h + 1);
        if ((h & 0x7fff) < 0x7bff) {
          for (
            const x of [
              (ref + next) / 2,
              (ref + next) / 2 * (1 + 2 ** -20),
              (ref + next) / 2 * (1 - 2 ** -20),
            ]
          ) {
            if (x === 0) continue;
            a[0] = x;
            const want =
              new Uint16Array((a as unknown as Uint16Array).buffer)[0];
            assert.equal(f32ToF16(x), want, `f32ToF16(${x})`);
          }
        }
      }
    }
    // random f32 bit patterns
    let s = 0x9e3779b9;
    const f = new Float32Array(1);
    const fb = new Uint32Array(f.buffer);
    for (let i = 0; i < 300_000; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      fb[0] = s >>> 0;
      const x = f[0];
      a[0] = x;
      const want = new Uint16Array((a as unknown as Uint16Array).buffer)[0];
      const got = f32ToF16(x);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(f16ToF32(got)));
      else {assert.equal(
          got,
          want,
          `f32ToF16(${x}) bits 0x${fb[0].toString(16)}`,
        );}
    }
  },
);

Deno.test("bf16: known bit patterns, round to nearest even", () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-2), 0xc000);
  assert.equal(f32ToBf16(0), 0x0000);
  assert.equal(f32ToBf16(-0), 0x8000);
  assert.equal(f32ToBf16(Math.PI), 0x4049); // 0x40490FDB: low half < 0x8000 → down
  assert.equal(f32ToBf16(bitsToF32(0x3f808000)), 0x3f80); // tie → even
  assert.equal(f32ToBf16(bitsToF32(0x3f818000)), 0x3f82); // tie → even
  assert.equal(f32ToBf16(bitsToF32(0x3f808001)), 0x3f81); // above tie
  assert.equal(f32ToBf16(bitsToF32(0x7f7fffff)), 0x7f80); // max f32 → inf
  assert.equal(f32ToBf16(Infinity), 0x7f80);
  assert.equal(f32ToBf16(-Infinity), 0xff80);
  assert.equal(f32ToBf16(bitsToF32(0x00000001)), 0x0000); // tiny subnormal
  assert.equal(f32ToBf16(bitsToF32(0x00018000)), 0x0002); // subnormal tie → even
  const nan = f32ToBf16(bitsToF32(0x7f800001)); // NaN with a payload only in the low half
  assert.ok(Number.isNaN(bf16ToF32(nan)));
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0xc000), -2);
  assert.equal(bf16ToF32(0x4049), 3.140625);
  assert.equal(bf16ToF32(0x0001), 2 ** -133);
  assert.equal(bf16ToF32(0x7f80), Infinity);
  assert.equal(bf16ToF32(0x7f7f), 3.3895313892515355e38);
  // every finite bf16 round-trips
  for (let b = 0; b < 65536; b++) {
    const x = bf16ToF32(b);
    if (!Number.isNaN(x)) assert.equal(f32ToBf16(x), b);
  }
});

Deno.test("toFloat32 / fromFloat32 for F32, F16, BF16 (unaligned input too)", () => {
  const vals = new Float32Array([1, -2, 0.5, 65504, 2 ** -24, -0, 3.140625]);
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    const bytes = fromFloat32(vals, dtype);
    assert.equal(bytes.length, vals.length * (dtype === "F32" ? 4 : 2));
    const unaligned = new Uint8Array(bytes.length + 1);
    unaligned.set(bytes, 1);
    for (const src of [bytes, unaligned.subarray(1)]) {
      const back = toFloat32(src, dtype);
      if (dtype === "BF16") {
        assert.deepEqual(
          [...back],
          [...vals].map((v) => bf16ToF32(f32ToBf16(v))),
        );
      } else {
        assert.deepEqual([...back], [...vals]);
      }
    }
  }
  assert.deepEqual([...fromFloat32([1], "F16")], [0x00, 0x3c]);
  assert.deepEqual([...fromFloat32([1], "BF16")], [0x80, 0x3f]);
  assert.deepEqual([...fromFloat32([1], "F32")], [0x00, 0x00, 0x80, 0x3f]);
  assert.deepEqual([
    ...toFloat32(new Uint8Array([0x00, 0x3c, 0xff, 0x7b]), "F16"),
  ], [1, 65504]);
  assert.deepEqual([
    ...toFloat32(new Uint8Array([0x80, 0x3f, 0x00, 0xc0]), "BF16"),
  ], [1, -2]);
  assert.throws(() => toFloat32(new Uint8Array(3), "F16"), UsageError);
  assert.throws(() => toFloat32(new Uint8Array(6), "F32"), UsageError);
  assert.throws(() => toFloat32(new Uint8Array(4), "I8" as "F16"), UsageError);
  assert.throws(() => fromFloat32([1], "I8" as "F16"), UsageError);
});
