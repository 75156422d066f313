/**
 * Small file helpers shared by the readers, the splitter and the hub cache.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { FormatError } from "./errors.ts";

/**
 * Whether `path` exists (follows symlinks: a dangling link is absent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exists } from "./_fs.ts";
 * assert.deepStrictEqual(await exists("/"), true);
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Read buffers of {@link forEachChunk}, reused across files. */
const spareChunks: Uint8Array[] = [];
const CHUNK_BYTES = 8 << 20;

/**
 * Reads a whole file sequentially, 8 MiB at a time into a reused buffer,
 * handing each chunk to `onChunk` (valid only during the call); returns the
 * size. With `sync`, fsyncs the file first.
 */
async function forEachChunk(
  path: string,
  sync: boolean,
  onChunk: (chunk: Uint8Array) => void,
): Promise<number> {
  const f = await Deno.open(path, { read: true, write: sync });
  const buf = spareChunks.pop() ?? new Uint8Array(CHUNK_BYTES);
  let size = 0;
  try {
    if (sync) await f.sync();
    while (true) {
      const n = await f.read(buf);
      if (n === null) break;
      size += n;
      onChunk(buf.subarray(0, n));
    }
  } finally {
    f.close();
    spareChunks.push(buf);
  }
  return size;
}

/**
 * Readies `buf` for reads from files: fills it with a read of `/dev/zero`
 * where there is one (else leaves it). On this project's VM the first
 * `read()` into a page costs about 1.7 ms per MiB even after JavaScript has
 * written the page (the second costs 0.15): a split's buffers take that
 * before its clock starts. Returns whether it could.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { warmForReads } from "./_fs.ts";
 * const buf = new Uint8Array(1 << 20).fill(7);
 * if (warmForReads(buf)) assert.ok(buf.every((b) => b === 0));
 * ```
 */
export function warmForReads(buf: Uint8Array): boolean {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync("/dev/zero", { read: true });
  } catch {
    return false;
  }
  try {
    for (let got = 0; got < buf.length;) {
      const n = f.readSync(buf.subarray(got));
      if (!n) return false;
      got += n;
    }
    return true;
  } catch {
    return false;
  } finally {
    f.close();
  }
}

/**
 * A CRC-32 value (IEEE polynomial, as zip, gzip and PNG use; `node:zlib`'s
 * `crc32`) as the 8 lower-case hex digits a shard manifest records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32 } from "node:zlib";
 * import { crc32Hex } from "./_fs.ts";
 * assert.equal(crc32Hex(crc32(new TextEncoder().encode("123456789"))), "cbf43926");
 * assert.equal(crc32Hex(0x1f), "0000001f");
 * ```
 */
export function crc32Hex(value: number): string {
  return (value >>> 0).toString(16).padStart(8, "0");
}

/** The reflected CRC-32 polynomial. */
const CRC_POLY = 0xedb88320;

/** a * b modulo the CRC polynomial (polynomials over GF(2), reflected). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p = (p ^ b) >>> 0;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? ((b >>> 1) ^ CRC_POLY) >>> 0 : b >>> 1;
  }
  return p;
}

/** x^(2^n) modulo the CRC polynomial, n = 0..31. */
const X2N = (() => {
  const t = new Array<number>(32);
  let p = 0x40000000; // x^1
  t[0] = p;
  for (let n = 1; n < 32; n++) t[n] = p = multModP(p, p);
  return t;
})();

/**
 * The CRC-32 of two byte strings one after the other, from the CRC-32 of
 * each (`a` of the first, `b` of the second of `bLength` bytes): zlib's
 * `crc32_combine`, in O(log bLength). Threads that checksum the pieces of a
 * file they write at their own positions give the file's CRC this way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32 } from "node:zlib";
 * import { crc32Combine } from "./_fs.ts";
 * const [a, b] = [new TextEncoder().encode("1234"), new TextEncoder().encode("56789")];
 * assert.equal(crc32Combine(crc32(a), crc32(b), b.length), 0xcbf43926);
 * ```
 */
export function crc32Combine(a: number, b: number, bLength: number): number {
  // a · x^(8 · bLength), then b
  let p = 0x80000000; // x^0
  let k = 3;
  for (let n = bLength; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2) p = multModP(X2N[k & 31], p);
  }
  return (multModP(p, a >>> 0) ^ b) >>> 0;
}

/**
 * Streams a file through CRC-32 ({@link crc32Hex}; about 40 GB/s, so reading
 * the file is the cost) and returns its checksum and size. With `sync`,
 * fsyncs the file first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32File } from "./_fs.ts";
 * const p = await Deno.makeTempFile();
 * await Deno.writeTextFile(p, "123456789");
 * assert.deepEqual(await crc32File(p), { crc32: "cbf43926", size: 9 });
 * await Deno.remove(p);
 * ```
 */
export async function crc32File(
  path: string,
  opts: { sync?: boolean } = {},
): Promise<{ crc32: string; size: number }> {
  let crc = 0;
  const size = await forEachChunk(path, opts.sync === true, (chunk) => {
    crc = crc32(chunk, crc);
  });
  return { crc32: crc32Hex(crc), size };
}

/**
 * Lower-case hex SHA-256 of a whole file, streamed (Hugging Face LFS
 * downloads, and shard manifests of older splits).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256File } from "./_fs.ts";
 * const p = await Deno.makeTempFile();
 * await Deno.writeTextFile(p, "abc");
 * assert.equal(
 *   await sha256File(p),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * await Deno.remove(p);
 * ```
 */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await forEachChunk(path, false, (chunk) => h.update(chunk));
  return h.digest("hex");
}

/**
 * Reads exactly `into.length` bytes at `offset` of an open file; a short
 * file is a {@link FormatError} naming `path`.
 *
 * @example
 * ```ts ignore
 * import { readFully } from "./_fs.ts";
 * const f = await Deno.open("model.safetensors");
 * const head = new Uint8Array(8);
 * await readFully("model.safetensors", f, 0, head);
 * ```
 */
export async function readFully(
  path: string,
  file: Deno.FsFile,
  offset: number,
  into: Uint8Array,
): Promise<void> {
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < into.length) {
    const n = await file.read(into.subarray(done));
    if (n === null) {
      throw new FormatError(
        path,
        `unexpected end of file at offset ${
          offset + done
        } (wanted ${into.length} bytes at offset ${offset}); was it truncated?`,
      );
    }
    done += n;
  }
}
