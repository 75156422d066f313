/**
 * How a kernel's WGSL is put together from one body and shared pieces.
 *
 * - {@link kernelSource}: the op's TypeScript file declares the kernel's
 *   storage bindings (inputs, then the output) and its `Params` fields; the
 *   declarations are generated here, in that fixed order with the uniform
 *   `params: Params` last, so a body file (`kernels/<op>.wgsl`) holds only
 *   the algorithm. The output is written through `fn store(i, v)`, generated
 *   for the output binding: an in-place variant binds an input as the output
 *   (one `read_write` binding) and the same body runs unchanged.
 * - {@link section}: an encoding's decode file (`kernels/_decode_<name>.wgsl`)
 *   holds sections opened by `// @section <name>: <comment>`.
 * - {@link expand}: the unrolled register tiles of the matmul bodies are
 *   written once: a line holding `#r` (`#t`, `#j`) is repeated for every row
 *   (token, value group) of the tile, `{%...%}` repeats its content inline
 *   joined by ", ", and `//@each j` ... `//@end` repeats a block of lines.
 *   `{{NAME}}` is replaced by a count.
 *
 * @module
 */

import { GpuError } from "../errors.ts";
import common from "../../kernels/_common.wgsl" with { type: "text" };

const MARKER = /^\/\/ @section ([a-z0-9_]+)\b.*$/;

/**
 * The lines of section `name` of `src` ("" when it has none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { section } from "./_wgsl.ts";
 * const src = "// header\n// @section a: one\nfn a() {}\n// @section b\nfn b() {}\n";
 * assert.equal(section(src, "a"), "fn a() {}\n");
 * assert.equal(section(src, "c"), "");
 * ```
 */
export function section(src: string, name: string): string {
  const out: string[] = [];
  let on = false;
  for (const line of src.split("\n")) {
    const m = MARKER.exec(line);
    if (m) {
      on = m[1] === name;
      continue;
    }
    if (on) out.push(line);
  }
  return out.length ? out.join("\n").replace(/\n*$/, "\n") : "";
}

/** Counts of the repeat markers of {@link expand}: `r`, `t`, `j` and named `{{...}}` values. */
export type Counts = Record<string, number>;

function repeatLine(line: string, counts: Counts): string[] {
  // the first marker outside {%...%} repeats the line; it is replaced everywhere
  const m = /#([a-z])/.exec(line.replace(/\{%.*?%\}/g, ""));
  if (!m) return [line];
  const n = counts[m[1]];
  if (n === undefined) throw new GpuError(`expand: no count for #${m[1]}`);
  return Array.from(
    { length: n },
    (_, i) => repeatLine(line.replaceAll(`#${m[1]}`, String(i)), counts),
  ).flat();
}

function inlineLists(line: string, counts: Counts): string {
  return line.replace(
    /\{%(.*?)%\}/g,
    (_, body: string) => inlineList(body, counts),
  );
}

/** `body` once per value of its first marker, joined by ", " (by " " for statements). */
function inlineList(body: string, counts: Counts): string {
  const m = /#([a-z])/.exec(body);
  if (!m) return body;
  const n = counts[m[1]];
  if (n === undefined) throw new GpuError(`expand: no count for #${m[1]}`);
  const sep = body.trimEnd().endsWith(";") ? " " : ", ";
  return Array.from(
    { length: n },
    (_, i) => inlineList(body.replaceAll(`#${m[1]}`, String(i)), counts),
  ).join(sep);
}

/**
 * Expands the repeat markers of a kernel body (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expand } from "./_wgsl.ts";
 * assert.equal(expand("var a#r = 0.0;", { r: 2 }), "var a0 = 0.0;\nvar a1 = 0.0;");
 * assert.equal(expand("let s = array<f32, {{R}}>({%a#r%});", { r: 3, R: 3 }),
 *   "let s = array<f32, 3>(a0, a1, a2);");
 * ```
 */
export function expand(src: string, counts: Counts): string {
  const named = src.replace(/\{\{([A-Z_]+)\}\}/g, (_, k: string) => {
    if (counts[k] === undefined) throw new GpuError(`expand: no {{${k}}}`);
    return String(counts[k]);
  });
  const lines = named.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const each = /^\s*\/\/@each ([a-z])\s*$/.exec(lines[i]);
    if (each) {
      const end = lines.findIndex((l, k) =>
        k > i && /^\s*\/\/@end\s*$/.test(l)
      );
      if (end < 0) throw new GpuError("expand: //@each without //@end");
      const block = lines.slice(i + 1, end);
      const n = counts[each[1]];
      for (let v = 0; v < n; v++) {
        const sub = block.map((l) => l.replaceAll(`#${each[1]}`, String(v)));
        out.push(expand(sub.join("\n"), counts));
      }
      i = end;
      continue;
    }
    for (const l of repeatLine(lines[i], counts)) {
      out.push(inlineLists(l, counts));
    }
  }
  return out.join("\n");
}

/** One storage binding: WGSL name and element type (`array<...>` is implied). */
export interface Binding {
  /** Name in the WGSL body. */
  name: string;
  /** Element type, e.g. `f32`, `vec4<u32>`. */
  type: string;
  /**
   * "read" for weights; activations default to "read_write" so that inputs
   * and the output may be disjoint ranges of one buffer.
   */
  access?: "read" | "read_write";
}

/** A kernel: bindings, Params fields and body. */
export interface KernelSpec {
  /** Storage bindings read (in order). */
  inputs: Binding[];
  /** The written binding; `store(i, v)` writes element i (f32 outputs only). */
  output: Binding;
  /** Params fields in order (`u32` or `f32`); padded to 16 bytes. */
  params: Fields;
  /** The WGSL after the declarations (snippets + body). */
  body: string;
  /** WGSL extensions the body needs (`f16`, `subgroups`): `enable <name>;` first. */
  enables?: string[];
}

/**
 * The WGSL of a kernel: `_common.wgsl`, the `Params` struct, the bindings
 * (inputs, output, params) and `store()`, then the body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelSource } from "./_wgsl.ts";
 * const src = kernelSource({
 *   inputs: [{ name: "x", type: "f32" }],
 *   output: { name: "out", type: "f32" },
 *   params: [["n", "u32"]],
 *   body: "// body",
 * });
 * assert.ok(src.includes("@group(0) @binding(2) var<uniform> params: Params;"));
 * ```
 */
export function kernelSource(k: KernelSpec): string {
  const fields = k.params.map(([n, t]) => `  ${n}: ${t},`);
  for (let i = 0; fields.length % 4 !== 0; i++) fields.push(`  _pad${i}: u32,`);
  const decl = [
    ...k.inputs.map((b, i) =>
      `@group(0) @binding(${i}) var<storage, ${
        b.access ?? "read_write"
      }> ${b.name}: array<${b.type}>;`
    ),
    `@group(0) @binding(${k.inputs.length}) var<storage, read_write> ${k.output.name}: array<${k.output.type}>;`,
    `@group(0) @binding(${k.inputs.length + 1}) var<uniform> params: Params;`,
  ];
  const store = k.output.type === "f32"
    ? `fn store(i: u32, v: f32) { ${k.output.name}[i] = v; }\n`
    : "";
  const enables = (k.enables ?? []).map((e) => `enable ${e};\n`).join("");
  return `${enables}${common}struct Params {\n${fields.join("\n")}\n}\n${
    decl.join("\n")
  }\n${store}${k.body}`;
}

/** Params fields: WGSL name and type, in struct order. */
export type Fields = [string, "u32" | "f32"][];

/**
 * Params fields from a list of names, `name` for u32 and `name:f32` for f32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fields } from "./_wgsl.ts";
 * assert.deepEqual(fields("rows eps:f32"), [["rows", "u32"], ["eps", "f32"]]);
 * ```
 */
export function fields(spec: string): Fields {
  return spec.trim().split(/\s+/).map((f) => {
    const [name, type = "u32"] = f.split(":");
    if (type !== "u32" && type !== "f32") {
      throw new GpuError(`Params field ${f}: type must be u32 or f32`);
    }
    return [name, type];
  });
}

/**
 * Packs the Params fields (`values` by field name: the launcher's arguments
 * and derived numbers) in the order of `fields`, padded to 16 bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packFields } from "./_wgsl.ts";
 * const b = packFields([["n", "u32"], ["eps", "f32"]], { n: 3, eps: 0.5 });
 * assert.deepEqual([b.byteLength, new Uint32Array(b)[0], new Float32Array(b)[1]], [16, 3, 0.5]);
 * ```
 */
export function packFields(list: Fields, values: object): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(list.length / 4) * 16));
  const dv = new DataView(buf);
  list.forEach(([name, type], i) => {
    const v = (values as Record<string, unknown>)[name];
    if (typeof v !== "number") {
      throw new GpuError(`Params: no value for ${name}`);
    }
    if (type === "u32") dv.setUint32(i * 4, v >>> 0, true);
    else dv.setFloat32(i * 4, v, true);
  });
  return buf;
}
