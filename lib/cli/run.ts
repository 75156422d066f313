/**
 * `strata run <model>`: generate from a model with layers streamed under a
 * GPU budget. Machine output (`--json`) goes to stdout; the plan, progress
 * and the profile go to stderr.
 *
 * @module
 */
import { quantizationChoices } from "../quant/encoding.ts";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { AutoModel } from "../engine/auto_model.ts";
import { resolveModel } from "../engine/resolve.ts";
import { exists } from "../_fs.ts";
import { StopStrings, StreamingDetokenizer } from "../text/detokenizer.ts";
import type { LayerProfile } from "../engine/forward.ts";
import { expertProfileTable } from "../engine/moe_stats.ts";
import { runJsonStats } from "./_run_stats.ts";
import { noteIgnoredTokenizer, quantizeFlag, samplingFlags } from "./_args.ts";
import { TRACE_HELP, traceFlag, writeTraceFlag } from "./_trace.ts";
import { parseModelCommand } from "./_model_command.ts";
import { type FilePrompt, readPromptsFile } from "./_prompts_file.ts";
import { batchSizeFlag, runBatch } from "./_run_batch.ts";

const HELP = `Usage: deno run -A cli.ts run <model> [flags]

<model>: a shard directory, a Hugging Face checkpoint directory, a .gguf file,
a llama2.c .bin (with --tokenizer), or org/name[@revision]. Checkpoints are
split into the cache (~/.cache/strata or $STRATA_CACHE) on first use.

  --prompt TEXT            prompt text (needs a tokenizer; '' = BOS only); streams text
  --prompt-ids 1,2,3       prompt token ids; prints the new ids on one line, then
                           (with a tokenizer) their text
  --prompts-file FILE      JSON Lines of {"prompt_ids":[...]} or {"prompt":"..."}:
                           every prompt generated in shared passes (batched)
  --batch-size N           sequences per pass with --prompts-file (default
                           min(prompts, 64)); each has its own KV cache
  --draft MODEL|ngram      speculative decoding: a small resident draft model sharing
                           the vocabulary (or prompt lookup: ngram) proposes tokens
                           that the target verifies in one streamed pass
  --draft-tokens K         tokens proposed per target pass (default 4)
  --max-new-tokens N       tokens to generate (default 128)
  --temperature T          0 = greedy (default); > 0 samples
  --top-k K, --top-p P, --min-p P, --repetition-penalty R
  --seed S                 PRNG seed (reproducible sampling)
  --stop STR               stop when the text contains STR (not printed); repeatable
  --gpu-memory SIZE        GPU budget, e.g. 2GB, 512MiB (default: see docs/engine.md)
  --max-seq-len N          KV cache positions
  ${
  `--quantize ${quantizationChoices()}`.padEnd(24)
} split-time quantization of a checkpoint
  --tokenizer FILE         llama2.c tokenizer (tok512.bin) for .bin checkpoints
  --no-prefetch            serial read → upload → compute (AirLLM style)
  --profile                per-layer read/upload/compute table on stderr (syncs per layer)
  --json                   one JSON object on stdout: prompt_ids, ids, text?, stats
                           (--prompts-file: {"results":[{prompt_ids, ids, text?}], "stats"})
${TRACE_HELP}
  --help`;

/** Formats the per-layer profile table. */
export function profileTable(
  layers: LayerProfile[],
  passes: number,
  wallS: number,
): string {
  const by = new Map<number, LayerProfile & { n: number }>();
  for (const l of layers) {
    const a = by.get(l.layer) ??
      { ...l, readMs: 0, readWaitMs: 0, uploadMs: 0, computeMs: 0, n: 0 };
    a.readMs += l.readMs;
    a.readWaitMs += l.readWaitMs;
    a.uploadMs += l.uploadMs;
    a.computeMs += l.computeMs;
    a.n++;
    by.set(l.layer, a);
  }
  const lines = [
    "layer  kind      units  read ms  wait ms  upload ms  compute ms   (mean per pass)",
  ];
  let read = 0, wait = 0, up = 0, comp = 0;
  for (const a of [...by.values()].sort((x, y) => x.layer - y.layer)) {
    const f = (x: number) => (x / a.n).toFixed(2).padStart(9);
    lines.push(
      `${String(a.layer).padStart(5)}  ${a.streamed ? "streamed" : "resident"}${
        String(a.units ?? 1).padStart(7)
      }${f(a.readMs)}${f(a.readWaitMs)}${f(a.uploadMs).padStart(11)}${
        f(a.computeMs).padStart(12)
      }`,
    );
    read += a.readMs;
    wait += a.readWaitMs;
    up += a.uploadMs;
    comp += a.computeMs;
  }
  const serial = read + up + comp;
  const wallMs = wallS * 1000;
  lines.push(
    `total over ${passes} pass(es): read ${read.toFixed(1)} ms (waited ${
      wait.toFixed(1)
    }), upload ${up.toFixed(1)} ms, compute ${comp.toFixed(1)} ms; wall ${
      wallMs.toFixed(1)
    } ms; overlap ${
      wallMs > 0 ? (serial / wallMs).toFixed(2) : "-"
    }x (read+upload+compute / wall; 1.00 = none hidden)`,
  );
  return lines.join("\n");
}

/**
 * Entry point of `strata run`.
 *
 * @example
 * ```ts ignore
 * import { main } from "./run.ts";
 * await main(["shards/tiny", "--prompt-ids", "1,2,3", "--temperature", "0", "--json"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const cmd = parseModelCommand({
    command: "run",
    args,
    options: {
      prompt: { type: "string" },
      "prompt-ids": { type: "string" },
      "prompts-file": { type: "string" },
      "batch-size": { type: "string" },
      draft: { type: "string" },
      "draft-tokens": { type: "string" },
      stop: { type: "string", multiple: true },
      "no-prefetch": { type: "boolean" },
      profile: { type: "boolean" },
      json: { type: "boolean" },
    },
    help: HELP,
  });
  if (cmd === null) return 0;
  const { values: v, modelName } = cmd;
  if (v.prompt !== undefined && v["prompt-ids"] !== undefined) {
    throw new UsageError("run: give --prompt or --prompt-ids, not both");
  }
  if (
    v["prompts-file"] !== undefined &&
    (v.prompt !== undefined || v["prompt-ids"] !== undefined)
  ) {
    throw new UsageError(
      "run: give --prompts-file or --prompt/--prompt-ids, not both",
    );
  }
  if (v["batch-size"] !== undefined && v["prompts-file"] === undefined) {
    throw new UsageError("run: --batch-size needs --prompts-file");
  }
  const filePrompts: FilePrompt[] | null = v["prompts-file"] !== undefined
    ? await readPromptsFile(v["prompts-file"])
    : null;
  const batchSize = filePrompts
    ? batchSizeFlag(v["batch-size"], filePrompts.length)
    : undefined;
  if (v["draft-tokens"] !== undefined && v.draft === undefined) {
    throw new UsageError("run: --draft-tokens needs --draft");
  }
  if (v.draft !== undefined && filePrompts) {
    throw new UsageError(
      "run: --draft works with one prompt, not with --prompts-file",
    );
  }
  const draftTokens = v["draft-tokens"] === undefined
    ? undefined
    : Number(v["draft-tokens"]);
  if (
    draftTokens !== undefined &&
    (!Number.isInteger(draftTokens) || draftTokens < 1)
  ) {
    throw new UsageError(
      `--draft-tokens must be a positive integer, got '${v["draft-tokens"]}'`,
    );
  }
  const { quantize } = quantizeFlag(v.quantize);
  let promptIds: number[] | undefined;
  if (v["prompt-ids"] !== undefined) {
    promptIds = v["prompt-ids"].split(",").filter((s) => s.trim() !== "").map(
      (s) => {
        const n = Number(s);
        if (!Number.isInteger(n) || n < 0) {
          throw new UsageError(`--prompt-ids: '${s}' is not a token id`);
        }
        return n;
      },
    );
  }
  const { maxSeqLen, ...sampling } = samplingFlags(v, {
    maxNewTokens: 128,
    minNewTokens: 0,
  });
  const log = (s: string) => console.error(s);
  noteIgnoredTokenizer(modelName, v.tokenizer, log);
  const trace = await traceFlag(v.trace);

  const wall0 = performance.now();
  // Split (or download) first, and check for the tokenizer that --prompt
  // and --stop need before the model goes to the GPU.
  const dir = await resolveModel(modelName, {
    quantize,
    tokenizer: v.tokenizer,
    log,
  });
  const needsTokenizer = v.prompt !== undefined
    ? "--prompt"
    : filePrompts?.some((p) => "prompt" in p)
    ? "--prompts-file with text prompts"
    : (v.stop ?? []).some((s) => s.length > 0)
    ? "--stop"
    : null;
  if (needsTokenizer !== null && !(await exists(join(dir, "tokenizer.json")))) {
    throw new UsageError(
      `run: ${needsTokenizer} needs a tokenizer and ${modelName} has no tokenizer.json; give token ids with --prompt-ids 1,2,3${
        /\.bin$/i.test(modelName) ? " (or --tokenizer tok.bin)" : ""
      }`,
    );
  }
  const model = await AutoModel.fromPretrained(dir, {
    gpuMemory: v["gpu-memory"],
    maxSeqLen,
    profiling: v.profile ?? false,
    prefetch: !v["no-prefetch"],
    tokenizer: v.tokenizer,
    log,
    trace,
    batchSize,
    draft: v.draft,
    draftTokens,
  });
  try {
    let prompt: number[];
    if (promptIds !== undefined) {
      prompt = promptIds;
    } else if (v.prompt !== undefined) {
      prompt = model.encode(v.prompt);
    } else if (filePrompts) {
      prompt = []; // each prompt of the file: see runBatch
    } else {
      const bos = model.tokenizer?.bosTokenId ?? model.config.bosTokenId;
      if (bos === null) {
        throw new UsageError(
          "run: give --prompt or --prompt-ids (the model has no BOS token)",
        );
      }
      prompt = [bos];
    }
    const doSample = (sampling.temperature ?? 0) > 0;
    const ids: number[] = [];
    const tok = model.tokenizer;
    const detok = tok
      ? new StreamingDetokenizer(tok, { prefixIds: prompt })
      : null;
    const stop = (v.stop ?? []).filter((s) => s.length > 0);
    if (stop.length > 0 && !tok) {
      throw new UsageError(
        "run: --stop needs a tokenizer (the model has no tokenizer.json)",
      );
    }
    const enc = new TextEncoder();
    // stdout closed by the reader (`run ... | head`): stop quietly, like a
    // Unix tool killed by SIGPIPE, instead of an "internal error".
    let closed = false;
    const out = async (s: string) => {
      if (closed || s === "") return;
      const b = enc.encode(s);
      try {
        let off = 0;
        while (off < b.length) off += await Deno.stdout.write(b.subarray(off));
      } catch (e) {
        if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
        closed = true;
      }
    };
    if (filePrompts) {
      await runBatch({
        model,
        prompts: filePrompts,
        opts: { ...sampling, doSample, stop },
        json: v.json ?? false,
        wall0,
        out,
        log,
      });
      await writeTraceFlag(trace, v.trace, log);
      return 0;
    }
    const stops = stop.length > 0 ? new StopStrings(stop) : null;
    const streamText = !v.json && v.prompt !== undefined && detok !== null;
    // The generated text, as streamed (the first token keeps the space the
    // prompt gives it; a stop string and what follows are left out).
    let text = "";
    const show = async (shown: string) => {
      text += shown;
      if (streamText) await out(shown);
    };
    const emit = (piece: string) =>
      show(stops ? stops.push(piece).text : piece);
    for await (
      const id of model.stream(prompt, { ...sampling, doSample, stop })
    ) {
      ids.push(id);
      if (detok) await emit(detok.push(id));
      if (!streamText && !v.json) {
        await out(`${ids.length > 1 ? " " : ""}${id}`);
      }
      if (closed) break;
    }
    await writeTraceFlag(trace, v.trace, log);
    if (closed) return 0;
    if (detok) {
      await emit(detok.flush());
      if (stops) await show(stops.flush());
    }
    if (!v.json) await out("\n");
    // --prompt-ids printed the ids: with a tokenizer, the text follows.
    if (!v.json && !streamText && tok !== null && !closed) {
      await out(text.endsWith("\n") ? text : text + "\n");
    }
    const s = model.lastStats!;
    const wallS = (performance.now() - wall0) / 1000;
    if (v.profile) {
      log(profileTable(s.forward.layers, s.forward.passes, s.forward.wallS));
      if (s.forward.experts) log(expertProfileTable(s.forward.experts));
    }
    const stats = runJsonStats(model, wallS);
    if (v.json) {
      const obj: Record<string, unknown> = { prompt_ids: prompt, ids };
      if (tok) obj.text = text;
      obj.stats = stats;
      await out(JSON.stringify(obj) + "\n");
    } else {
      log(
        `${ids.length} tokens (${s.stopReason}); prefill ${
          s.prefillS.toFixed(3)
        } s, decode ${s.decodeS.toFixed(3)} s, ${
          s.tokensPerS.toFixed(2)
        } tokens/s${
          s.draftProposed === undefined
            ? ""
            : ` (draft: ${s.draftAccepted}/${s.draftProposed} accepted)`
        }; streamed ${
          (s.bytesStreamedPerToken / 2 ** 20).toFixed(1)
        } MiB/token; peak GPU ${(s.peakGpuBytes / 2 ** 20).toFixed(1)} MiB`,
      );
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
