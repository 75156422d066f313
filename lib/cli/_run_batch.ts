/**
 * `run --prompts-file`: every prompt of the file generated in shared passes
 * (batched generation, lib/engine/batch.ts), printed once all are done.
 *
 * @module
 */
import type { AutoModel, GenerateOptions } from "../engine/auto_model.ts";
import { UsageError } from "../errors.ts";
import type { FilePrompt } from "./_prompts_file.ts";
import { runJsonStats } from "./_run_stats.ts";
import { StopStrings, StreamingDetokenizer } from "../text/detokenizer.ts";

/** The most sequences one pass carries by default. */
export const DEFAULT_MAX_BATCH = 64;

/**
 * The batch size for `n` prompts: `--batch-size` when given (1..64), else
 * min(n, 64).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchSizeFlag } from "./_run_batch.ts";
 * assert.equal(batchSizeFlag(undefined, 100), 64);
 * assert.equal(batchSizeFlag("4", 100), 4);
 * assert.throws(() => batchSizeFlag("0", 3));
 * ```
 */
export function batchSizeFlag(flag: string | undefined, n: number): number {
  if (flag === undefined) return Math.max(1, Math.min(n, DEFAULT_MAX_BATCH));
  const b = Number(flag);
  if (!Number.isInteger(b) || b < 1 || b > DEFAULT_MAX_BATCH) {
    throw new UsageError(
      `--batch-size must be an integer 1..${DEFAULT_MAX_BATCH}, got '${flag}'`,
    );
  }
  return b;
}

/** What {@link runBatch} needs. */
export interface RunBatchOptions {
  /** The model (opened with the batch size). */
  model: AutoModel;
  /** The file's prompts. */
  prompts: FilePrompt[];
  /** Sampling and stop options, the same for every prompt. */
  opts: GenerateOptions;
  /** Print one JSON object. */
  json: boolean;
  /** When the command started (performance.now()). */
  wall0: number;
  /** Writes to stdout. */
  out: (s: string) => Promise<void>;
  /** Writes a line to stderr. */
  log: (s: string) => void;
}

/**
 * Generates after every prompt; prints per prompt its new ids (and text),
 * or with `json` one object `{"results":[{"prompt_ids","ids","text"?}],
 * "stats":{...}}` whose `tokens_per_s` counts every sequence's tokens.
 *
 * @example
 * ```ts ignore
 * await runBatch({ model, prompts: [{ promptIds: [1, 2] }], opts: {}, json: true, wall0, out, log });
 * ```
 */
export async function runBatch(o: RunBatchOptions): Promise<void> {
  const { model } = o;
  const ids = o.prompts.map((p) =>
    "promptIds" in p ? p.promptIds : model.encode(p.prompt)
  );
  const out = await model.generate(ids, o.opts);
  const tok = model.tokenizer;
  const stop = (o.opts.stop ?? []).filter((s) => s.length > 0);
  // the text as `run` streams it: the first token keeps the space the prompt
  // gives it; a stop string and what follows are left out
  const texts = out.map((r, i) => {
    if (!tok) return undefined;
    const detok = new StreamingDetokenizer(tok, { prefixIds: ids[i] });
    const stops = stop.length > 0 ? new StopStrings(stop) : null;
    let text = "";
    const emit = (piece: string) =>
      text += stops ? stops.push(piece).text : piece;
    for (const id of r) emit(detok.push(id));
    emit(detok.flush());
    if (stops) text += stops.flush();
    return text;
  });
  const s = model.lastStats!;
  const stats = {
    sequences: ids.length,
    batch_size: model.batchSize,
    passes: s.batch?.passes ?? s.forward.passes,
    prompt_tokens: s.promptTokens,
    new_tokens: s.newTokens,
    ...runJsonStats(model, (performance.now() - o.wall0) / 1000),
  };
  if (o.json) {
    const results = out.map((r, i) => {
      const obj: Record<string, unknown> = { prompt_ids: ids[i], ids: r };
      if (texts[i] !== undefined) obj.text = texts[i];
      return obj;
    });
    await o.out(JSON.stringify({ results, stats }) + "\n");
    return;
  }
  for (const [i, r] of out.entries()) {
    await o.out(`[${i}] ${r.join(" ")}\n`);
    if (texts[i] !== undefined) await o.out(`[${i}] ${texts[i]}\n`);
  }
  o.log(
    `${ids.length} sequences, ${s.newTokens} tokens in ${stats.passes} passes (batch ${model.batchSize}); prefill ${
      s.prefillS.toFixed(3)
    } s, decode ${s.decodeS.toFixed(3)} s, ${
      s.tokensPerS.toFixed(2)
    } tokens/s (all sequences); peak GPU ${
      (s.peakGpuBytes / 2 ** 20).toFixed(1)
    } MiB`,
  );
}
