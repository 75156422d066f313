/**
 * The C library through Deno FFI, opened once for the life of the process
 * (opening it costs ~0.6 ms, and a library closed while one of its
 * `nonblocking` calls runs on another thread would be freed under it): the
 * calls the engine's file mappings (lib/engine/_mmap.ts) and the split's
 * drop-behind (lib/split/_drop_behind.ts) make. Available where this
 * process may use FFI (`-A` or `--allow-ffi`) on Linux or macOS; the
 * Linux-only calls are null elsewhere.
 *
 * @module
 */

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "isize"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  /** madvise on a thread of its own (a promise of its result). */
  madviseInBackground: {
    name: "madvise",
    parameters: ["pointer", "usize", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** Linux only (null elsewhere); on a thread of its own. */
  syncFileRangeInBackground: {
    name: "sync_file_range",
    parameters: ["i32", "i64", "i64", "u32"],
    result: "i32",
    nonblocking: true,
    optional: true,
  },
  /** Linux only (null elsewhere: macOS has no posix_fadvise); on a thread of its own. */
  fadviseInBackground: {
    name: "posix_fadvise",
    parameters: ["i32", "i64", "i64", "i32"],
    result: "i32",
    nonblocking: true,
    optional: true,
  },
} as const;

/** The C library's symbols used here. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null | undefined;

/**
 * The C library, or null where it cannot be used (no FFI permission, not
 * Linux or macOS, or it fails to open).
 *
 * @example
 * ```ts
 * import { libc } from "./_libc.ts";
 * const c = libc();
 * if (c) console.assert(c.close(-1) === -1);
 * ```
 */
export function libc(): Libc | null {
  if (lib !== undefined) return lib?.symbols ?? null;
  lib = null;
  try {
    if (Deno.build.os !== "linux" && Deno.build.os !== "darwin") return null;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return null;
    }
    lib = Deno.dlopen(
      Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6",
      SYMBOLS,
    );
  } catch {
    lib = null;
  }
  return lib?.symbols ?? null;
}

/**
 * Opens `path` read-only with libc's `open` (a descriptor for the calls
 * above); -1 when it cannot.
 *
 * @example
 * ```ts
 * import { libc, openReadOnly } from "./_libc.ts";
 * const fd = openReadOnly(Deno.execPath());
 * if (fd >= 0) libc()!.close(fd);
 * ```
 */
export function openReadOnly(path: string): number {
  const c = libc();
  return c ? c.open(new TextEncoder().encode(path + "\0"), 0) : -1;
}
