/**
 * A pool of Web Workers packing chunks of rows for the split (any packed
 * encoding of lib/quant/encoding.ts), one worker per core (`navigator.hardwareConcurrency`, or `$STRATA_SPLIT_WORKERS`).
 * Jobs go to the least busy worker; each reply resolves its job's promise.
 * When workers cannot be started (a runtime without them, or a compiled
 * binary built without `--include lib/split/_quant_worker.ts`) or
 * `$STRATA_SPLIT_WORKERS=0`, chunks are quantized on the calling thread.
 *
 * @module
 */
import { StrataError } from "../errors.ts";
import {
  encoding,
  type FloatDtype,
  type PackedName,
  type PackedWeight,
} from "../quant/encoding.ts";
import {
  type PackedChunk,
  quantizeChunk,
  quantizeFileChunk,
  type WrittenRows,
} from "./_quant_rows.ts";

interface Pending {
  resolve: (q: PackedChunk) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
}

/** Chunks of rows quantized on worker threads. */
export class QuantPool {
  #slots: Slot[] = [];
  #pending = new Map<number, Pending & { slot: Slot }>();
  #next = 0;
  #failed: Error | null = null;
  /** Input buffers back from the workers, to read the next chunks into. */
  #free: ArrayBuffer[] = [];
  /** Output buffers already written, handed to the workers to pack into. */
  #outFree: ArrayBuffer[] = [];

  /**
   * A buffer of `size` bytes to read a chunk into: the smallest large enough
   * of those that came back from a worker, else new. Fresh memory is not
   * free: first touching a page costs a fault (about 7 ms per MiB measured
   * in this project's VM, more than packing it), so buffers go round.
   */
  buffer(size: number): Uint8Array {
    let best = -1;
    for (const [i, b] of this.#free.entries()) {
      if (
        b.byteLength >= size &&
        (best < 0 || b.byteLength < this.#free[best].byteLength)
      ) best = i;
    }
    if (best < 0) return new Uint8Array(size);
    return new Uint8Array(this.#free.splice(best, 1)[0], 0, size);
  }

  #recycle(b: Uint8Array | undefined): void {
    if (b && this.#free.length < 16) this.#free.push(b.buffer as ArrayBuffer);
  }

  /**
   * Gives back the buffer of a packed piece once written (and hashed): the
   * workers pack later chunks into it instead of new memory.
   */
  recycleOutput(b: ArrayBufferView): void {
    if (
      b.buffer instanceof ArrayBuffer && b.buffer.byteLength > 0 &&
      this.#outFree.length < 32 && !this.#outFree.includes(b.buffer)
    ) this.#outFree.push(b.buffer);
  }

  /** The smallest written output buffer of at least `size` bytes, or null. */
  #takeOut(size: number): ArrayBuffer | null {
    let best = -1;
    for (const [i, b] of this.#outFree.entries()) {
      if (
        b.byteLength >= size &&
        (best < 0 || b.byteLength < this.#outFree[best].byteLength)
      ) best = i;
    }
    return best < 0 ? null : this.#outFree.splice(best, 1)[0];
  }

  /** A buffer of at least `size` bytes from the written outputs, else new. */
  outBuffer(size: number): ArrayBuffer {
    return this.#takeOut(size) ?? new ArrayBuffer(size);
  }

  /**
   * Spare output buffers for one job's data (unless `data` is false: rows
   * a worker writes out itself) and scales (`kind`, rows x cols).
   */
  #spareOut(
    kind: PackedName,
    rows: number,
    cols: number,
    data = true,
  ): ArrayBuffer[] {
    const [rb, sb] = encoding(kind).rowBytes(cols);
    const out: ArrayBuffer[] = [];
    for (const size of [data ? rows * rb : 0, rows * sb]) {
      const b = size > 0 ? this.#takeOut(size) : null;
      if (b) out.push(b);
    }
    return out;
  }

  /** Number of workers (0: the calling thread does the work). */
  get workers(): number {
    return this.#slots.length;
  }

  /**
   * Starts `n` workers (default: one per core) and waits for each to answer
   * a first tiny job; a worker that cannot start (e.g. a compiled binary
   * without the worker module) is dropped, and with none the pool works on
   * the calling thread. `url` replaces the worker module (tests). With
   * `warm`, each worker first readies itself for chunks of that many values
   * (memory grown and touched, kernels compiled: `warmSimd`).
   */
  static async create(
    opts: { workers?: number; url?: URL; warm?: number } = {},
  ): Promise<QuantPool> {
    const n = opts.workers;
    const pool = new QuantPool();
    const env = Number(Deno.env.get("STRATA_SPLIT_WORKERS") ?? NaN);
    const want = Number.isInteger(env) && env >= 0
      ? env
      : (n ?? Math.max(1, navigator.hardwareConcurrency ?? 1));
    const started: Slot[] = [];
    for (let i = 0; i < want; i++) {
      let worker: Worker;
      try {
        worker = new Worker(
          opts.url ?? new URL("./_quant_worker.ts", import.meta.url),
          { type: "module" },
        );
      } catch {
        break; // no workers here: quantize on this thread
      }
      started.push({ worker, busy: 0 });
    }
    const probe = new Uint8Array(128); // one row of 32 f32 zeros
    const ok = await Promise.all(
      started.map((slot) =>
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 30_000);
          slot.worker.onmessage = (e) => {
            clearTimeout(timer);
            for (const b of e.data?.spare ?? []) {
              pool.recycleOutput(new Uint8Array(b));
            }
            resolve(true);
          };
          slot.worker.onerror = (e) => {
            e.preventDefault();
            clearTimeout(timer);
            resolve(false);
          };
          slot.worker.postMessage({
            id: -1,
            kind: "q8",
            dtype: "F32",
            bytes: probe.slice(),
            rows: 1,
            cols: 32,
            warm: opts.warm,
          });
        })
      ),
    );
    for (const [i, slot] of started.entries()) {
      if (!ok[i]) {
        slot.worker.terminate();
        continue;
      }
      slot.worker.onmessage = (e) => pool.#reply(e.data);
      slot.worker.onerror = (e) => {
        e.preventDefault();
        pool.#fail(
          new StrataError(`split: quantization worker failed: ${e.message}`),
        );
      };
      pool.#slots.push(slot);
    }
    return pool;
  }

  #reply(msg: {
    id: number;
    data?: Uint8Array;
    written?: WrittenRows;
    scales?: Uint16Array;
    input?: Uint8Array;
    spare?: ArrayBuffer[];
    error?: string;
  }): void {
    this.#recycle(msg.input);
    for (const b of msg.spare ?? []) this.recycleOutput(new Uint8Array(b));
    const p = this.#pending.get(msg.id);
    if (!p) return;
    this.#pending.delete(msg.id);
    p.slot.busy--;
    if (msg.error !== undefined) {
      p.reject(new StrataError(`split: quantization failed: ${msg.error}`));
    } else {
      p.resolve({
        data: msg.data ?? new Uint8Array(0),
        scales: msg.scales,
        written: msg.written,
      });
    }
  }

  #fail(e: Error): void {
    this.#failed = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  /**
   * Packs `rows` x `cols` values of `dtype` in `bytes` as `kind`. The
   * buffer of `bytes` is transferred to a worker (detached here) when it
   * covers the whole buffer; otherwise it is copied.
   */
  quantize(
    kind: PackedName,
    dtype: FloatDtype,
    bytes: Uint8Array,
    rows: number,
    cols: number,
  ): Promise<PackedWeight> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#slots.length === 0) {
      try {
        const q = quantizeChunk({
          kind,
          dtype,
          bytes,
          rows,
          cols,
          out: this.#spareOut(kind, rows, cols),
        });
        this.#recycle(bytes);
        return Promise.resolve(q);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    // a view at offset 0 travels with its whole buffer; others are copied
    const own = bytes.byteOffset === 0 && bytes.buffer instanceof ArrayBuffer
      ? bytes
      : bytes.slice();
    const out = this.#spareOut(kind, rows, cols);
    return this.#post(
      { kind, dtype, bytes: own, rows, cols, out },
      [own.buffer as ArrayBuffer, ...out],
    );
  }

  /** Sends a job to the least busy worker; resolves with its reply. */
  #post(
    job: Record<string, unknown>,
    transfer: ArrayBuffer[],
  ): Promise<PackedChunk> {
    const slot = this.#slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.#next++;
    slot.busy++;
    return new Promise<PackedChunk>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ id, ...job }, transfer);
    });
  }

  /**
   * Packs `rows` x `cols` values of `dtype` that a worker reads itself:
   * `file.length` bytes at absolute `file.offset` of `file.path` (no read,
   * copy or transfer of the input on this thread). Without workers, read
   * and packed here. With `dest`, the worker also writes the packed rows
   * at absolute `dest.offset` of the existing file `dest.path` and replies
   * with their length and CRC-32 (`written`) instead of them.
   */
  quantizeFile(
    kind: PackedName,
    dtype: FloatDtype,
    file: { path: string; offset: number; length: number },
    rows: number,
    cols: number,
    dest?: { path: string; offset: number },
  ): Promise<PackedChunk> {
    if (this.#failed) return Promise.reject(this.#failed);
    const workers = this.#slots.length > 0;
    const out = this.#spareOut(kind, rows, cols, !(workers && dest));
    if (!workers) {
      try {
        return Promise.resolve(
          quantizeFileChunk({ kind, dtype, file, rows, cols, out }),
        );
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#post(
      { kind, dtype, bytes: null, file, rows, cols, out, dest },
      out,
    );
  }

  /** Stops the workers; pending jobs are rejected. */
  close(): void {
    for (const s of this.#slots) s.worker.terminate();
    this.#slots = [];
    this.#fail(new StrataError("split: quantization pool closed"));
  }
}
