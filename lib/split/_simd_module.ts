/**
 * The WebAssembly SIMD module of the split's q8/q4 packing, put together
 * from kernels assembled instruction by instruction (no build step, nothing
 * fetched): _simd_kernel_f32.ts and _simd_kernel_wide.ts, with the encoder
 * of _wasm.ts. The kernels' semantics are described in _simd_quant.ts, which
 * instantiates the module.
 * Exports: `q8`, `q4` (f32 rows), `f16`, `bf16` (widening), `q8f16`,
 * `q4f16`, `q8bf16`, `q4bf16` (one pass from 16-bit floats).
 *
 * @module
 */

import { section, str, uleb, vec } from "./_wasm.ts";
import { quantFunction, widenFunction } from "./_simd_kernel_f32.ts";
import { quantWideFunction } from "./_simd_kernel_wide.ts";

/**
 * The module's bytes; `relaxed`: with the relaxed-SIMD truncation in the
 * one-pass kernels (a runtime without relaxed SIMD refuses to compile it).
 *
 * @example
 * ```ts
 * import { moduleBytes } from "./_simd_module.ts";
 * const mod = new WebAssembly.Module(moduleBytes(false) as BufferSource);
 * console.log(WebAssembly.Module.exports(mod).length); // 8
 * ```
 */
export function moduleBytes(relaxed: boolean): Uint8Array {
  const type = section(
    1,
    vec([[0x60, ...vec([[0x7f], [0x7f], [0x7f], [0x7f]]), ...vec([[0x7f]])]]),
  );
  const imports = section(
    2,
    vec([[...str("env"), ...str("mem"), 0x02, 0x00, ...uleb(1)]]),
  );
  const funcs = section(3, vec(Array.from({ length: 8 }, () => [0x00])));
  const exports = section(
    7,
    vec([
      [...str("q8"), 0x00, 0x00],
      [...str("q4"), 0x00, 0x01],
      [...str("f16"), 0x00, 0x02],
      [...str("bf16"), 0x00, 0x03],
      [...str("q8f16"), 0x00, 0x04],
      [...str("q4f16"), 0x00, 0x05],
      [...str("q8bf16"), 0x00, 0x06],
      [...str("q4bf16"), 0x00, 0x07],
    ]),
  );
  const code = section(
    10,
    vec([
      quantFunction("q8"),
      quantFunction("q4"),
      widenFunction("F16"),
      widenFunction("BF16"),
      quantWideFunction({ kind: "q8", dtype: "F16", relaxed }),
      quantWideFunction({ kind: "q4", dtype: "F16", relaxed }),
      quantWideFunction({ kind: "q8", dtype: "BF16", relaxed }),
      quantWideFunction({ kind: "q4", dtype: "BF16", relaxed }),
    ]),
  );
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...type,
    ...imports,
    ...funcs,
    ...exports,
    ...code,
  ]);
}
