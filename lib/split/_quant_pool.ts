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
import type {
  FloatDtype,
  PackedName,
  PackedWeight,
} from "../quant/encoding.ts";
import { quantizeChunk } from "./_quant_rows.ts";

interface Pending {
  resolve: (q: PackedWeight) => void;
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
  #free: Uint8Array[] = [];

  /**
   * A buffer of `size` bytes to read a chunk into: one that came back from a
   * worker when there is one (no allocation, no page faults), else new.
   */
  buffer(size: number): Uint8Array {
    const i = this.#free.findIndex((b) => b.length === size);
    return i >= 0 ? this.#free.splice(i, 1)[0] : new Uint8Array(size);
  }

  #recycle(b: Uint8Array | undefined): void {
    if (b && b.byteOffset === 0 && this.#free.length < 16) this.#free.push(b);
  }

  /** Number of workers (0: the calling thread does the work). */
  get workers(): number {
    return this.#slots.length;
  }

  /**
   * Starts `n` workers (default: one per core) and waits for each to answer
   * a first tiny job; a worker that cannot start (e.g. a compiled binary
   * without the worker module) is dropped, and with none the pool works on
   * the calling thread. `url` replaces the worker module (tests).
   */
  static async create(
    opts: { workers?: number; url?: URL } = {},
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
          slot.worker.onmessage = () => {
            clearTimeout(timer);
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
    scales?: Uint16Array;
    input?: Uint8Array;
    error?: string;
  }): void {
    this.#recycle(msg.input);
    const p = this.#pending.get(msg.id);
    if (!p) return;
    this.#pending.delete(msg.id);
    p.slot.busy--;
    if (msg.error !== undefined) {
      p.reject(new StrataError(`split: quantization failed: ${msg.error}`));
    } else p.resolve({ data: msg.data!, scales: msg.scales });
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
        const q = quantizeChunk({ kind, dtype, bytes, rows, cols });
        this.#recycle(bytes);
        return Promise.resolve(q);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const slot = this.#slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const own = bytes.byteOffset === 0 &&
        bytes.byteLength === bytes.buffer.byteLength
      ? bytes
      : bytes.slice();
    const id = this.#next++;
    slot.busy++;
    return new Promise<PackedWeight>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ id, kind, dtype, bytes: own, rows, cols }, [
        own.buffer as ArrayBuffer,
      ]);
    });
  }

  /** Stops the workers; pending jobs are rejected. */
  close(): void {
    for (const s of this.#slots) s.worker.terminate();
    this.#slots = [];
    this.#fail(new StrataError("split: quantization pool closed"));
  }
}
