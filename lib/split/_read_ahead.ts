/**
 * Read-ahead of a split's source: the byte ranges the split will read, in
 * the order it reads them, asked of the kernel (`madvise(MADV_WILLNEED)` on
 * a read-only mapping, lib/engine/_mmap.ts) a window ahead of the pieces
 * written so far. On a cold disk the split's own reads are few at a time
 * (one per worker), while the kernel's read-ahead has many requests in
 * flight: on this project's VM a cold source read at 1.1 GB/s by one reader
 * and 3.2 GB/s by four. On a warm page cache the advice finds every page
 * present and costs a walk of the page tables. Where files cannot be mapped
 * (no FFI permission, Windows, `STRATA_NO_MMAP`) it does nothing.
 *
 * @module
 */
import { mapFile, type MappedFile } from "../engine/_mmap.ts";

/** A range of a source file the split reads (`path` null: not a file's). */
export interface SourceRange {
  path: string | null;
  offset: number;
  length: number;
}

/**
 * Asks for `length` bytes at `offset` of `path`; null when it cannot (then
 * the range is passed over).
 */
export type Advise = (
  path: string,
  offset: number,
  length: number,
) => Promise<unknown> | null;

/** Bytes advised per madvise call (a call covers at most one range piece). */
const STEP = 16 << 20;

/**
 * Advises `ranges` (in read order) a window of `ahead` source bytes in front
 * of {@link ReadAhead.advance}'s position.
 *
 * @example
 * ```ts
 * import { ReadAhead } from "./_read_ahead.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array(1 << 20));
 * const ra = new ReadAhead([{ path, offset: 0, length: 1 << 20 }], 1 << 20);
 * ra.advance(0);
 * ra.close();
 * await Deno.remove(path);
 * ```
 */
export class ReadAhead {
  #ranges: SourceRange[];
  #ahead: number;
  #maps = new Map<string, MappedFile | null>();
  /** Index of the range being advised, and source bytes advised before it. */
  #i = 0;
  #within = 0;
  #advised = 0;
  /** Source bytes to advise up to, and whether a call is running. */
  #until = 0;
  #busy = false;
  #closed = false;
  #idle: Promise<void> = Promise.resolve();
  #advise: Advise;

  /**
   * `ahead`: how many source bytes to keep advised past the position;
   * `advise` replaces the advice itself (tests; default: madvise on a
   * mapping of the file, nothing where files cannot be mapped).
   */
  constructor(ranges: SourceRange[], ahead: number, advise?: Advise) {
    this.#ranges = ranges.filter((r) => r.length > 0);
    this.#ahead = ahead;
    this.#advise = advise ??
      ((path, offset, length) =>
        this.#map(path)?.willNeedInBackground(offset, length) ?? null);
  }

  /** Resolves once no advice is running (tests). */
  idle(): Promise<void> {
    return this.#idle;
  }

  /** Source bytes advised so far. */
  get advised(): number {
    return this.#advised;
  }

  /**
   * The split has consumed `position` source bytes (in range order): advise
   * up to `position + ahead`. The advice runs on a thread of its own, one
   * call at a time; a call that returns goes on to the latest target.
   */
  advance(position: number): void {
    this.#until = Math.max(this.#until, position + this.#ahead);
    if (!this.#busy) this.#next();
  }

  /** Issues the next call toward #until, if any. */
  #next(): void {
    while (
      !this.#closed && this.#advised < this.#until &&
      this.#i < this.#ranges.length
    ) {
      const r = this.#ranges[this.#i];
      const n = Math.min(
        STEP,
        r.length - this.#within,
        this.#until - this.#advised,
      );
      const at = r.offset + this.#within;
      this.#within += n;
      this.#advised += n;
      if (this.#within === r.length) {
        this.#i++;
        this.#within = 0;
      }
      const call = r.path === null ? null : this.#advise(r.path, at, n);
      if (!call) continue;
      this.#busy = true;
      const done: Promise<void> = call.then(
        () => {},
        () => {},
      ).then(() => {
        this.#busy = false;
        this.#next();
        // the next call's promise, if this one issued another
        return this.#idle === done ? undefined : this.#idle;
      });
      this.#idle = done;
      return;
    }
  }

  #map(path: string): MappedFile | null {
    if (!this.#maps.has(path)) {
      let size = 0;
      try {
        size = Deno.statSync(path).size;
      } catch {
        // unreadable here: the split's own read reports it
      }
      this.#maps.set(path, mapFile(path, size));
    }
    return this.#maps.get(path) ?? null;
  }

  /** Unmaps the source files. */
  close(): void {
    for (const m of this.#maps.values()) m?.unmap();
    this.#maps.clear();
  }
}
