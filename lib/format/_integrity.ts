/**
 * Shard integrity before use. A shard file whose bytes changed but whose size
 * did not (a bad disk, a partial copy, a stray write) would be used as is and
 * produce garbage tokens, so every file is checked against the manifest's
 * SHA-256 before it is first used after it changed. Hashing a large model on
 * every start would cost seconds, so a small sidecar record,
 * `.strata-verified.json` in the shard directory, remembers for each file the
 * size, modification time, change time and inode under which its hash was
 * last found equal to the manifest's; a file whose stat still matches is not
 * hashed again. A file changed less than a second before it was stamped is
 * not recorded (the change time has one-second resolution), so a write in
 * that second cannot hide. The policy is described in docs/format.md.
 *
 * @module
 */
import { join } from "node:path";
import { FormatError } from "../errors.ts";
import { sha256File } from "../_fs.ts";

/** The sidecar record's file name inside a shard directory. */
export const VERIFIED_FILE = ".strata-verified.json";

/** What identifies one verified state of a file. */
interface Stamp {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  sha256: string;
}

/** One manifest entry: path relative to the shard directory, size, SHA-256. */
export interface IntegrityEntry {
  /** Path relative to the shard directory. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Lower-case hex SHA-256. */
  sha256: string;
}

/** Options of {@linkcode checkIntegrity}. */
export interface CheckIntegrityOptions {
  /** What to suggest on a mismatch (default: split the model again). */
  remedy?: string;
  /** Progress lines (e.g. stderr): said once when files must be hashed. */
  log?: (line: string) => void;
}

function stampOf(st: Deno.FileInfo, sha256: string): Stamp {
  return {
    size: st.size,
    mtimeMs: st.mtime?.getTime() ?? 0,
    ctimeMs: st.ctime?.getTime() ?? 0,
    ino: st.ino ?? 0,
    sha256,
  };
}

/**
 * Whether a stamp taken at `at` (ms, read just before the stat) can vouch for
 * the file later. The change time has one-second resolution here: a write in
 * the same second as the stamp could leave size, times and inode as they
 * were, so a file changed less than a second before the stamp is not
 * recorded (it is hashed again next time, as git treats "racily clean"
 * files).
 */
function safeStamp(s: Stamp, at: number): boolean {
  const changed = s.ctimeMs > 0 ? s.ctimeMs : s.mtimeMs;
  return changed + 1000 <= at;
}

function sameStamp(a: Stamp | undefined, b: Stamp): boolean {
  return a !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.sha256 === b.sha256;
}

async function readRecord(dir: string): Promise<Record<string, Stamp>> {
  try {
    const v = JSON.parse(await Deno.readTextFile(join(dir, VERIFIED_FILE)));
    if (v?.version === 1 && typeof v.files === "object" && v.files !== null) {
      return v.files as Record<string, Stamp>;
    }
  } catch {
    // missing or damaged: every file is hashed again
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
 * the file is unchanged since its hash last matched, of the recorded
 * SHA-256. Files that pass are recorded.
 *
 * @throws {FormatError} naming the first file that is missing, of another
 * size or of another hash; the message says what to do.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkIntegrity } from "./_integrity.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.bin`, "abc");
 * const sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
 * await checkIntegrity(dir, [{ path: "a.bin", size: 3, sha256 }]);
 * await Deno.writeTextFile(`${dir}/a.bin`, "abd"); // same size, other bytes
 * await assert.rejects(
 *   checkIntegrity(dir, [{ path: "a.bin", size: 3, sha256 }]),
 *   /a\.bin: SHA-256 differs from manifest\.json/,
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
    const stamp = stampOf(st, f.sha256);
    if (sameStamp(record[f.path], stamp)) next[f.path] = record[f.path];
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
      if ((await sha256File(p)) !== f.sha256) {
        throw new FormatError(
          p,
          `SHA-256 differs from manifest.json (the file is corrupted or was changed); ${
            opts.remedy ?? `delete ${dir} and split the model again`
          }`,
        );
      }
      const stamp = stampOf(st, f.sha256);
      if (safeStamp(stamp, at)) next[f.path] = stamp;
    }
  } finally {
    // What passed stays recorded, also when a later file failed.
    await writeRecord(dir, next);
  }
}

/**
 * Records `files` as verified in their current state, without hashing them:
 * for a writer that has just computed their hashes (split) or a full check
 * that has just compared them (`info --verify`).
 *
 * @example
 * ```ts
 * import { checkIntegrity, recordVerified } from "./_integrity.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.bin`, "abc");
 * const sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
 * await recordVerified(dir, [{ path: "a.bin", size: 3, sha256 }]);
 * await checkIntegrity(dir, [{ path: "a.bin", size: 3, sha256 }]); // no hashing
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
      const stamp = stampOf(st, f.sha256);
      if (st.size === f.size && safeStamp(stamp, at)) next[f.path] = stamp;
    } catch {
      // missing: not recorded
    }
  }
  await writeRecord(dir, next);
}
