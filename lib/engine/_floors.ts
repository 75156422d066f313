/**
 * Measures the floors {@link predict} uses, on this machine: the sequential
 * read rate of the model's files (or of a temporary file), and, when a GPU
 * adapter is there, the upload rate (`queue.writeBuffer`) and the matvec
 * kernel's weight bandwidth for the model's encoding.
 *
 * @module
 */
import { join } from "node:path";
import { warmReadRate } from "../_io_rate.ts";
import type { Floors, WeightEncoding } from "./predict.ts";
import type { Gpu } from "../gpu/device.ts";
import {
  encoding as encodingRecord,
  type EncodingName,
  floatEncoding,
} from "../quant/encoding.ts";
import { mapFile } from "./_mmap.ts";
import { gpuUploadTarget, pieceWriter } from "./_upload.ts";

/**
 * Warm sequential read rate of `files` (their first `bytes`), or of a
 * temporary file of `bytes` when there are none; bytes/s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { measureReadRate } from "./_floors.ts";
 * assert.ok(await measureReadRate([], 1 << 20) > 0);
 * ```
 */
export async function measureReadRate(
  files: string[],
  bytes = 256 << 20,
): Promise<number> {
  if (files.length > 0) return await warmReadRate(files, bytes);
  const dir = await Deno.makeTempDir({ prefix: "strata-plan-" });
  try {
    const path = join(dir, "probe");
    const chunk = new Uint8Array(Math.min(bytes, 16 << 20));
    chunk.fill(0x5a);
    const f = await Deno.open(path, { write: true, create: true });
    try {
      for (let done = 0; done < bytes; done += chunk.length) {
        let k = 0;
        const n = Math.min(chunk.length, bytes - done);
        while (k < n) k += await f.write(chunk.subarray(k, n));
      }
    } finally {
      f.close();
    }
    return await warmReadRate([path], bytes);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** GPU floors and the adapter's name. */
export interface GpuFloors extends Floors {
  /** Adapter description. */
  adapter: string;
  /** Host → GPU upload, bytes/s. */
  uploadBps: number;
  /** Matvec weight bytes per second. */
  computeBps: number;
  /** Whether the adapter runs on the CPU. */
  cpuAdapter: boolean;
  /** Upload of one expert as the expert store does it (when asked for), bytes/s. */
  expertUploadBps?: number;
  /** Share of the shorter of upload and compute not hidden when they run at once (see {@link overlapProbe}; measured on a GPU only: on a CPU adapter they add up). */
  overlap?: number;
}

/**
 * Upload (`queue.writeBuffer` of 64 MiB) and matvec (4096x4096 of the
 * encoding) rates on `gpu`. Takes a few seconds (longer on a CPU adapter).
 * With `upload.expertBytes`, also the upload of one expert of that size as
 * the expert store uploads it (lib/engine/_experts.ts: in the same pieces,
 * from a mapping of `upload.file` where it can be mapped, else from a reused
 * host image), timed on the second pass. The upload is timed on a warm
 * buffer ({@link timedUpload}'s later passes).
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "../gpu/device.ts";
 * import { gpuFloors } from "./_floors.ts";
 * console.log(await gpuFloors(await requestGpu(), "F16"));
 * ```
 */
export async function gpuFloors(
  gpu: Gpu,
  encoding: WeightEncoding,
  upload: { bytes?: number; file?: string; expertBytes?: number } = {},
): Promise<GpuFloors> {
  // the upload as the engine does it (a slot-sized buffer, from a layer
  // file's mapping when there is one), timed once the slot is warm, as in
  // steady state (timedUpload)
  const size = probeSize(gpu, upload.bytes ?? 64 << 20, 1 << 20);
  const dtype = (floatEncoding(encoding) ?? encodingRecord(encoding)).name;
  const cpuAdapter = isCpuAdapter(gpu);
  const { best, overlap } = await withUploadSource(
    upload.file,
    size,
    async (host) => ({
      best: await timedUpload(gpu, host, size),
      // on a CPU adapter upload and compute add up whatever it says (predict)
      overlap: cpuAdapter
        ? undefined
        : await overlapProbe(gpu, dtype, host, size),
    }),
  );
  const expertUploadBps = upload.expertBytes
    ? await expertUpload(gpu, upload.expertBytes, upload.file)
    : undefined;
  const { benchKernels } = await import("../gpu/bench.ts");
  const report = await benchKernels(gpu, {
    dtypes: [dtype],
    shapes: [[4096, 4096]],
    prefillT: 0,
    rounds: 2,
    roundMs: 150,
    idleWaitMs: 200,
  });
  return {
    adapter: gpu.adapter.description || gpu.adapter.vendor || "WebGPU",
    uploadBps: size / best,
    computeBps: report.kernels[0].gbps * 1e9,
    cpuAdapter,
    ...(overlap !== undefined ? { overlap } : {}),
    ...(expertUploadBps ? { expertUploadBps } : {}),
  };
}

/**
 * Writes `host`'s first `size` bytes into `buf` as the engine uploads
 * ({@link pieceWriter}), then hands them to the queue.
 */
function uploadInto(
  gpu: Gpu,
  buf: GPUBuffer,
  host: Uint8Array,
  size: number,
): void {
  const target = gpuUploadTarget(gpu.device);
  pieceWriter(target, buf, size)(0, host.subarray(0, size));
  target.flush!();
}

/** A buffer to upload `size` bytes into, as the engine's slots. */
function uploadTarget(gpu: Gpu, size: number): GPUBuffer {
  return gpuUploadTarget(gpu.device).create(size, "floor-probe");
}

/**
 * Seconds of the upload of `host`'s first `size` bytes into a fresh buffer
 * ({@link uploadInto}): the best of the second to fourth of four passes (a
 * warm buffer, as in steady state). On this project's VM the first pass into
 * fresh memory ran at 0.3 GB/s and the second at 3.8, where the third and
 * later ran at 9.2-9.4 GB/s, the rate the engine's reused slots see.
 */
async function timedUpload(
  gpu: Gpu,
  host: Uint8Array,
  size: number,
): Promise<number> {
  const buf = uploadTarget(gpu, size);
  let best = Infinity;
  try {
    for (let r = 0; r < 4; r++) {
      await gpu.device.queue.onSubmittedWorkDone();
      const t0 = performance.now();
      uploadInto(gpu, buf, host, size);
      await gpu.device.queue.onSubmittedWorkDone();
      if (r > 0) best = Math.min(best, (performance.now() - t0) / 1000);
    }
  } finally {
    buf.destroy();
  }
  return best;
}

/**
 * The share of the shorter of two jobs (`u`, `c` seconds alone) that does
 * not hide behind the longer when they take `both` seconds at once:
 * (both - max) / min, clamped to [0, 1].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlapOf } from "./_floors.ts";
 * assert.equal(overlapOf(1, 0.5, 1), 0); // hidden
 * assert.equal(overlapOf(1, 0.5, 1.25), 0.5);
 * assert.equal(overlapOf(1, 0.5, 2), 1); // worse than the sum: 1
 * ```
 */
export function overlapOf(u: number, c: number, both: number): number {
  const lo = Math.min(u, c);
  if (!(lo > 0)) return 0;
  return Math.min(1, Math.max(0, (both - Math.max(u, c)) / lo));
}

/**
 * How much of the shorter of an upload and a compute does not hide behind
 * the longer when they run at once, as the ring runs them (a unit's upload
 * beside the compute of the unit before): the upload of `host` alone
 * (`u`), a matvec of `dtype` repeated for about as long alone (`c`), then
 * the two at once (`both`, the matvecs submitted first):
 * {@link overlapOf}, best of two. Near 0 where the copy and the kernels
 * have their own hardware; on a CPU adapter it says how much the copy and
 * the kernels' threads share the cores.
 *
 * @example
 * ```ts ignore
 * import { overlapProbe } from "./_floors.ts";
 * console.log(await overlapProbe(gpu, "f16", new Uint8Array(64 << 20), 64 << 20));
 * ```
 */
export async function overlapProbe(
  gpu: Gpu,
  dtype: EncodingName,
  host: Uint8Array,
  size: number,
): Promise<number> {
  const { matvecLoad } = await import("../gpu/bench.ts");
  const q = gpu.device.queue;
  const load = matvecLoad(gpu, dtype);
  const buf = uploadTarget(gpu, size);
  const secs = async (f: () => void): Promise<number> => {
    await q.onSubmittedWorkDone();
    const t0 = performance.now();
    f();
    await q.onSubmittedWorkDone();
    return (performance.now() - t0) / 1000;
  };
  try {
    const upload = () => uploadInto(gpu, buf, host, size);
    await secs(upload); // touches the buffer
    await secs(() => q.submit([load.commands(2)])); // compiles the kernel
    const one = await secs(() => q.submit([load.commands(8)])) / 8;
    let a = Infinity;
    for (let r = 0; r < 2; r++) {
      const u = await secs(upload);
      const reps = Math.max(1, Math.min(4000, Math.round(u / one)));
      const c = await secs(() => q.submit([load.commands(reps)]));
      const both = await secs(() => {
        q.submit([load.commands(reps)]);
        upload();
      });
      a = Math.min(a, overlapOf(u, c, both));
    }
    return a;
  } finally {
    buf.destroy();
    load.destroy();
  }
}

/**
 * bytes/s of one expert's upload as the expert store does it: from a mapping
 * of `file` (a layer file) where files can be mapped and it is large enough,
 * else from a reused host image (the store's pool); see {@link timedUpload}.
 */
async function expertUpload(
  gpu: Gpu,
  bytes: number,
  file?: string,
): Promise<number> {
  const size = probeSize(gpu, bytes, 256);
  return size /
    await withUploadSource(file, size, (host) => timedUpload(gpu, host, size));
}

/** A probe's upload size: `bytes`, at most 1 GiB and the largest buffer, a multiple of 256, at least `min`. */
function probeSize(gpu: Gpu, bytes: number, min: number): number {
  const most = Math.floor(gpu.limits.maxBufferSize / 256) * 256;
  return Math.max(min, Math.min(bytes, 1 << 30, most) & ~255);
}

/**
 * Runs `f` on `size` bytes to upload: a mapping of `file` where files can be
 * mapped and it is that large (unmapped after), else a filled heap buffer.
 */
async function withUploadSource<T>(
  file: string | undefined,
  size: number,
  f: (host: Uint8Array) => Promise<T>,
): Promise<T> {
  const mapped = file && (await Deno.stat(file)).size >= size
    ? mapFile(file, size)
    : null;
  const host = mapped?.bytes ?? new Uint8Array(size).fill(1);
  try {
    return await f(host);
  } finally {
    mapped?.unmap();
  }
}

/**
 * Whether `gpu` runs on the CPU: the fallback adapter, or a software
 * rasterizer by name (Mesa's lavapipe and llvmpipe report no fallback flag).
 */
function isCpuAdapter(gpu: Gpu): boolean {
  const name = `${gpu.adapter.description} ${gpu.adapter.vendor}`;
  return gpu.adapter.isFallback ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(name);
}

/**
 * {@link gpuFloors} on the default WebGPU adapter, or null when there is none.
 *
 * @example
 * ```ts ignore
 * import { measureGpuFloors } from "./_floors.ts";
 * console.log(await measureGpuFloors("F16"));
 * ```
 */
export async function measureGpuFloors(
  encoding: WeightEncoding,
  upload: { bytes?: number; file?: string; expertBytes?: number } = {},
): Promise<GpuFloors | null> {
  const { requestGpu } = await import("../gpu/device.ts");
  let gpu: Gpu;
  try {
    gpu = await requestGpu();
  } catch {
    return null;
  }
  try {
    return await gpuFloors(gpu, encoding, upload);
  } finally {
    gpu.device.destroy();
  }
}
