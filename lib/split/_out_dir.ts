/**
 * The output directory of a split: checks, atomic text writes, the progress
 * record of a resumable split, free space, and leftovers of an interrupted
 * run (private to lib/split/split.ts).
 *
 * @module
 */
import { PROGRESS_FILE } from "./source.ts";
import { dirname, join, resolve } from "node:path";
import { statfs } from "node:fs/promises";
import { UsageError } from "../errors.ts";

export async function syncDir(dir: string): Promise<void> {
  try {
    const f = await Deno.open(dir, { read: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
  } catch {
    // not every platform can fsync a directory
  }
}

export async function writeTextAtomic(
  path: string,
  text: string,
  sync = true,
): Promise<void> {
  const tmp = path + ".partial";
  await Deno.writeTextFile(tmp, text);
  if (sync) await syncFile(tmp);
  await Deno.rename(tmp, path);
  await syncDir(dirname(path));
}

async function syncFile(path: string): Promise<void> {
  const f = await Deno.open(path, { read: true, write: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

export async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

export async function freeBytes(dir: string): Promise<number> {
  const fake = Deno.env.get("STRATA_SPLIT_FREE_BYTES");
  if (fake !== undefined) return Number(fake);
  let d = resolve(dir);
  while (true) {
    try {
      const s = await statfs(d);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      const up = dirname(d);
      if (up === d) return Infinity;
      d = up;
    }
  }
}

export function envInt(name: string): number | null {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return null;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/** A finished file of the progress record: its size and CRC-32 (hex). */
export interface DoneFile {
  size: number;
  crc32: string;
}

/**
 * The progress record (`.strata-split.json`): the plan and the finished
 * files. A file whose entry is `null` was listed but cannot be trusted
 * (a record of an older Strata, which kept a SHA-256, or a damaged entry):
 * it is written again, or removed with the rest of another plan's files.
 */
export interface Progress {
  plan: string;
  done: Record<string, DoneFile | null>;
}

function isDoneFile(e: unknown): e is DoneFile {
  const r = e as Partial<DoneFile> | null;
  return typeof r?.size === "number" && Number.isSafeInteger(r.size) &&
    r.size >= 0 && typeof r.crc32 === "string" && /^[0-9a-f]{8}$/.test(r.crc32);
}

export async function readProgress(path: string): Promise<Progress | null> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    if (
      typeof v?.plan !== "string" || typeof v?.done !== "object" ||
      v.done === null
    ) return null;
    const done: Record<string, DoneFile | null> = {};
    for (const [rel, e] of Object.entries(v.done as Record<string, unknown>)) {
      done[rel] = isDoneFile(e) ? { size: e.size, crc32: e.crc32 } : null;
    }
    return { plan: v.plan, done };
  } catch {
    // missing or unreadable: start over
  }
  return null;
}

export async function removeStalePartials(out: string): Promise<void> {
  for (const d of [out, join(out, "layers")]) {
    try {
      for await (const e of Deno.readDir(d)) {
        if (e.isFile && e.name.endsWith(".partial")) {
          await Deno.remove(join(d, e.name));
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
}

/**
 * Refuses an `--out` that is not a directory, or a directory that holds
 * anything but the files of an earlier (unfinished) split: a split writes
 * config.json and tokenizer files, and must never overwrite someone else's.
 */
export async function checkOutDir(out: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(out);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // created below
    throw new UsageError(`--out ${out}: ${(e as Error).message}`);
  }
  if (!st.isDirectory) {
    throw new UsageError(`--out ${out} exists and is not a directory`);
  }
  if (await isFile(join(out, PROGRESS_FILE))) return; // an unfinished split
  const stray = await firstStrayEntry(out);
  if (stray !== null) {
    throw new UsageError(
      `--out ${out} is a directory that is neither empty nor a Strata shard directory (it holds ${stray}); choose a new or empty directory`,
    );
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The first entry other than `*.partial` files and an empty-ish `layers/`. */
async function firstStrayEntry(dir: string): Promise<string | null> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".partial")) continue;
    if (e.isDirectory && e.name === "layers") {
      const inner = await firstStrayEntry(join(dir, "layers"));
      if (inner === null) continue;
      return `layers/${inner}`;
    }
    return e.name;
  }
  return null;
}
