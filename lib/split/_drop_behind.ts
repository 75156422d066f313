/**
 * Drop-behind for a file the split writes: the bytes written some way back
 * are flushed to disk (`sync_file_range`, waiting for the writeback) and
 * dropped from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), on a
 * thread of its own (Deno FFI, `nonblocking`), so that the pages the split
 * writes into are recycled instead of taken fresh from free memory. On this
 * project's VM a page of free memory that has not been used for a while costs
 * about 1–7 ms per MiB to touch (the host gives it back), which is what made
 * an unquantized split that followed a quantized one take 1.5 s more CPU.
 * Also, the fsync before the rename then finds little left to write. Linux
 * only, where the process may use FFI; elsewhere {@link DropBehind.open}
 * returns null and the file is written as before.
 *
 * @module
 */

import { libc, openReadOnly } from "../_libc.ts";

/** The two Linux calls drop-behind makes, each on a thread of its own. */
interface Calls {
  flush: (fd: number, at: bigint, n: bigint, flags: number) => Promise<number>;
  drop: (fd: number, at: bigint, n: bigint, advice: number) => Promise<number>;
  close: (fd: number) => number;
}

/** SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER. */
const SYNC_AND_WAIT = 1 | 2 | 4;
/** POSIX_FADV_DONTNEED on Linux. */
const DONTNEED = 4;

/**
 * Flushes and drops a written file's pages `lag` bytes behind the write
 * front, `step` bytes a call, one call at a time.
 *
 * @example
 * ```ts
 * import { DropBehind } from "./_drop_behind.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array(1 << 20));
 * const d = DropBehind.open(path, { lag: 0, step: 1 << 16 });
 * d?.advance(1 << 20);
 * await d?.drain();
 * await d?.close();
 * await Deno.remove(path);
 * ```
 */
export class DropBehind {
  #calls: Calls;
  #fd: number;
  #lag: number;
  #step: number;
  /** Bytes from the start flushed and dropped (or being). */
  #dropped = 0;
  #front = 0;
  #busy = false;
  #closed = false;
  #idle: Promise<void> = Promise.resolve();

  private constructor(calls: Calls, fd: number, lag: number, step: number) {
    this.#calls = calls;
    this.#fd = fd;
    this.#lag = lag;
    this.#step = step;
  }

  /**
   * Drop-behind for `path` (being written), or null where it cannot be
   * done here. `lag`: bytes behind the write front left alone (default
   * 32 MiB); `step`: bytes per call (default 16 MiB).
   */
  static open(
    path: string,
    o: { lag?: number; step?: number } = {},
  ): DropBehind | null {
    const c = libc();
    const [flush, drop] = [
      c?.syncFileRangeInBackground,
      c?.fadviseInBackground,
    ];
    if (!c || !flush || !drop || Deno.build.os !== "linux") return null;
    const fd = openReadOnly(path);
    if (fd < 0) return null;
    return new DropBehind(
      { flush, drop, close: c.close },
      fd,
      o.lag ?? 32 << 20,
      o.step ?? 16 << 20,
    );
  }

  /** Bytes [0, `front`) of the file are written. */
  advance(front: number): void {
    this.#front = Math.max(this.#front, front);
    if (!this.#busy) this.#next();
  }

  #next(): void {
    const until = this.#front - this.#lag;
    if (this.#closed || until - this.#dropped < this.#step) return;
    const [at, n] = [this.#dropped, this.#step];
    this.#dropped += n;
    this.#busy = true;
    const s = this.#calls;
    const work = (async () => {
      // a failed flush leaves the pages: the fsync at close reports errors
      const rc = await s.flush(
        this.#fd,
        BigInt(at),
        BigInt(n),
        SYNC_AND_WAIT,
      );
      if (rc === 0) {
        await s.drop(this.#fd, BigInt(at), BigInt(n), DONTNEED);
      }
    })().catch(() => {}); // best effort
    const done: Promise<void> = work.then(() => {
      this.#busy = false;
      this.#next();
      // the next call's promise, if this one issued another
      return this.#idle === done ? undefined : this.#idle;
    });
    this.#idle = done;
  }

  /**
   * Resolves once the calls due are done: everything more than `lag`
   * behind the last {@link DropBehind.advance} flushed and dropped.
   */
  async drain(): Promise<void> {
    while (this.#busy) await this.#idle;
  }

  /**
   * Waits for the call in flight, starts no other, and closes the
   * descriptor (the split does not wait for the rest: the fsync before the
   * rename writes what is left).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#idle;
    this.#calls.close(this.#fd);
  }
}
