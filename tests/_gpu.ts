/**
 * Shared GPU for the tests: `gpu` is null (and one message is printed) when
 * this machine has no WebGPU adapter; `gpuTest` registers a test that is
 * ignored then.
 *
 * @module
 */
import { type Gpu, requestGpu } from "../lib/gpu/device.ts";
import type { BufferRef } from "../lib/gpu/pipelines.ts";

async function acquire(): Promise<Gpu | null> {
  try {
    return await requestGpu();
  } catch (e) {
    console.warn(`GPU tests skipped: ${(e as Error).message}`);
    return null;
  }
}

/** The test GPU, or null when there is no adapter. */
export const gpu: Gpu | null = await acquire();

/** Registers `fn` as a Deno test, ignored when there is no GPU. */
export function gpuTest(
  name: string,
  fn: (gpu: Gpu) => Promise<void> | void,
): void {
  Deno.test({
    name,
    ignore: gpu === null,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => fn(gpu!),
  });
}

/** Creates a storage buffer holding `data` (padded to 16 bytes). */
export function upload(g: Gpu, data: ArrayBufferView): BufferRef {
  const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
  const buffer = g.device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
    mappedAtCreation: true,
  });
  new Uint8Array(buffer.getMappedRange()).set(
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
  buffer.unmap();
  return { buffer, offset: 0, size };
}

/** Creates a zeroed storage buffer of `bytes` (padded to 16). */
export function scratch(g: Gpu, bytes: number): BufferRef {
  const size = Math.max(16, Math.ceil(bytes / 16) * 16);
  const buffer = g.device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
  });
  return { buffer, offset: 0, size };
}

/** Reads `n` f32 values of `r` back. */
export async function readF32(
  g: Gpu,
  r: BufferRef,
  n: number,
): Promise<Float32Array> {
  return new Float32Array(await readBack(g.device, { ...r, size: n * 4 }));
}

/** Reads `n` u32 values of `r` back. */
export async function readU32(
  g: Gpu,
  r: BufferRef,
  n: number,
): Promise<Uint32Array> {
  return new Uint32Array(await readBack(g.device, { ...r, size: n * 4 }));
}

/**
 * Reads `src` back to the CPU (one copy + one mapAsync).
 *
 * @example
 * ```ts ignore
 * const logits = new Float32Array(await readBack(device, outRef));
 * ```
 */
export async function readBack(
  device: GPUDevice,
  src: BufferRef,
): Promise<ArrayBuffer> {
  const size = Math.ceil(src.size / 4) * 4;
  const staging = device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src.buffer, src.offset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, src.size);
  staging.unmap();
  staging.destroy();
  return out;
}
