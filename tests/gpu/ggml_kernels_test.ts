/**
 * The GGUF block encodings on the GPU (kernels/matvec_ggml.wgsl,
 * matmul_ggml.wgsl with each type's kernels/_ggml_<type>.wgsl snippet, and
 * matmul_generic with the snippet's weight_at), through the registry's
 * uploadWeight and matmul, against a float64 reference: out = x · Wᵀ + bias
 * over the weights as the CPU decoder gives them. For tensors quantized by
 * llama.cpp (tests/fixtures/gguf_llamacpp) the decoder's output is first
 * checked against ggml's own (sha256 recorded when the fixtures were made), so
 * the reference is ggml's dequantization. Every type also runs on blocks from
 * our encoder: 7 rows (not a multiple of the 4 an invocation computes) and
 * 5 rows of 300 (zero-padded blocks, matmul_generic); T = 1 and 5; the weight
 * in two parts. Tolerance 1e-5·Σ|x·w|. Run on the default device and with
 * `requestGpu({ f16: false })`, each in both kernel families (matvec_coop /
 * matmul_tiled for the GPU family).
 */
import assert from "node:assert/strict";
import { gpu, gpuTest, readF32, scratch, upload } from "../_gpu.ts";
import { type Gpu, requestGpu } from "../../lib/gpu/device.ts";
import {
  dequantizeGgml,
  GGML_BLOCKS,
  type GgmlBlockType,
} from "../../lib/quant/ggml_blocks.ts";
import { quantizeGgml } from "../../lib/quant/ggml_encode.ts";
import { GgufFile } from "../../lib/format/gguf.ts";
import { KernelContext } from "../../lib/gpu/_context.ts";
import { matmul, planMatmul } from "../../lib/gpu/ops/matmul.ts";
import { destroyWeight, uploadWeight } from "../../lib/gpu/kernels.ts";
import { GGML_ENCODING_NAMES } from "../../lib/quant/ggml_encodings.ts";
import { encoding } from "../../lib/quant/encoding.ts";

/** The registry encoding of a GGUF type (Q8_0 / Q4_0 have none: they repack into q8 / q4). */
const encodingOf = (t: GgmlBlockType) =>
  GGML_ENCODING_NAMES[t as keyof typeof GGML_ENCODING_NAMES];
const ggmlRowBytes = (t: GgmlBlockType, k: number) =>
  Math.ceil(k / GGML_BLOCKS[t].elems) * GGML_BLOCKS[t].bytes;

const TYPES = (Object.keys(GGML_BLOCKS) as GgmlBlockType[]).filter((t) =>
  t !== "Q8_0" && t !== "Q4_0"
);
const FIXTURES = new URL("../fixtures/gguf_llamacpp/", import.meta.url)
  .pathname;

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

interface Case {
  what: string;
  bytes: Uint8Array;
  w: Float32Array; // decoded [n, k]
  n: number;
  k: number;
}

/** Runs the registry's matmul on the weight in two parts and returns out [T, N]. */
async function runKernel(
  g: Gpu,
  type: GgmlBlockType,
  c: Case,
  x: Float32Array,
  t: number,
  bias: Float32Array,
): Promise<Float32Array> {
  const ctx = new KernelContext(g);
  const rb = ggmlRowBytes(type, c.k);
  const w = uploadWeight(g, {
    dtype: encodingOf(type),
    rows: c.n,
    cols: c.k,
    data: c.bytes,
    maxPartBytes: Math.ceil(c.n / 2) * rb, // two parts: two dispatches
  });
  assert.equal(w.parts.length, 2);
  const xb = upload(g, x);
  const bb = upload(g, bias);
  const ob = scratch(g, t * c.n * 4);
  ctx.reset();
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  matmul(ctx, pass, { x: xb, w, bias: bb, out: ob, T: t });
  pass.end();
  ctx.flush();
  g.device.queue.submit([enc.finish()]);
  const res = await readF32(g, ob, t * c.n);
  for (const b of [xb, bb, ob]) b.buffer.destroy();
  destroyWeight(w);
  return res;
}

async function check(g: Gpu, type: GgmlBlockType, c: Case): Promise<void> {
  const r = rng(c.n * 31 + c.k);
  for (const t of [1, 5]) {
    const x = Float32Array.from({ length: t * c.k }, () => r() * 2);
    const bias = Float32Array.from({ length: c.n }, () => r());
    const out = await runKernel(g, type, c, x, t, bias);
    for (let tt = 0; tt < t; tt++) {
      for (let i = 0; i < c.n; i++) {
        let s = 0, mag = 0;
        for (let j = 0; j < c.k; j++) {
          const p = c.w[i * c.k + j] * x[tt * c.k + j];
          s += p;
          mag += Math.abs(p);
        }
        s += bias[i];
        const got = out[tt * c.n + i];
        const err = Math.abs(got - s) /
          (mag + Math.abs(bias[i]) + 1e-30);
        assert.ok(
          err < 1e-5,
          `${type} ${c.what} T=${t}: row ${i} token ${tt}: ${got} vs ${s}`,
        );
      }
    }
  }
}

async function cases(type: GgmlBlockType): Promise<Case[]> {
  const { elems } = GGML_BLOCKS[type];
  const r = rng(elems + type.length);
  const n = 7, k = 2 * 256;
  const src = Float32Array.from({ length: n * k }, () => r() * (1 + r()));
  const bytes = quantizeGgml(type, src);
  const out: Case[] = [{
    what: "our encoder, 7 x 512",
    bytes,
    w: dequantizeGgml(type, bytes, n * k),
    n,
    k,
  }];
  // rows of 300: zero-padded to whole blocks, read by matmul_generic's weight_at
  const enc = encoding(encodingOf(type));
  const src300 = Float32Array.from({ length: 5 * 300 }, () => r());
  const p300 = enc.encode(src300, 5, 300);
  assert.equal(planMatmul(enc.name, 300, 1).kernel, "matmul_generic");
  assert.equal(
    planMatmul(enc.name, k, 1, { kernels: "gpu" }).kernel,
    `matvec_coop_${enc.name}`,
  );
  out.push({
    what: "our encoder, 5 x 300 (padded)",
    bytes: p300.data,
    w: enc.decode(p300, 5, 300),
    n: 5,
    k: 300,
  });
  // the first llama.cpp-quantized tensor of this type, checked against ggml's decode
  for await (const e of Deno.readDir(FIXTURES)) {
    if (!e.name.endsWith(".gguf") || out.length > 2) continue;
    const fx = JSON.parse(
      await Deno.readTextFile(FIXTURES + e.name.replace(".gguf", ".json")),
    );
    const g = await GgufFile.open(FIXTURES + e.name);
    try {
      for (const t of g.tensors.values()) {
        if (t.type.name !== type || t.dims.length !== 2) continue;
        const bytes = await g.read(t.name);
        const [k, n] = t.dims;
        const w = dequantizeGgml(type, bytes, n * k);
        const h = await crypto.subtle.digest("SHA-256", w.slice().buffer);
        const hex = [...new Uint8Array(h)].map((b) =>
          b.toString(16).padStart(2, "0")
        ).join("");
        assert.equal(
          hex,
          fx.tensor_sha256[t.name].sha256,
          `${e.name} ${t.name}`,
        );
        out.push({ what: `llama.cpp ${e.name} ${t.name}`, bytes, w, n, k });
        break;
      }
    } finally {
      g.close();
    }
  }
  return out;
}

for (const type of TYPES) {
  gpuTest(
    `ggml kernels: ${type} matvec and matmul match the float64 reference`,
    async (g) => {
      const cs = await cases(type);
      assert.equal(cs.length, 3, `${type}: a llama.cpp tensor`);
      const g32 = await requestGpu({ f16: false });
      try {
        for (const dev of [g, g32]) {
          for (const kernels of ["cpu", "gpu"] as const) {
            for (const c of cs) {
              await check({ ...dev, kernels }, type, c);
            }
          }
        }
      } finally {
        g32.device.destroy();
      }
    },
  );
}

if (gpu === null) console.warn("ggml kernel tests skipped: no GPU");
