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

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "isize"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
} as const;

/** `MADV_WILLNEED` (the same value on Linux and macOS). */
const MADV_WILLNEED = 3;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

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
    openLibc().close();
    usable = true;
  } catch {
    usable = false;
  }
  return usable;
}

/** Opens libc (the caller closes it). */
function openLibc(): Libc {
  return Deno.dlopen(
    Deno.build.os === "darwin" ? "libSystem.B.dylib" : "libc.so.6",
    SYMBOLS,
  );
}

/** A whole file mapped read-only. */
export interface MappedFile {
  /** The file's bytes (read-only memory: never write into it). */
  bytes: Uint8Array;
  /**
   * Asks the kernel to start reading the whole file into the page cache in
   * the background (`madvise(MADV_WILLNEED)`), so that a layer prefetched
   * from a cold disk is not paged in by faults on the JS thread during its
   * upload. Returns whether the advice was accepted.
   */
  willNeed(): boolean;
  /** Unmaps it; `bytes` must not be used afterwards. */
  unmap(): void;
}

/**
 * Maps the first `size` bytes of `path` read-only, or returns null when
 * mapping is not available or fails (the caller then reads the file).
 */
export function mapFile(path: string, size: number): MappedFile | null {
  if (size <= 0 || !canMap()) return null;
  // libc stays open while the file is mapped: willNeed() runs for every
  // streamed layer of every pass, and opening the library costs ~0.6 ms
  let lib: Libc | undefined;
  try {
    lib = openLibc();
    const fd = lib.symbols.open(
      new TextEncoder().encode(path + "\0"),
      0, // O_RDONLY
    );
    if (fd < 0) {
      lib.close();
      return null;
    }
    let p: Deno.PointerValue;
    try {
      // PROT_READ = 1, MAP_PRIVATE = 2 (Linux and macOS)
      p = lib.symbols.mmap(null, BigInt(size), 1, 2, fd, 0n);
    } finally {
      lib.symbols.close(fd);
    }
    if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
      lib.close();
      return null; // MAP_FAILED
    }
    const ptr = p;
    const libc = lib;
    const bytes = new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(ptr, size),
    );
    let mapped = true;
    return {
      bytes,
      willNeed() {
        if (!mapped) return false;
        return libc.symbols.madvise(ptr, BigInt(size), MADV_WILLNEED) === 0;
      },
      unmap() {
        if (!mapped) return;
        mapped = false;
        libc.symbols.munmap(ptr, BigInt(size));
        libc.close();
      },
    };
  } catch {
    try {
      lib?.close();
    } catch {
      // already closed
    }
    return null;
  }
}
