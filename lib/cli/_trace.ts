/**
 * `--trace FILE`, shared by the commands that generate (run, chat, serve):
 * checks the file's directory before the model loads, and writes the
 * timeline when the command is done (through FILE.partial, renamed when
 * complete).
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { Tracer } from "../engine/trace.ts";

/** The flag, for parseCommand's options. */
export const TRACE_FLAG = { trace: { type: "string" } } as const;

/** The help line of the flag. */
export const TRACE_HELP =
  "  --trace FILE             write a timeline of reads, uploads and compute (Chrome trace-event JSON; opens in ui.perfetto.dev)";

/**
 * A tracer for `--trace FILE`, or undefined without the flag. Fails with a
 * UsageError when FILE is empty, a directory, or in a directory that does not
 * exist, before anything is loaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceFlag } from "./_trace.ts";
 * assert.equal(await traceFlag(undefined), undefined);
 * await assert.rejects(traceFlag("/no/such/dir/t.json"), /--trace/);
 * ```
 */
export async function traceFlag(
  path: string | undefined,
): Promise<Tracer | undefined> {
  if (path === undefined) return undefined;
  if (path === "") throw new UsageError("--trace needs a file name");
  const dir = dirname(resolve(path));
  let ok = false;
  try {
    ok = (await Deno.stat(dir)).isDirectory;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new UsageError(`--trace ${path}: directory ${dir} does not exist`);
  }
  try {
    if ((await Deno.stat(path)).isDirectory) {
      throw new UsageError(`--trace ${path}: is a directory`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  return new Tracer();
}

/**
 * Writes the timeline to `path` (when tracing) and says so through `log`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Tracer } from "../engine/trace.ts";
 * import { writeTraceFlag } from "./_trace.ts";
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await writeTraceFlag(new Tracer(), path, () => {});
 * assert.ok(Array.isArray(JSON.parse(await Deno.readTextFile(path)).traceEvents));
 * await Deno.remove(path);
 * ```
 */
export async function writeTraceFlag(
  tracer: Tracer | undefined,
  path: string | undefined,
  log: (line: string) => void,
): Promise<void> {
  if (!tracer || path === undefined) return;
  await tracer.write(path);
  log(`trace: ${path} (Chrome trace-event JSON; open in ui.perfetto.dev)`);
}
