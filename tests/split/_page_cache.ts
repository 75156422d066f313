/**
 * What is in the page cache, for tests of the split's read-ahead and
 * drop-behind: `mincore` on a mapping, and `POSIX_FADV_DONTNEED` to evict.
 * Linux with FFI only ({@link pageCache}).
 *
 * @module
 */
import assert from "node:assert/strict";

/** libc through FFI, or null (not Linux, or no FFI permission). */
const libc = (() => {
  if (Deno.build.os !== "linux") return null;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return null;
  }
  try {
    return Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
      posix_fadvise: {
        parameters: ["i32", "i64", "i64", "i32"],
        result: "i32",
      },
      mmap: {
        parameters: ["pointer", "usize", "i32", "i32", "i32", "isize"],
        result: "pointer",
      },
      munmap: { parameters: ["pointer", "usize"], result: "i32" },
      mincore: { parameters: ["pointer", "usize", "buffer"], result: "i32" },
    });
  } catch {
    return null;
  }
})();

/** Pages of `path` (its first `size` bytes) now in the page cache. */
export function resident(path: string, size: number): number {
  const fd = libc!.symbols.open(new TextEncoder().encode(path + "\0"), 0);
  const p = libc!.symbols.mmap(null, BigInt(size), 1, 2, fd, 0n)!;
  libc!.symbols.close(fd);
  const pages = new Uint8Array(Math.ceil(size / 4096));
  assert.equal(libc!.symbols.mincore(p, BigInt(size), pages), 0);
  libc!.symbols.munmap(p, BigInt(size));
  return pages.reduce((a, b) => a + (b & 1), 0);
}

/** Drops `path`'s clean pages from the page cache (POSIX_FADV_DONTNEED). */
export function evict(path: string): void {
  const fd = libc!.symbols.open(new TextEncoder().encode(path + "\0"), 0);
  libc!.symbols.posix_fadvise(fd, 0n, 0n, 4);
  libc!.symbols.close(fd);
}

/** Whether these helpers work here. */
export const pageCache = libc !== null;
