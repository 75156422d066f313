/**
 * Compute-pipeline cache and the per-pass uniform arena for kernel `Params`.
 *
 * - {@link PipelineCache}: one shader module per kernel name, one pipeline per
 *   (kernel name, override constants); pipelines use `layout: "auto"` so the
 *   binding order in the WGSL is the contract: inputs, output, params
 *   (`@group(0)`, bindings 0..n-1, the uniform `Params` last).
 * - {@link ParamsArena}: every dispatch gets its own 256-byte-aligned slice of a
 *   uniform buffer; the slices are staged on the CPU and uploaded with one
 *   `queue.writeBuffer` per chunk at {@link ParamsArena.flush} (before submit).
 *
 * @module
 */
import { GpuError } from "../errors.ts";

/** A range of a GPU buffer (offset 256-aligned for bindings). */
export interface BufferRef {
  /** The buffer. */
  buffer: GPUBuffer;
  /** Byte offset in the buffer. */
  offset: number;
  /** Byte length of the range. */
  size: number;
}

/** WGSL override constants (`override NAME: u32 = ...;`). */
export type OverrideConstants = Record<string, number>;

/**
 * Caches shader modules by kernel name and compute pipelines by kernel name
 * plus override constants.
 *
 * @example
 * ```ts ignore
 * import { PipelineCache } from "./pipelines.ts";
 * import src from "../../kernels/add.wgsl" with { type: "text" };
 * const cache = new PipelineCache(device);
 * const p = cache.get("add", src, { WG: 64 }); // same object on the next call
 * ```
 */
export class PipelineCache {
  #device: GPUDevice;
  #modules = new Map<string, { code: string; module: GPUShaderModule }>();
  #pipelines = new Map<string, GPUComputePipeline>();

  /** Creates an empty cache on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Number of compiled pipelines. */
  get size(): number {
    return this.#pipelines.size;
  }

  /**
   * Returns the pipeline of kernel `name` (WGSL `code`, entry point `main`)
   * specialized with `constants`, compiling it on first use. Throws GpuError
   * when the WGSL does not compile.
   */
  get(
    name: string,
    code: string,
    constants: OverrideConstants = {},
  ): GPUComputePipeline {
    const keys = Object.keys(constants).sort();
    const key = name + "|" + keys.map((k) => `${k}=${constants[k]}`).join(",");
    const hit = this.#pipelines.get(key);
    if (hit) return hit;
    let mod = this.#modules.get(name);
    if (!mod || mod.code !== code) {
      mod = {
        code,
        module: this.#device.createShaderModule({ label: name, code }),
      };
      this.#modules.set(name, mod);
    }
    this.#device.pushErrorScope("validation");
    const pipeline = this.#device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: { module: mod.module, entryPoint: "main", constants },
    });
    // Validation errors surface asynchronously; report them loudly.
    this.#device.popErrorScope().then((err) => {
      if (err) {
        console.error(
          new GpuError(
            `kernels/${name}.wgsl: pipeline ${key} invalid: ${err.message}`,
          ).message,
        );
      }
    });
    this.#pipelines.set(key, pipeline);
    return pipeline;
  }

  /**
   * Like {@link PipelineCache.get} but awaits compilation and throws GpuError
   * with the compiler message when the kernel is invalid (use in tests).
   */
  async getChecked(
    name: string,
    code: string,
    constants: OverrideConstants = {},
  ): Promise<GPUComputePipeline> {
    this.#device.pushErrorScope("validation");
    const p = this.get(name, code, constants);
    const err = await this.#device.popErrorScope();
    if (err) throw new GpuError(`kernels/${name}.wgsl: ${err.message}`);
    return p;
  }
}

const SLICE = 256;
const CHUNK = 256 * 1024;

/**
 * Per-pass uniform arena: {@link ParamsArena.alloc} copies a `Params` struct
 * into the next 256-byte slice and returns its {@link BufferRef}; call
 * {@link ParamsArena.flush} before submitting the command buffers that use the
 * slices, and {@link ParamsArena.reset} once per forward pass.
 *
 * @example
 * ```ts ignore
 * import { ParamsArena, packParams } from "./pipelines.ts";
 * const arena = new ParamsArena(device);
 * arena.reset();
 * const ref = arena.alloc(packParams("uuf", 4, 8, 1e-6));
 * arena.flush();            // one writeBuffer per used chunk
 * device.queue.submit([encoder.finish()]);
 * ```
 */
export class ParamsArena {
  #device: GPUDevice;
  #chunks: { buffer: GPUBuffer; staging: Uint8Array<ArrayBuffer> }[] = [];
  #chunk = 0;
  #used = 0; // bytes used in the current chunk
  #flushedChunk = 0;
  #flushed = 0; // bytes of #flushedChunk already uploaded

  /** Creates an arena on `device` (grows by 256 KiB chunks). */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Rewinds to the start: call once per forward pass before recording. */
  reset(): void {
    this.#chunk = 0;
    this.#used = 0;
    this.#flushedChunk = 0;
    this.#flushed = 0;
  }

  /** Slices handed out since the last reset. */
  get count(): number {
    return (this.#chunk * CHUNK + this.#used) / SLICE;
  }

  /** Copies `data` (≤ 256 bytes) into a fresh slice and returns it. */
  alloc(data: ArrayBufferView | ArrayBuffer): BufferRef {
    const bytes = data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength > SLICE) {
      throw new GpuError(
        `Params struct of ${bytes.byteLength} bytes exceeds ${SLICE}`,
      );
    }
    if (this.#used + SLICE > CHUNK) {
      this.#chunk++;
      this.#used = 0;
    }
    while (this.#chunks.length <= this.#chunk) {
      this.#chunks.push({
        buffer: this.#device.createBuffer({
          label: `params-arena-${this.#chunks.length}`,
          size: CHUNK,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        }),
        staging: new Uint8Array(CHUNK),
      });
    }
    const c = this.#chunks[this.#chunk];
    const offset = this.#used;
    c.staging.set(bytes, offset);
    if (bytes.byteLength < SLICE) {
      c.staging.fill(0, offset + bytes.byteLength, offset + SLICE);
    }
    this.#used += SLICE;
    return { buffer: c.buffer, offset, size: SLICE };
  }

  /** Uploads the slices allocated since the last flush (one writeBuffer per chunk touched). */
  flush(): void {
    while (this.#flushedChunk <= this.#chunk) {
      const c = this.#chunks[this.#flushedChunk];
      const end = this.#flushedChunk === this.#chunk ? this.#used : CHUNK;
      if (c && end > this.#flushed) {
        this.#device.queue.writeBuffer(
          c.buffer,
          this.#flushed,
          c.staging,
          this.#flushed,
          end - this.#flushed,
        );
      }
      if (this.#flushedChunk === this.#chunk) {
        this.#flushed = end;
        break;
      }
      this.#flushedChunk++;
      this.#flushed = 0;
    }
  }

  /** Destroys the uniform buffers. */
  destroy(): void {
    for (const c of this.#chunks) c.buffer.destroy();
    this.#chunks = [];
    this.reset();
  }
}

/**
 * Packs a `Params` struct of 4-byte scalars: `spec` has one letter per field,
 * `u` (u32), `i` (i32) or `f` (f32), in WGSL declaration order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packParams } from "./pipelines.ts";
 * const p = packParams("uuf", 3, 4, 0.5);
 * assert.equal(p.byteLength, 16); // padded to a multiple of 16
 * ```
 */
export function packParams(spec: string, ...values: number[]): ArrayBuffer {
  if (spec.length !== values.length) {
    throw new GpuError(
      `packParams: ${spec.length} fields but ${values.length} values`,
    );
  }
  const buf = new ArrayBuffer(
    Math.max(16, Math.ceil((spec.length * 4) / 16) * 16),
  );
  const dv = new DataView(buf);
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i];
    if (c === "u") dv.setUint32(i * 4, values[i] >>> 0, true);
    else if (c === "i") dv.setInt32(i * 4, values[i] | 0, true);
    else if (c === "f") dv.setFloat32(i * 4, values[i], true);
    else throw new GpuError(`packParams: unknown field type '${c}'`);
  }
  return buf;
}
