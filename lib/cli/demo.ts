/**
 * `strata demo`: the whole path on a seeded tiny model, on any machine with
 * WebGPU (lavapipe included): make the model (Hugging Face layout, with its
 * own tokenizer), split it into layer shards, plan a GPU budget that forces
 * streaming, generate greedily and print the plan, the ids, the text and
 * the per-layer profile.
 *
 * @module
 */
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { AutoModel } from "../engine/auto_model.ts";
import { formatBytes } from "../_units.ts";
import { profileTable } from "./run.ts";
import { formatInfo, modelInfo } from "./info.ts";
import { makeTinyModel } from "../testing/tiny_model.ts";
import { parseHelpedCommand } from "./_args.ts";

const HELP =
  `Usage: deno run -A cli.ts demo [--layers N] [--max-new-tokens N] [--keep DIR]

Makes a seeded tiny llama (lib/testing/tiny_model.ts), splits it, and runs
it with a GPU budget that keeps 2 layers resident and streams the rest through
a ring of 3 slots; prints the plan, the generated ids and text, and the profile.

  --layers N           decoder layers (default 8)
  --max-new-tokens N   tokens to generate (default 24)
  --keep DIR           write the model and shards into DIR and keep them
  --help`;

/**
 * Entry point of `strata demo`.
 *
 * @example
 * ```ts ignore
 * import { main } from "./demo.ts";
 * await main([]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const parsed = parseHelpedCommand({
    command: "demo",
    args,
    positionals: false,
    options: {
      layers: { type: "string" },
      "max-new-tokens": { type: "string" },
      keep: { type: "string" },
    },
    help: HELP,
  });
  if (parsed === null) return 0;
  const v = parsed.values;
  const layers = Number(v.layers ?? 8);
  const maxNew = Number(v["max-new-tokens"] ?? 24);
  if (!Number.isInteger(layers) || layers < 3) {
    throw new UsageError("--layers must be an integer >= 3");
  }
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new UsageError("--max-new-tokens must be a positive integer");
  }
  const root = v.keep ?? await Deno.makeTempDir({ prefix: "strata-demo-" });
  const log = (s: string) => console.error(s);
  try {
    const hf = join(root, "tiny-llama");
    const shards = join(root, "tiny-llama-shards");
    console.log(
      `1. making a seeded tiny llama (${layers} layers, F16) in ${hf}`,
    );
    await makeTinyModel(hf, {
      arch: "llama",
      dtype: "F16",
      layers,
      seed: 1234,
    });

    console.log(
      `2. splitting it into ${shards} and planning with a budget for everything`,
    );
    const probe = await AutoModel.fromPretrained(hf, {
      layerShardsSavingPath: shards,
      gpuMemory: "4GB",
      maxSeqLen: 128,
    });
    const p = probe.plan;
    await probe.dispose();
    const files: string[] = [];
    for await (const e of Deno.readDir(shards)) {
      if (!e.isDirectory) {
        files.push(e.name);
        continue;
      }
      let n = 0;
      for await (const _ of Deno.readDir(join(shards, e.name))) n++;
      files.push(`${e.name}/ (${n} files)`);
    }
    console.log(
      `   the shard directory (docs/format.md) holds ${
        files.sort().join(", ")
      }; 'info' says:`,
    );
    const info = await modelInfo(shards, {});
    console.log(formatInfo(info).map((l) => `     ${l}`).join("\n"));
    const layer = p.residentBytes / p.resident.length;
    const budget = Math.floor(
      p.kvBytes + p.headBytes + p.activationBytes + 5 * layer + 64,
    );
    console.log(
      `   all resident would need ${
        formatBytes(p.totalBytes)
      }; using a budget of ${
        formatBytes(budget)
      } (2 resident layers + 3 ring slots)`,
    );

    console.log(
      "3. loading under that budget (plan below) and generating greedily",
    );
    const model = await AutoModel.fromPretrained(shards, {
      gpuMemory: budget,
      maxSeqLen: 128,
      profiling: true,
      log: (s) => console.log(`   ${s}`),
    });
    try {
      const prompt = "Once upon a time";
      const promptIds = model.encode(prompt);
      const ids = await model.generate(promptIds, {
        maxNewTokens: maxNew,
        temperature: 0,
      });
      const s = model.lastStats!;
      console.log(
        `   prompt: ${JSON.stringify(prompt)} → ids [${promptIds.join(", ")}]`,
      );
      console.log(`   generated ids: [${ids.join(", ")}]`);
      if (model.tokenizer) {
        console.log(
          `   text (random weights, so not English): ${
            JSON.stringify(
              model.tokenizer.decode(ids, { skipSpecialTokens: true }),
            )
          }`,
        );
      }
      console.log(
        `   ${ids.length} tokens (${s.stopReason}); prefill ${
          s.prefillS.toFixed(3)
        } s; decode ${s.decodeS.toFixed(3)} s (${
          s.tokensPerS.toFixed(1)
        } tokens/s, per-layer sync for the profile); streamed ${
          formatBytes(s.bytesStreamedPerToken)
        }/token; peak GPU ${formatBytes(s.peakGpuBytes)} ≤ budget ${
          formatBytes(budget)
        }`,
      );
      console.log("4. profile (per layer, mean over passes):");
      console.log(
        profileTable(s.forward.layers, s.forward.passes, s.forward.wallS),
      );
    } finally {
      await model.dispose();
    }
    void log;
    console.log(
      v.keep
        ? `\nThe model and its shards are in ${root}; try:\n  deno run -A cli.ts info ${shards}\n  deno run -A cli.ts run ${shards} --prompt "Once upon a time" --max-new-tokens 16`
        : "\nDone. The files were in a temporary directory, now removed; keep them with --keep DIR.",
    );
    return 0;
  } finally {
    if (!v.keep) await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}
