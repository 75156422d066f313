/**
 * Small file helpers shared by the readers, the splitter and the hub cache.
 *
 * @module
 */
import { createHash } from "node:crypto";
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

/**
 * Streams a file through SHA-256 (8 MiB at a time) and returns its
 * lower-case hex digest and its size. With `sync`, fsyncs the file first.
 *
 * @example
 * ```ts ignore
 * import { hashFile } from "./_fs.ts";
 * console.log(await hashFile("shards/manifest.json"));
 * ```
 */
export async function hashFile(
  path: string,
  opts: { sync?: boolean } = {},
): Promise<{ sha256: string; size: number }> {
  const h = createHash("sha256");
  const f = await Deno.open(path, { read: true, write: opts.sync === true });
  let size = 0;
  try {
    if (opts.sync) await f.sync();
    const buf = new Uint8Array(8 << 20);
    while (true) {
      const n = await f.read(buf);
      if (n === null) break;
      size += n;
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return { sha256: h.digest("hex"), size };
}

/**
 * Lower-case hex SHA-256 of a whole file, streamed.
 *
 * @example
 * ```ts ignore
 * import { sha256File } from "./_fs.ts";
 * console.log(await sha256File("shards/manifest.json"));
 * ```
 */
export async function sha256File(path: string): Promise<string> {
  return (await hashFile(path)).sha256;
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
