/**
 * A deliberately naive matmul (one invocation per output element) used by the
 * engine tests only while lib/gpu/_matmul.ts is unavailable: `patchMatmul`
 * replaces Kernels.matmul when the real one throws "not implemented".
 *
 * @module
 */
import { Kernels as KernelsClass } from "../../lib/gpu/kernels.ts";
import type { Kernels, MatmulArgs } from "../../lib/gpu/kernels.ts";

const SRC = `
struct P { T: u32, N: u32, K: u32, rowStart: u32, rows: u32, dtype: u32, hasBias: u32, kb: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> s: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
fn half(i: u32, arr_is_w: bool) -> u32 { return 0u; }
fn h16(idx: u32) -> f32 { let word = w[idx / 2u]; return unpack2x16float(word)[idx % 2u]; }
fn sc(idx: u32) -> f32 { let word = s[idx / 2u]; return unpack2x16float(word)[idx % 2u]; }
fn b8(idx: u32) -> u32 { return (w[idx / 4u] >> (8u * (idx % 4u))) & 255u; }
fn wel(r: u32, c: u32) -> f32 {
  let K = p.K;
  switch p.dtype {
    case 0u: { return bitcast<f32>(w[r * K + c]); }
    case 1u: { return h16(r * K + c); }
    case 2u: { let idx = r * K + c; return bitcast<f32>(((w[idx / 2u] >> (16u * (idx % 2u))) & 0xffffu) << 16u); }
    case 3u: { let nb = p.kb; let q = i32(b8(r * nb * 32u + c)); let qs = select(q, q - 256, q > 127); return f32(qs) * sc(r * nb + c / 32u); }
    default: { let nb = p.kb; let b = c / 32u; let j = c % 32u; let byte = b8(r * nb * 16u + b * 16u + (j % 16u));
      let nib = select(byte >> 4u, byte & 15u, j < 16u); return (f32(nib) - 8.0) * sc(r * nb + b); }
  }
}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x; let t = g.y;
  if (i >= p.rows || t >= p.T) { return; }
  var acc = 0.0;
  for (var c = 0u; c < p.K; c++) { acc += x[t * p.K + c] * wel(i, c); }
  let n = p.rowStart + i;
  if (p.hasBias == 1u) { acc += bias[n]; }
  o[t * p.N + n] = acc;
}`;

const dummies = new WeakMap<GPUDevice, GPUBuffer>();

function naive(k: Kernels, pass: GPUComputePassEncoder, a: MatmulArgs): void {
  const ctx = k.ctx;
  let dummy = dummies.get(ctx.device);
  if (!dummy) {
    dummy = ctx.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.STORAGE,
    });
    dummies.set(ctx.device, dummy);
  }
  const dt = { f32: 0, f16: 1, bf16: 2, q8: 3, q4: 4 } as const;
  const pipe = ctx.pipeline("naive_matmul", SRC);
  for (const part of a.w.parts) {
    const params = new Uint32Array([
      a.T,
      a.w.rows,
      a.w.cols,
      part.rowStart,
      part.rows,
      dt[a.w.dtype],
      a.bias ? 1 : 0,
      Math.ceil(a.w.cols / 32),
    ]);
    const d = { buffer: dummy, offset: 0, size: 16 };
    const refs = [
      a.x,
      part.data,
      part.scales ?? d,
      a.bias ?? d,
      a.out,
      ctx.params(params),
    ];
    pass.setPipeline(pipe);
    pass.setBindGroup(0, ctx.bindGroup(pipe, refs));
    pass.dispatchWorkgroups(Math.ceil(part.rows / 64), a.T, 1);
  }
}

/**
 * Makes every Kernels.matmul fall back to the naive kernel while the real
 * one throws "not implemented" (lib/gpu/_matmul.ts still a stub).
 */
export function installMatmulFallback(): void {
  const proto = KernelsClass.prototype as unknown as {
    matmul(pass: GPUComputePassEncoder, a: MatmulArgs): void;
    __naive?: boolean;
  };
  if (proto.__naive) return;
  const orig = proto.matmul;
  proto.__naive = true;
  proto.matmul = function (
    this: Kernels,
    pass: GPUComputePassEncoder,
    a: MatmulArgs,
  ) {
    try {
      orig.call(this, pass, a);
    } catch (e) {
      if (!String((e as Error).message).includes("not implemented")) throw e;
      naive(this, pass, a);
    }
  };
}
