/**
 * Shard integrity before use. A shard file whose bytes changed but whose size
 * did not (a bad disk, a partial copy, a stray write) would be used as is and
 * produce garbage tokens, so every file is checked against the manifest's
 * checksum (CRC-32; SHA-256 in manifests of older splits) before it is first
 * used after it changed. Reading a large model on every start would cost
 * seconds, so a small sidecar record, `.strata-verified.json` in the shard
 * directory, remembers for each file the size, modification time, change
 * time, inode and checksum under which it was last found equal to the
 * manifest; a file whose stat still matches is not read again. A file
 * changed less than a second before it was stamped is not recorded (the
 * change time has one-second resolution), so a write in that second cannot
 * hide. The policy is described in docs/format.md.
 *
 * @module
 */
import { join } from "node:path";
import { FormatError } from "../errors.ts";
import { crc32File, sha256File } from "../_fs.ts";

/** The sidecar record's file name inside a shard directory. */
export const VERIFIED_FILE = ".strata-verified.json";

/** What identifies one verified state of a file. */
interface Stamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** `crc32:<hex>` or `sha256:<hex>`: the checksum the file matched. */
  checksum: string;
  /** Records of older Strata: the SHA-256 the file matched (no `checksum`). */
  sha256?: string;
}

/**
 * One manifest entry: path relative to the shard directory, size and one
 * checksum, `crc32` (what split writes) or `sha256` (older splits).
 */
export interface IntegrityEntry {
  /** Path relative to the shard directory. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** CRC-32 (IEEE, as zip), 8 lower-case hex digits. */
  crc32?: string;
  /** SHA-256, 64 lower-case hex digits (manifests of older splits). */
  sha256?: string;
}

/**
 * The entry's checksum as `crc32:<hex>` or `sha256:<hex>` (what a stamp
 * records, so a stamp of one algorithm never vouches for the other).
 */
function checksumKey(f: IntegrityEntry): string {
  if (f.crc32 !== undefined) return `crc32:${f.crc32}`;
  if (f.sha256 !== undefined) return `sha256:${f.sha256}`;
  return "none";
}

/**
 * The name of the entry's checksum, for messages: `CRC-32` or `SHA-256`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checksumName } from "./_integrity.ts";
 * assert.equal(checksumName({ path: "a", size: 0, crc32: "00000000" }), "CRC-32");
 * assert.equal(checksumName({ path: "a", size: 0, sha256: "0".repeat(64) }), "SHA-256");
 * ```
 */
export function checksumName(f: IntegrityEntry): string {
  return f.crc32 === undefined && f.sha256 !== undefined ? "SHA-256" : "CRC-32";
}

/**
 * Whether the file at `path` has the checksum `f` records (every byte is
 * read). An entry with no checksum never matches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchesChecksum } from "./_integrity.ts";
 * const p = await Deno.makeTempFile();
 * await Deno.writeTextFile(p, "123456789");
 * assert.equal(await matchesChecksum(p, { path: "a", size: 9, crc32: "cbf43926" }), true);
 * assert.equal(await matchesChecksum(p, { path: "a", size: 9, crc32: "cbf43927" }), false);
 * await Deno.remove(p);
 * ```
 */
export async function matchesChecksum(
  path: string,
  f: IntegrityEntry,
): Promise<boolean> {
  if (f.crc32 !== undefined) return (await crc32File(path)).crc32 === f.crc32;
  if (f.sha256 !== undefined) return (await sha256File(path)) === f.sha256;
  return false;
}

/** Options of {@linkcode checkIntegrity}. */
export interface CheckIntegrityOptions {
  /** What to suggest on a mismatch (default: split the model again). */
  remedy?: string;
  /** Progress lines (e.g. stderr): said once when files must be read. */
  log?: (line: string) => void;
}

function stampOf(st: Deno.FileInfo, f: IntegrityEntry): Stamp {
  return {
    size: st.size,
    mtimeMs: st.mtime?.getTime() ?? 0,
    ctimeMs: st.ctime?.getTime() ?? 0,
    ino: st.ino ?? 0,
    checksum: checksumKey(f),
  };
}

/**
 * Whether a stamp taken at `at` (ms, read just before the stat) can vouch for
 * the file later. The change time has one-second resolution here: a write in
 * the same second as the stamp could leave size, times and inode as they
 * were, so a file changed less than a second before the stamp is not
 * recorded (it is read again next time, as git treats "racily clean"
 * files).
 */
function safeStamp(s: Stamp, at: number): boolean {
  const changed = s.ctimeMs > 0 ? s.ctimeMs : s.mtimeMs;
  return changed + 1000 <= at;
}

function sameStamp(a: Stamp | undefined, b: Stamp): boolean {
  if (a === undefined || b.checksum === "none") return false;
  // A stamp of an older Strata recorded a SHA-256 (it vouches for that only).
  const checksum = typeof a.checksum === "string"
    ? a.checksum
    : typeof a.sha256 === "string"
    ? `sha256:${a.sha256}`
    : undefined;
  return a.size === b.size && a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs && a.ino === b.ino && checksum === b.checksum;
}

async function readRecord(dir: string): Promise<Record<string, Stamp>> {
  try {
    const v = JSON.parse(await Deno.readTextFile(join(dir, VERIFIED_FILE)));
    if (v?.version === 1 && typeof v.files === "object" && v.files !== null) {
      return v.files as Record<string, Stamp>;
    }
  } catch {
    // missing or damaged: every file is read again
  }
  return {};
}

/** Writes the record atomically; a read-only directory just keeps none. */
async function writeRecord(
  dir: string,
  files: Record<string, Stamp>,
): Promise<void> {
  const path = join(dir, VERIFIED_FILE);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify({ version: 1, files }));
    await Deno.rename(tmp, path);
  } catch {
    await Deno.remove(tmp).catch(() => {});
  }
}

async function statOf(dir: string, f: IntegrityEntry): Promise<Deno.FileInfo> {
  const p = join(dir, f.path);
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(p);
  } catch {
    throw new FormatError(p, "missing (listed in manifest.json)");
  }
  if (st.size !== f.size) {
    throw new FormatError(
      p,
      `size ${st.size} bytes, manifest.json says ${f.size} (truncated or changed)`,
    );
  }
  return st;
}

/**
 * Checks every file of `files` (manifest entries of the shard directory
 * `dir`): present, of the recorded size, and, unless the sidecar record says
 * the file is unchanged since its checksum last matched, of the recorded
 * checksum (CRC-32, or SHA-256 for older splits). Files that pass are
 * recorded.
 *
 * @throws {FormatError} naming the first file that is missing, of another
 * size or of another checksum; the message says what to do.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkIntegrity } from "./_integrity.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.bin`, "abc");
 * const crc32 = "352441c2"; // CRC-32 of "abc"
 * await checkIntegrity(dir, [{ path: "a.bin", size: 3, crc32 }]);
 * await Deno.writeTextFile(`${dir}/a.bin`, "abd"); // same size, other bytes
 * await assert.rejects(
 *   checkIntegrity(dir, [{ path: "a.bin", size: 3, crc32 }]),
 *   /a\.bin: CRC-32 differs from manifest\.json/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkIntegrity(
  dir: string,
  files: IntegrityEntry[],
  opts: CheckIntegrityOptions = {},
): Promise<void> {
  const record = await readRecord(dir);
  const next: Record<string, Stamp> = {};
  const todo: { f: IntegrityEntry; st: Deno.FileInfo; at: number }[] = [];
  for (const f of files) {
    const at = Date.now();
    const st = await statOf(dir, f);
    const stamp = stampOf(st, f);
    if (sameStamp(record[f.path], stamp)) next[f.path] = stamp;
    else todo.push({ f, st, at });
  }
  if (todo.length === 0) return;
  const bytes = todo.reduce((a, t) => a + t.f.size, 0);
  if (bytes > 64 * 2 ** 20) {
    opts.log?.(
      `verifying ${todo.length} shard file(s), ${
        (bytes / 2 ** 20).toFixed(0)
      } MiB, against manifest.json (once after a change)`,
    );
  }
  try {
    for (const { f, st, at } of todo) {
      const p = join(dir, f.path);
      if (!(await matchesChecksum(p, f))) {
        throw new FormatError(
          p,
          `${
            checksumName(f)
          } differs from manifest.json (the file is corrupted or was changed); ${
            opts.remedy ?? `delete ${dir} and split the model again`
          }`,
        );
      }
      const stamp = stampOf(st, f);
      if (safeStamp(stamp, at)) next[f.path] = stamp;
    }
  } finally {
    // What passed stays recorded, also when a later file failed.
    await writeRecord(dir, next);
  }
}

/**
 * Records `files` as verified in their current state, without reading them:
 * for a writer that has just computed their checksums (split) or a full check
 * that has just compared them (`info --verify`).
 *
 * @example
 * ```ts
 * import { checkIntegrity, recordVerified } from "./_integrity.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.bin`, "abc");
 * const crc32 = "352441c2"; // CRC-32 of "abc"
 * await recordVerified(dir, [{ path: "a.bin", size: 3, crc32 }]);
 * await checkIntegrity(dir, [{ path: "a.bin", size: 3, crc32 }]); // reads nothing
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function recordVerified(
  dir: string,
  files: IntegrityEntry[],
): Promise<void> {
  const next: Record<string, Stamp> = {};
  for (const f of files) {
    try {
      const at = Date.now();
      const st = await Deno.stat(join(dir, f.path));
      const stamp = stampOf(st, f);
      if (st.size === f.size && safeStamp(stamp, at)) next[f.path] = stamp;
    } catch {
      // missing: not recorded
    }
  }
  await writeRecord(dir, next);
}
