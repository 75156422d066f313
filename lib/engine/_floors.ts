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
import { mapFile, type MappedFile } from "./_mmap.ts";

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
  /** Share of the shorter of upload and compute not hidden when they run at once (see {@link overlapProbe}). */
  overlap: number;
}

/**
 * Upload (`queue.writeBuffer` of 64 MiB) and matvec (4096x4096 of the
 * encoding) rates on `gpu`. Takes a few seconds (longer on a CPU adapter).
 * With `upload.expertBytes`, also the upload of one expert of that size as
 * the expert store uploads it (lib/engine/_experts.ts: in the same pieces,
 * from a mapping of `upload.file` where it can be mapped, else from a reused
 * host image), timed on the second pass.
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
  // the upload as the engine does it: one slot-sized buffer, filled in 1 MiB
  // writeBuffer pieces from a memory-mapped layer file when there is one,
  // submitted every 16 MiB when larger than 32 MiB;
  // timed on the second pass (a warm slot, as in steady state)
  const size = Math.max(
    1 << 20,
    Math.min(
      upload.bytes ?? 64 << 20,
      1 << 30,
      Math.floor(gpu.limits.maxBufferSize / 256) * 256,
    ) & ~255,
  );
  let mapped: MappedFile | null = null;
  let host: Uint8Array;
  if (upload.file) {
    const st = await Deno.stat(upload.file);
    mapped = st.size >= size ? mapFile(upload.file, size) : null;
  }
  if (mapped) host = mapped.bytes;
  else {
    host = new Uint8Array(size);
    host.fill(1);
  }
  const dtype = (floatEncoding(encoding) ?? encodingRecord(encoding)).name;
  let best: number;
  let overlap: number;
  try {
    best = await timedUpload(gpu, host, size);
    overlap = await overlapProbe(gpu, dtype, host, size);
  } finally {
    mapped?.unmap();
  }
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
    cpuAdapter: isCpuAdapter(gpu),
    overlap,
    ...(expertUploadBps ? { expertUploadBps } : {}),
  };
}

/**
 * Writes `host`'s first `size` bytes into `buf` as the engine uploads (the
 * ring and the expert store): 1 MiB writeBuffer pieces, a submit every 16
 * MiB when larger than 32 MiB (one submit at the end is several times
 * slower), and a submit at the end.
 */
function uploadInto(
  gpu: Gpu,
  buf: GPUBuffer,
  host: Uint8Array,
  size: number,
): void {
  for (let k = 0; k < size; k += 1 << 20) {
    gpu.device.queue.writeBuffer(
      buf,
      k,
      host as Uint8Array<ArrayBuffer>,
      k,
      Math.min(1 << 20, size - k),
    );
    if (size > 32 << 20 && ((k >> 20) + 1) % 16 === 0) {
      gpu.device.queue.submit([]);
    }
  }
  gpu.device.queue.submit([]);
}

/** A buffer to upload `size` bytes into. */
function uploadTarget(gpu: Gpu, size: number): GPUBuffer {
  return gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
}

/**
 * Seconds of the upload of `host`'s first `size` bytes into a fresh buffer
 * ({@link uploadInto}); the second of two passes (a warm buffer, as in
 * steady state).
 */
async function timedUpload(
  gpu: Gpu,
  host: Uint8Array,
  size: number,
): Promise<number> {
  const buf = uploadTarget(gpu, size);
  let best = Infinity;
  try {
    for (let r = 0; r < 2; r++) {
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
  const size = Math.max(
    256,
    Math.min(bytes, 1 << 30, Math.floor(gpu.limits.maxBufferSize / 256) * 256) &
      ~255,
  );
  let mapped: MappedFile | null = null;
  if (file && (await Deno.stat(file)).size >= size) {
    mapped = mapFile(file, size);
  }
  let host: Uint8Array;
  if (mapped) host = mapped.bytes;
  else {
    host = new Uint8Array(size);
    host.fill(1);
  }
  try {
    return size / await timedUpload(gpu, host, size);
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
