/**
 * q8/q4 quantization of f32 rows with WebAssembly SIMD, bit-identical to
 * lib/quant's quantizeQ8/quantizeQ4 (same f32 arithmetic, same first-on-ties
 * maximum). The module is put together in _simd_module.ts from kernels
 * assembled instruction by instruction (no build step, nothing fetched).
 * It covers whole blocks (cols a multiple of 32) of finite scales; a chunk
 * holding a NaN, or a block whose 1/d overflows, is reported back and
 * quantized by lib/quant instead.
 *
 * Per block of 32 floats: the largest |x| by its magnitude bits (monotonic
 * in |x| for non-NaN floats) and the first element holding it; q4:
 * `d = max / -8`, `q = min(15, trunc(x * (1/d) + 8.5))`; q8:
 * `d = max|x| / 127`, `q = roundf(x * (1/d))`. d is stored as f32; the caller
 * rounds it to f16 as lib/quant does.
 *
 * @module
 */

import { moduleBytes } from "./_simd_module.ts";
import { warmForReads } from "../_fs.ts";

/** One exported kernel: `(src, count, outData, outD) -> 0, or 1: lib/quant does it`. */
export type Fn = (a: number, b: number, c: number, d: number) => number;

/** The instantiated module: its memory and kernels. */
export interface Simd {
  memory: WebAssembly.Memory;
  /** Whether the one-pass kernels use the relaxed truncation. */
  relaxed: boolean;
  q8: Fn;
  q4: Fn;
  f16: Fn;
  bf16: Fn;
  q8f16: Fn;
  q4f16: Fn;
  q8bf16: Fn;
  q4bf16: Fn;
}

let simd_: Simd | null | undefined;

/** The instantiated module, or null where WebAssembly SIMD is unavailable. */
export function simdQuant(): Simd | null {
  if (simd_ !== undefined) return simd_;
  // relaxed SIMD where the runtime has it (Deno 2), else plain SIMD
  simd_ = simdModule(true) ?? simdModule(false);
  return simd_;
}

/**
 * A new instance of the module, with or without the relaxed truncation
 * (tests compare the two); null where the runtime cannot compile it.
 *
 * @example
 * ```ts
 * import { simdModule } from "./_simd_quant.ts";
 * console.log(simdModule(false) !== null); // WebAssembly SIMD
 * ```
 */
export function simdModule(relaxed: boolean): Simd | null {
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const mod = new WebAssembly.Module(moduleBytes(relaxed) as BufferSource);
    const inst = new WebAssembly.Instance(mod, { env: { mem: memory } });
    const e = inst.exports as unknown as Omit<Simd, "memory" | "relaxed">;
    return { memory, relaxed, ...e };
  } catch {
    return null;
  }
}

/** The most values a chunk has had on this thread: the regions below are sized for it. */
let cap = 0;

/**
 * Where things lie in the module's memory for chunks of up to `cap` values
 * (grown to `n` if larger): f32 input at 0, packed data, f32 scales, then
 * the raw F16/BF16 input. Every chunk of this thread uses the same regions,
 * so once touched they are never fresh memory again.
 */
function layout(n: number): { outData: number; outD: number; raw: number } {
  cap = Math.max(cap, Math.ceil(n / 32) * 32);
  const outData = cap * 4;
  const outD = outData + cap;
  const raw = Math.ceil((outD + (cap / 32) * 4 + 64) / 16) * 16;
  return { outData, outD, raw };
}

/**
 * Room for `rows * cols` f32 inputs plus the outputs in the module's memory
 * (and the raw 16-bit input {@link simdWiden} reads); returns the f32 input
 * view to fill (then call {@link quantizeSimd}).
 */
export function simdInput(n: number): Float32Array | null {
  const s = simdQuant();
  if (!s) return null;
  const need = layout(n).raw + cap * 2;
  const have = s.memory.buffer.byteLength;
  if (need > have) s.memory.grow(Math.ceil((need - have) / 65536));
  return new Float32Array(s.memory.buffer, 0, n);
}

/**
 * Decodes F16 or BF16 `bytes` into the f32 input view of
 * {@link simdInput} (`n` values) with the module; false when it cannot
 * (no module, or `n` not a multiple of 8): decode in JavaScript then.
 */
export function simdWiden(
  bytes: Uint8Array,
  dtype: "F16" | "BF16",
  n: number,
): boolean {
  const s = simdQuant();
  if (!s || n % 8 !== 0 || bytes.length !== n * 2) return false;
  const { raw } = layout(n);
  if (s.memory.buffer.byteLength < raw + n * 2) return false;
  new Uint8Array(s.memory.buffer, raw, n * 2).set(bytes);
  (dtype === "F16" ? s.f16 : s.bf16)(raw, n / 8, 0, 0);
  return true;
}

/**
 * Room for `n` raw F16/BF16 values and their packing in the module's memory
 * (as {@link simdInput}); returns the view to read the raw bytes into, then
 * call {@link quantizeSimdWide} with `bytes` null. Null without SIMD.
 */
export function simdRawInput(n: number): Uint8Array | null {
  if (!simdInput(n)) return null;
  return new Uint8Array(simdQuant()!.memory.buffer, layout(n).raw, n * 2);
}

/**
 * Readies this thread for chunks of `n` values: grows the module's memory
 * to hold them, touches it (first touching a fresh page costs more than
 * packing it on this project's VM), and runs each one-pass kernel twice on
 * a small chunk so that the engine compiles it with its optimizing tier
 * (the first call runs baseline code at ~6.5 ns a value, the next ~0.9).
 * A split's quantization workers do this before the clock starts: about
 * 50 ms each, once, against 120-135 ms more for their first chunk.
 *
 * @example
 * ```ts
 * import { warmSimd } from "./_simd_quant.ts";
 * warmSimd(1 << 16);
 * ```
 */
export function warmSimd(n: number): void {
  const raw = simdRawInput(n);
  const s = simdQuant();
  if (!raw || !s) return;
  // what the one-pass kernels touch: the outputs and the raw input; 0x11
  // are small normal halves, so every kernel takes its whole path
  const { outData, outD } = layout(n);
  new Uint8Array(
    s.memory.buffer,
    outData,
    raw.byteOffset + raw.length - outData,
  )
    .fill(0x11);
  // the rows are read() into the raw region: a first read into a page costs
  // more than writing it from here
  warmForReads(raw);
  const m = Math.min(n, 1 << 18) & ~31;
  for (const fn of [s.q4f16, s.q8f16, s.q4bf16, s.q8bf16]) {
    for (let i = 0; i < 2; i++) fn(raw.byteOffset, m / 32, outData, outD);
  }
}

/** Whether `b` is the SIMD module's memory (a view's buffer). */
export function isSimdMemory(b: ArrayBufferLike): boolean {
  return simd_ != null && b === simd_.memory.buffer;
}

/** Whether `w` is the input view of {@link simdInput}. */
export function isSimdInput(w: Float32Array): boolean {
  return simd_ != null && w.buffer === simd_.memory.buffer &&
    w.byteOffset === 0;
}

/**
 * Quantizes the `rows * cols` floats placed by {@link simdInput}; null when
 * lib/quant must do it (cols not a multiple of 32, a NaN, an overflowing
 * 1/d, or no SIMD). The data and scales go into buffers of `spare` that are
 * large enough (taken from it), else into new ones.
 */
export function quantizeSimd(
  kind: "q8" | "q4",
  rows: number,
  cols: number,
  f32ToF16: (x: number) => number,
  spare: ArrayBuffer[] = [],
): { data: Uint8Array; scales: Uint16Array } | null {
  const s = simdQuant();
  if (!s || cols % 32 !== 0) return null;
  const n = rows * cols;
  const blocks = n / 32;
  const { outData, outD } = layout(n);
  const dataBytes = kind === "q8" ? n : n / 2;
  const fn = kind === "q8" ? s.q8 : s.q4;
  if (fn(0, blocks, outData, outD) !== 0) return null;
  return packedOut(s, { dataBytes, outData, outD, blocks }, f32ToF16, spare);
}

/**
 * Copies the packed data and the f16-rounded scales out of the module's
 * memory (with `view`, the data stays there: a view valid until the next
 * call).
 */
function packedOut(
  s: Simd,
  o: { dataBytes: number; outData: number; outD: number; blocks: number },
  f32ToF16: (x: number) => number,
  spare: ArrayBuffer[],
  view = false,
): { data: Uint8Array; scales: Uint16Array } {
  const { dataBytes, outData, outD, blocks } = o;
  if (view) {
    // the packed rows where the kernel put them: valid until the next call
    const data = new Uint8Array(s.memory.buffer, outData, dataBytes);
    return { data, scales: f16Scales(s, outD, blocks, f32ToF16, spare) };
  }
  const take = (bytes: number): ArrayBuffer => {
    const i = spare.findIndex((b) => b.byteLength >= bytes);
    return i >= 0 ? spare.splice(i, 1)[0] : new ArrayBuffer(bytes);
  };
  const data = new Uint8Array(take(dataBytes), 0, dataBytes);
  data.set(new Uint8Array(s.memory.buffer, outData, dataBytes));
  return { data, scales: f16Scales(s, outD, blocks, f32ToF16, spare) };
}

/** The module's f32 scales at `outD`, rounded to f16 into a spare or new buffer. */
function f16Scales(
  s: Simd,
  outD: number,
  blocks: number,
  f32ToF16: (x: number) => number,
  spare: ArrayBuffer[],
): Uint16Array {
  const i = spare.findIndex((b) => b.byteLength >= blocks * 2);
  const buf = i >= 0 ? spare.splice(i, 1)[0] : new ArrayBuffer(blocks * 2);
  const d = new Float32Array(s.memory.buffer, outD, blocks);
  const scales = new Uint16Array(buf, 0, blocks);
  if (Float16 !== undefined) {
    // the runtime's f16 rounding (round to nearest even, as f32ToF16), five
    // times faster than a call per scale. No d is a NaN here: a block with a
    // NaN sends its chunk to lib/quant, and ±max / k of a finite or infinite
    // max is not a NaN (a NaN is where f32ToF16 and Float16Array could differ)
    new Float16(scales.buffer, 0, blocks).set(d);
  } else for (let b = 0; b < blocks; b++) scales[b] = f32ToF16(d[b]);
  return scales;
}

/** The runtime's Float16Array, where it has one. */
const Float16 = (globalThis as {
  Float16Array?: new (b: ArrayBufferLike, o: number, n: number) => {
    set(a: ArrayLike<number>): void;
  };
}).Float16Array;

/**
 * Packs F16/BF16 `bytes` (`rows * cols` values; null: already read into
 * {@link simdRawInput}'s view) as q8/q4 in one pass: each block is widened
 * in registers and packed (no f32 copy in memory; 0.37-0.40 ns per value for
 * q4 here, against 1.38 for widen-then-pack), with the same arithmetic as
 * {@link simdWiden} then {@link quantizeSimd}, so the same bytes. Null when
 * that path must be taken instead (no SIMD, cols not a multiple of 32, an
 * infinity or a NaN, an overflowing 1/d). With `view`, the packed rows
 * are returned where the kernel wrote them, in the module's memory (valid
 * until the next call; for a caller that writes them out at once).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeSimdWide } from "./_simd_quant.ts";
 * import { f32ToF16 } from "../quant/half.ts";
 * import { quantizeQ4 } from "../quant/q4.ts";
 * const w = Float32Array.from({ length: 64 }, (_, i) => (i - 30) / 16);
 * const h = Uint16Array.from(w, f32ToF16); // exact in f16
 * const q = quantizeSimdWide("q4", "F16", new Uint8Array(h.buffer), 1, 64, f32ToF16);
 * if (q) assert.deepEqual(q.data, quantizeQ4(w, 1, 64).data);
 * ```
 */
export function quantizeSimdWide(
  kind: "q8" | "q4",
  dtype: "F16" | "BF16",
  bytes: Uint8Array | null,
  rows: number,
  cols: number,
  f32ToF16: (x: number) => number,
  spare: ArrayBuffer[] = [],
  view = false,
): { data: Uint8Array; scales: Uint16Array } | null {
  const n = rows * cols;
  if (cols % 32 !== 0 || (bytes && bytes.length !== n * 2)) return null;
  if (bytes && !simdInput(n)) return null; // room for them
  const s = simdQuant();
  const { raw, outData, outD } = layout(n);
  if (!s || s.memory.buffer.byteLength < raw + n * 2) return null;
  if (bytes) new Uint8Array(s.memory.buffer, raw, n * 2).set(bytes);
  const blocks = n / 32;
  const dataBytes = kind === "q8" ? n : n / 2;
  const fn = dtype === "F16"
    ? (kind === "q8" ? s.q8f16 : s.q4f16)
    : (kind === "q8" ? s.q8bf16 : s.q4bf16);
  if (fn(raw, blocks, outData, outD) !== 0) return null;
  return packedOut(
    s,
    { dataBytes, outData, outD, blocks },
    f32ToF16,
    spare,
    view,
  );
}
