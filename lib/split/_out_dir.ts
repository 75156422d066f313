/**
 * The split's output directory: refusing a directory that is not ours, and
 * clearing stale partial files.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { join } from "node:path";
import { PROGRESS_FILE } from "./source.ts";

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
