/**
 * The GGUF block kernels (kernels/matvec_ggml.wgsl, matmul_ggml.wgsl with each
 * type's kernels/_ggml_<type>.wgsl decode snippet) against a float64
 * reference: out = x · Wᵀ (+ bias) over the weights as the CPU decoder gives
 * them. For tensors quantized by llama.cpp (tests/fixtures/gguf_llamacpp) the
 * decoder's output is first checked against ggml's own (sha256 recorded when
 * the fixtures were made), so the reference is ggml's dequantization. Every
 * type also runs on blocks from our encoder with a row count that is not a
 * multiple of the 4 rows an invocation computes, a bias, and the weight in two
 * row parts (two dispatches). Run on the default device and with
 * `requestGpu({ f16: false })`.
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
import {
  destroyGgmlWeight,
  type GgmlGpuWeight,
  ggmlRowBytes,
  matmulGgml,
  uploadGgmlWeight,
} from "../../lib/gpu/_matmul_ggml.ts";

const TYPES = Object.keys(GGML_BLOCKS) as GgmlBlockType[];
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

/** Runs matmulGgml (weight in two row parts) and returns out [T, N]. */
async function runKernel(
  g: Gpu,
  type: GgmlBlockType,
  c: Case,
  x: Float32Array,
  t: number,
  bias: Float32Array,
): Promise<Float32Array> {
  const ctx = new KernelContext(g);
  // two parts: rows 0..split-1 and split..n-1, each its own buffer
  const split = Math.ceil(c.n / 2);
  const rb = ggmlRowBytes(type, c.k);
  const lo = uploadGgmlWeight(g, {
    type,
    rows: split,
    cols: c.k,
    bytes: c.bytes.subarray(0, split * rb),
  });
  const hi = uploadGgmlWeight(g, {
    type,
    rows: c.n - split,
    cols: c.k,
    bytes: c.bytes.subarray(split * rb),
  });
  const w: GgmlGpuWeight = {
    type,
    rows: c.n,
    cols: c.k,
    parts: [lo.parts[0], { ...hi.parts[0], rowStart: split }],
  };
  const xb = upload(g, x);
  const bb = upload(g, bias);
  const ob = scratch(g, t * c.n * 4);
  ctx.reset();
  const enc = g.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  matmulGgml(ctx, pass, { x: xb, w, bias: bb, out: ob, T: t });
  pass.end();
  ctx.flush();
  g.device.queue.submit([enc.finish()]);
  const res = await readF32(g, ob, t * c.n);
  for (const b of [xb, bb, ob]) b.buffer.destroy();
  destroyGgmlWeight(lo);
  destroyGgmlWeight(hi);
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
  // the first llama.cpp-quantized tensor of this type, checked against ggml's decode
  for await (const e of Deno.readDir(FIXTURES)) {
    if (!e.name.endsWith(".gguf") || out.length > 1) continue;
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
      if (type !== "Q4_0") {
        assert.equal(cs.length, 2, `${type}: a llama.cpp tensor`);
      }
      const g32 = await requestGpu({ f16: false });
      try {
        for (const dev of [g, g32]) {
          for (const c of cs) {
            await check(dev, type, c);
          }
        }
      } finally {
        g32.device.destroy();
      }
    },
  );
}

if (gpu === null) console.warn("ggml kernel tests skipped: no GPU");
