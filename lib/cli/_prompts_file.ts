/**
 * `run --prompts-file FILE`: JSON Lines, one prompt per line, either
 * `{"prompt_ids":[1,2,3]}` or `{"prompt":"text"}`; blank lines are skipped.
 *
 * @module
 */
import { FormatError } from "../errors.ts";

/** One prompt of a prompts file: ids, or text for the tokenizer. */
export type FilePrompt = { promptIds: number[] } | { prompt: string };

/**
 * Parses the text of a prompts file; a bad line is a {@link FormatError}
 * naming `file` and the line number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePromptsFile } from "./_prompts_file.ts";
 * import { FormatError } from "../errors.ts";
 * const p = parsePromptsFile('{"prompt_ids":[1,2]}\n\n{"prompt":"Hi"}\n', "p.jsonl");
 * assert.deepEqual(p, [{ promptIds: [1, 2] }, { prompt: "Hi" }]);
 * assert.throws(() => parsePromptsFile('{"prompt_ids":[1,-2]}', "p.jsonl"), FormatError);
 * ```
 */
export function parsePromptsFile(text: string, file: string): FilePrompt[] {
  const out: FilePrompt[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const bad = (problem: string): never => {
      throw new FormatError(file, `line ${i + 1}: ${problem}`);
    };
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      bad("not valid JSON");
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      return bad('expected an object {"prompt_ids":[...]} or {"prompt":"..."}');
    }
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length !== 1 || !["prompt_ids", "prompt"].includes(keys[0])) {
      return bad(
        `expected exactly one key, "prompt_ids" or "prompt" (got ${
          keys.map((k) => JSON.stringify(k)).join(", ") || "none"
        })`,
      );
    }
    if ("prompt" in o) {
      if (typeof o.prompt !== "string") bad('"prompt" must be a string');
      out.push({ prompt: o.prompt as string });
      return;
    }
    const ids = o.prompt_ids;
    if (
      !Array.isArray(ids) || ids.length === 0 ||
      !ids.every((x) => Number.isSafeInteger(x) && x >= 0)
    ) {
      return bad('"prompt_ids" must be a non-empty array of token ids');
    }
    out.push({ promptIds: ids as number[] });
  });
  if (out.length === 0) throw new FormatError(file, "no prompts");
  return out;
}

/**
 * Reads and parses a prompts file (a missing file is a {@link FormatError} too).
 *
 * @example
 * ```ts ignore
 * const prompts = await readPromptsFile("prompts.jsonl");
 * ```
 */
export async function readPromptsFile(file: string): Promise<FilePrompt[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new FormatError(
      file,
      `cannot read it (${e instanceof Error ? e.message : e})`,
    );
  }
  return parsePromptsFile(text, file);
}
