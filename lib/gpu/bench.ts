/**
 * Kernel benchmark (`deno run -A cli.ts bench --kernels`): the adapter's
 * buffer-copy bandwidth (the roofline: bytes copied per second by
 * copyBufferToBuffer over 256 MiB), each matvec variant's effective weight
 * bandwidth (weight bytes read ÷ time) for 4096×4096 and 11008×4096
 * (rows × cols), and prefill matmul GFLOP/s at T = 128, each with its ratio to
 * the roofline. Timing: one submit of many dispatches, awaited with
 * onSubmittedWorkDone; best of several rounds (on a CPU adapter each round
 * first waits briefly for the machine to be idle).
 *
 * @module
 */
import type { Gpu, KernelFamily } from "./device.ts";
import { KernelContext } from "./_context.ts";
import { encoding, type EncodingName, ENCODINGS } from "../quant/encoding.ts";
import { destroyWeight, uploadWeight, weightRowBytes } from "./kernels.ts";
import { matmul, planMatmul } from "./ops/matmul.ts";
import type { BufferRef } from "./pipelines.ts";

/** One measured kernel configuration. */
export interface KernelBenchEntry {
  /** Kernel name (its body file without .wgsl, and the dtype). */
  name: string;
  /** Kernel family (lib/gpu/family.ts). */
  family: KernelFamily;
  /** Variant within the kernel (tile, reduction, decode; see planMatmul). */
  variant: string;
  /** Weight dtype. */
  dtype: EncodingName;
  /** `"<rows>x<cols>"`, plus `" T=<tokens>"` for prefill. */
  shape: string;
  /** Weight bytes read per second (GB/s, 1e9). */
  gbps: number;
  /** gbps ÷ copy_gbps. */
  ratio: number;
  /** 2·T·N·K ÷ time (GFLOP/s). */
  gflops: number;
  /** Milliseconds per call (best round). */
  ms: number;
}

/** Result of {@link benchKernels}. */
export interface KernelBenchReport {
  /** The adapter measured (and whether shader-f16 and subgroups are enabled). */
  adapter: Gpu["adapter"] & { f16: boolean; subgroups: boolean };
  /** The kernel families measured. */
  families: KernelFamily[];
  /** copyBufferToBuffer bandwidth (bytes copied per second, GB/s). */
  copy_gbps: number;
  /** Matvec and prefill matmul entries. */
  kernels: KernelBenchEntry[];
}

/** Options of {@link benchKernels}. */
export interface KernelBenchOptions {
  /** Weight dtypes to measure (default: every encoding). */
  dtypes?: EncodingName[];
  /** [rows, cols] of the matvec shapes (default 4096×4096 and 11008×4096). */
  shapes?: [number, number][];
  /** Prefill tokens (default 128); 0 skips prefill. */
  prefillT?: number;
  /** Rounds per measurement, best kept (default 5). */
  rounds?: number;
  /** Target milliseconds per round (default 300; Deno's submit→done latency is ~10 ms). */
  roundMs?: number;
  /** Bytes copied per round of the roofline measurement (default 256 MiB). */
  copyBytes?: number;
  /** Kernel families to measure, each on every config (default: `gpu.kernels`). */
  families?: KernelFamily[];
  /** Progress lines (stderr in the CLI). */
  onProgress?: (line: string) => void;
  /**
   * Milliseconds to wait before each round for the CPU to go idle (only on a
   * fallback/CPU adapter such as lavapipe; default 1000, 0 disables).
   */
  idleWaitMs?: number;
}

const MIB = 1024 * 1024;

function cpuTimes(): [number, number] | null {
  try {
    const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(
      /\s+/,
    ).slice(1).map(Number);
    return [f[3] + (f[4] ?? 0), f.reduce((a, b) => a + b, 0)];
  } catch {
    return null;
  }
}

/**
 * On a CPU (fallback) adapter the kernels share the cores with every other
 * process: wait up to `maxMs` for a 200 ms window in which the machine is
 * ≥ 85 % idle, so that rounds measure the kernel rather than the neighbours.
 */
async function waitIdle(maxMs: number): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxMs) {
    const a = cpuTimes();
    if (!a) return;
    await new Promise((r) => setTimeout(r, 200));
    const b = cpuTimes()!;
    if ((b[0] - a[0]) / Math.max(1, b[1] - a[1]) >= 0.85) return;
  }
}

async function done(device: GPUDevice): Promise<void> {
  await device.queue.onSubmittedWorkDone();
}

/**
 * Measures copyBufferToBuffer bandwidth over `bytes` (default 256 MiB): bytes
 * copied per second, best of `rounds`.
 *
 * @example
 * ```ts ignore
 * import { copyBandwidth } from "./bench.ts";
 * console.log(await copyBandwidth(gpu)); // e.g. 11.3 (GB/s)
 * ```
 */
export async function copyBandwidth(
  gpu: Gpu,
  bytes = 256 * MIB,
  rounds = 4,
): Promise<number> {
  const size = Math.min(
    bytes,
    Math.floor(gpu.limits.maxBufferSize / 256) * 256,
  );
  const usage = GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const a = gpu.device.createBuffer({ size, usage });
  const b = gpu.device.createBuffer({ size, usage });
  try {
    const copies = 3;
    const run = async (n: number): Promise<number> => {
      const enc = gpu.device.createCommandEncoder();
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) enc.copyBufferToBuffer(a, 0, b, 0, size);
        else enc.copyBufferToBuffer(b, 0, a, 0, size);
      }
      const t0 = performance.now();
      gpu.device.queue.submit([enc.finish()]);
      await done(gpu.device);
      return performance.now() - t0;
    };
    await run(1); // first touch of the pages
    let best = Infinity;
    for (let r = 0; r < rounds; r++) best = Math.min(best, await run(copies));
    return (copies * size) / (best / 1000) / 1e9;
  } finally {
    a.destroy();
    b.destroy();
  }
}

/** A deterministic byte pattern for a weight of `dtype` with sane values (no NaN/denormals). */
function weightBytes(
  dtype: EncodingName,
  rows: number,
  cols: number,
): { data: Uint8Array; scales?: Uint16Array } {
  const [rb, sb] = weightRowBytes(dtype, cols);
  const data = new Uint8Array(rb * rows);
  let tile: Uint8Array = new Uint8Array(Math.min(data.length, MIB));
  let s = 0x9e3779b9;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  if (dtype === "f32") {
    const f = new Float32Array(tile.buffer);
    for (let i = 0; i < f.length; i++) f[i] = (next() / 2 ** 32 - 0.5) * 0.1;
  } else if (dtype === "f16" || dtype === "bf16") {
    const h = new Uint16Array(tile.buffer);
    const base = dtype === "f16" ? 0x2000 : 0x3c00; // ~2^-7 magnitudes, random sign and mantissa
    for (let i = 0; i < h.length; i++) h[i] = base | (next() & 0x83ff);
  } else if (encoding(dtype).scales === "inline") {
    // scales inside the blocks (GGUF types): random bytes would hold NaN or
    // subnormal scales, so encode 16 pseudo-random rows and repeat them
    const n = Math.min(rows, 16);
    const src = new Float32Array(n * cols);
    for (let i = 0; i < src.length; i++) {
      src[i] = (next() / 2 ** 32 - 0.5) * 0.1;
    }
    tile = encoding(dtype).encode(src, n, cols).data;
  } else {
    for (let i = 0; i < tile.length; i++) tile[i] = next() & 0xff;
  }
  for (let o = 0; o < data.length; o += tile.length) {
    data.set(tile.subarray(0, Math.min(tile.length, data.length - o)), o);
  }
  if (sb === 0) return { data };
  const scales = new Uint16Array((sb / 2) * rows);
  for (let i = 0; i < scales.length; i++) scales[i] = 0x1c00 | (next() & 0x3ff); // ~2^-8
  return { data, scales };
}

function storage(gpu: Gpu, bytes: number, fill?: Float32Array): BufferRef {
  const size = Math.max(256, Math.ceil(bytes / 256) * 256);
  const buffer = gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST |
      GPUBufferUsage.COPY_SRC,
    mappedAtCreation: fill !== undefined,
  });
  if (fill) {
    new Float32Array(buffer.getMappedRange()).set(fill.subarray(0, size / 4));
    buffer.unmap();
  }
  return { buffer, offset: 0, size };
}

/** A matvec workload: {@link matvecLoad}. */
export interface MatvecLoad {
  /** One command buffer of `reps` matvecs (record, then submit it before recording another). */
  commands(reps: number): GPUCommandBuffer;
  /** Frees its buffers. */
  destroy(): void;
}

/**
 * A `rows` x `cols` matvec of `dtype` (the kernel the engine runs for it)
 * to keep the adapter busy with: lib/engine/_floors.ts times an upload
 * beside it.
 *
 * @example
 * ```ts ignore
 * import { matvecLoad } from "./bench.ts";
 * const load = matvecLoad(gpu, "f16");
 * gpu.device.queue.submit([load.commands(10)]);
 * await gpu.device.queue.onSubmittedWorkDone();
 * load.destroy();
 * ```
 */
export function matvecLoad(
  gpu: Gpu,
  dtype: EncodingName,
  rows = 4096,
  cols = 4096,
): MatvecLoad {
  const ctx = new KernelContext(gpu);
  const bytes = weightBytes(dtype, rows, cols);
  const w = uploadWeight(gpu, {
    dtype,
    rows,
    cols,
    ...bytes,
    label: `load-${dtype}`,
  });
  const xs = new Float32Array(cols);
  for (let i = 0; i < cols; i++) xs[i] = ((i * 37) % 101) / 50 - 1;
  const x = storage(gpu, cols * 4, xs);
  const out = storage(gpu, rows * 4);
  return {
    commands(reps: number): GPUCommandBuffer {
      ctx.reset();
      const enc = gpu.device.createCommandEncoder({ label: "matvec-load" });
      const pass = enc.beginComputePass();
      for (let i = 0; i < reps; i++) matmul(ctx, pass, { x, w, out, T: 1 });
      pass.end();
      const cmd = enc.finish();
      ctx.flush();
      return cmd;
    },
    destroy(): void {
      destroyWeight(w);
      x.buffer.destroy();
      out.buffer.destroy();
    },
  };
}

/**
 * Runs the kernel benchmark on `gpu`.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "./device.ts";
 * import { benchKernels, formatKernelTable } from "./bench.ts";
 * const report = await benchKernels(await requestGpu());
 * console.log(formatKernelTable(report));
 * ```
 */
export async function benchKernels(
  gpu: Gpu,
  opts: KernelBenchOptions = {},
): Promise<KernelBenchReport> {
  const dtypes = opts.dtypes ?? [...ENCODINGS.keys()];
  const shapes = opts.shapes ?? [[4096, 4096], [11008, 4096]];
  const prefillT = opts.prefillT ?? 128;
  const rounds = opts.rounds ?? 5;
  const roundMs = opts.roundMs ?? 300;
  const log = opts.onProgress ?? (() => {});
  const device = gpu.device;
  const idleMs = gpu.adapter.isFallback ? (opts.idleWaitMs ?? 1000) : 0;
  const idle = (): Promise<void> =>
    idleMs > 0 ? waitIdle(idleMs) : Promise.resolve();

  log("copy bandwidth (copyBufferToBuffer, 256 MiB)...");
  let copy = 0;
  for (let i = 0; i < 3; i++) {
    await idle();
    copy = Math.max(
      copy,
      await copyBandwidth(gpu, opts.copyBytes ?? 256 * MIB, 2),
    );
  }
  log(`  ${copy.toFixed(2)} GB/s`);

  const families = opts.families ?? [gpu.kernels];
  const contexts = new Map(
    families.map((f) => [f, new KernelContext({ ...gpu, kernels: f })]),
  );
  let ctx = contexts.get(families[0])!;
  const kernels: KernelBenchEntry[] = [];
  const maxK = Math.max(...shapes.map((s) => s[1]), 4096);
  const maxN = Math.max(...shapes.map((s) => s[0]), 4096);
  const xs = new Float32Array(Math.max(prefillT, 1) * maxK);
  // pseudo-random activations in [-1, 1) (a smooth pattern such as sin(i) made lavapipe measurably slower)
  for (let i = 0, h = 0x2545f491; i < xs.length; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ (i * 0x9e3779b9);
    xs[i] = ((h >>> 8) / 2 ** 24) * 2 - 1;
  }
  const x = storage(gpu, xs.byteLength, xs);
  const out = storage(gpu, Math.max(prefillT, 1) * maxN * 4);

  const time = async (
    record: (pass: GPUComputePassEncoder) => void,
    reps: number,
  ): Promise<number> => {
    ctx.reset();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < reps; i++) record(pass);
    pass.end();
    const cmd = enc.finish();
    ctx.flush();
    const t0 = performance.now();
    device.queue.submit([cmd]);
    await done(device);
    return (performance.now() - t0) / reps;
  };
  const measure = async (
    record: (pass: GPUComputePassEncoder) => void,
  ): Promise<number> => {
    await time(record, 1); // compiles the pipeline, touches the weight pages
    // Deno resolves onSubmittedWorkDone on a ~10 ms poll: size rounds so that it is noise.
    const once = await time(record, 1);
    const probe = once > 50 ? once : await time(record, 4);
    const reps = Math.max(
      1,
      Math.min(400, Math.round(roundMs / Math.max(probe, 0.02))),
    );
    let best = Infinity;
    for (let r = 0; r < rounds; r++) {
      await idle();
      best = Math.min(best, await time(record, reps));
    }
    return best;
  };

  const configs: { dtype: EncodingName; N: number; K: number; T: number }[] =
    [];
  for (const dtype of dtypes) {
    for (const [N, K] of shapes) configs.push({ dtype, N, K, T: 1 });
  }
  if (prefillT > 0) {
    for (const dtype of dtypes) {
      configs.push({ dtype, N: 4096, K: 4096, T: prefillT });
    }
  }

  for (const c of configs) {
    const bytes = weightBytes(c.dtype, c.N, c.K);
    const w = uploadWeight(gpu, {
      dtype: c.dtype,
      rows: c.N,
      cols: c.K,
      ...bytes,
      label: `bench-${c.dtype}`,
    });
    const weightBytesTotal = bytes.data.byteLength +
      (bytes.scales?.byteLength ?? 0);
    for (const family of families) {
      ctx = contexts.get(family)!;
      const ms = await measure((pass) =>
        matmul(ctx, pass, { x, w, out, T: c.T })
      );
      const gbps = weightBytesTotal / (ms / 1000) / 1e9;
      const plan = planMatmul(c.dtype, c.K, c.T, ctx.gpu);
      const entry: KernelBenchEntry = {
        name: plan.kernel,
        family: plan.family,
        variant: plan.variant,
        dtype: c.dtype,
        shape: `${c.N}x${c.K}${c.T > 1 ? ` T=${c.T}` : ""}`,
        gbps: round(gbps),
        ratio: round(gbps / copy, 3),
        gflops: round((2 * c.T * c.N * c.K) / (ms / 1000) / 1e9),
        ms: round(ms, 3),
      };
      kernels.push(entry);
      log(
        `  ${entry.name.padEnd(20)} ${entry.variant.padEnd(10)} ${
          entry.shape.padEnd(16)
        } ${entry.gbps.toFixed(2).padStart(7)} GB/s  ` +
          `${entry.ratio.toFixed(2)} of copy  ${
            entry.gflops.toFixed(1)
          } GFLOP/s`,
      );
    }
    destroyWeight(w);
  }
  x.buffer.destroy();
  out.buffer.destroy();
  return {
    adapter: { ...gpu.adapter, f16: gpu.f16, subgroups: gpu.subgroups },
    families,
    copy_gbps: round(copy),
    kernels,
  };
}

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/**
 * Formats a report as a text table (kernel, dtype, shape, GB/s, ratio to the
 * copy roofline, GFLOP/s, ms).
 *
 * @example
 * ```ts ignore
 * console.log(formatKernelTable(report));
 * ```
 */
export function formatKernelTable(r: KernelBenchReport): string {
  const lines = [
    `adapter: ${
      r.adapter.description || "(unnamed)"
    } (vendor ${r.adapter.vendor}, fallback ${r.adapter.isFallback}, shader-f16 ${r.adapter.f16}, subgroups ${r.adapter.subgroups})`,
    `copy roofline (copyBufferToBuffer, 256 MiB): ${
      r.copy_gbps.toFixed(2)
    } GB/s`,
    "",
    `${"kernel".padEnd(22)}${"family".padEnd(7)}${"variant".padEnd(12)}${
      "dtype".padEnd(7)
    }${"shape".padEnd(18)}${"GB/s".padStart(8)}${"ratio".padStart(8)}${
      "GFLOP/s".padStart(10)
    }${"ms".padStart(10)}`,
  ];
  for (const k of r.kernels) {
    lines.push(
      `${k.name.padEnd(22)}${k.family.padEnd(7)}${k.variant.padEnd(12)}${
        k.dtype.padEnd(7)
      }${k.shape.padEnd(18)}${k.gbps.toFixed(2).padStart(8)}${
        k.ratio.toFixed(2).padStart(8)
      }${k.gflops.toFixed(1).padStart(10)}${k.ms.toFixed(2).padStart(10)}`,
    );
  }
  return lines.join("\n");
}
