/**
 * Read-only memory maps of whole shard files, through libc's `mmap` (Deno
 * FFI), so that a streamed layer is uploaded with `queue.writeBuffer`
 * straight from the page cache: no read into a host image first, which on a
 * machine whose "GPU" shares the CPU (lavapipe) saves one copy of every
 * streamed byte per token. Used only where this process may use FFI (`-A` or
 * `--allow-ffi`) on Linux or macOS, and not when `STRATA_NO_MMAP` is set;
 * otherwise {@link mapFile} returns null and the reader reads the file.
 *
 * A mapped file must not be truncated while it is mapped (the process would
 * get SIGBUS); shard files are written once, and the engine checks each
 * file's size against its header when it opens it.
 *
 * @module
 */

import { libc, openReadOnly } from "../_libc.ts";

/** `MADV_WILLNEED` (the same value on Linux and macOS). */
const MADV_WILLNEED = 3;

let usable: boolean | undefined;

/** Whether files can be mapped in this process (FFI granted, Linux/macOS, no STRATA_NO_MMAP). */
export function canMap(): boolean {
  if (usable !== undefined) return usable;
  usable = false;
  try {
    if (Deno.build.os !== "linux" && Deno.build.os !== "darwin") return false;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return false;
    }
    if (
      Deno.permissions.querySync({ name: "env", variable: "STRATA_NO_MMAP" })
          .state === "granted" && Deno.env.get("STRATA_NO_MMAP")
    ) {
      return false;
    }
    usable = libc() !== null;
  } catch {
    usable = false;
  }
  return usable;
}

/** A whole file mapped read-only. */
export interface MappedFile {
  /** The file's bytes (read-only memory: never write into it). */
  bytes: Uint8Array;
  /**
   * Asks the kernel to start reading the whole file into the page cache in
   * the background (`madvise(MADV_WILLNEED)`), so that a layer prefetched
   * from a cold disk is not paged in by faults on the JS thread during its
   * upload. With `offset` and `length`, only those bytes (widened to whole
   * 64 KiB pages). Returns whether the advice was accepted.
   */
  willNeed(offset?: number, length?: number): boolean;
  /**
   * {@link MappedFile.willNeed} on a thread of its own: on a cold file the
   * kernel allocates the pages and queues their reads inside the call
   * (about 115 ms of calls for 1.5 GB here), which would stall this
   * thread. Resolves with whether the advice was accepted.
   */
  willNeedInBackground(offset: number, length: number): Promise<boolean>;
  /** Unmaps it; `bytes` must not be used afterwards. */
  unmap(): void;
}

/**
 * Maps the first `size` bytes of `path` read-only, or returns null when
 * mapping is not available or fails (the caller then reads the file).
 */
export function mapFile(path: string, size: number): MappedFile | null {
  if (size <= 0 || !canMap()) return null;
  const c = libc()!;
  try {
    const fd = openReadOnly(path);
    if (fd < 0) return null;
    let p: Deno.PointerValue;
    try {
      // PROT_READ = 1, MAP_PRIVATE = 2 (Linux and macOS)
      p = c.mmap(null, BigInt(size), 1, 2, fd, 0n);
    } finally {
      c.close(fd);
    }
    if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
      return null; // MAP_FAILED
    }
    const ptr = p;
    const bytes = new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(ptr, size),
    );
    let mapped = true;
    let inFlight = 0;
    const release = () => c.munmap(ptr, BigInt(size));
    /** The mapping's pages covering [offset, offset + length): start, length. */
    const pages = (
      offset: number,
      length: number,
    ): [Deno.PointerValue, bigint] | null => {
      // madvise takes a page-aligned start: 64 KiB covers every page size
      const a = Math.max(0, Math.floor(offset / 65536) * 65536);
      const b = Math.min(size, offset + length);
      return b > a ? [Deno.UnsafePointer.offset(ptr, a), BigInt(b - a)] : null;
    };
    return {
      bytes,
      willNeed(offset = 0, length = size - offset) {
        const r = mapped ? pages(offset, length) : null;
        if (!r) return mapped;
        return c.madvise(r[0], r[1], MADV_WILLNEED) === 0;
      },
      async willNeedInBackground(offset, length) {
        const r = mapped ? pages(offset, length) : null;
        if (!r) return mapped;
        inFlight++;
        try {
          const rc = await c.madviseInBackground(
            r[0],
            r[1],
            MADV_WILLNEED,
          );
          return rc === 0;
        } finally {
          if (--inFlight === 0 && !mapped) release();
        }
      },
      unmap() {
        if (!mapped) return;
        mapped = false;
        // advice still running on its thread: unmapped when it returns
        if (inFlight === 0) release();
      },
    };
  } catch {
    return null;
  }
}
