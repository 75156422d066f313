/**
 * Shared fixtures of the engine tests: tiny models (made by the seeded maker
 * in lib/testing) split into shard directories once per process, in a
 * temporary directory.
 *
 * @module
 */
import { join } from "node:path";
import {
  makeTinyModel,
  type TinyModelOptions,
  tinyVariants,
} from "../../lib/testing/tiny_model.ts";
import { openSource } from "../../lib/split/open_source.ts";
import { splitModel } from "../../lib/split/split.ts";
import type { Quantization } from "../../lib/quant/encoding.ts";

let root: string | null = null;
const made = new Map<string, Promise<{ hf: string; shards: string }>>();

/** The temporary root (created on first use, removed at unload). */
export async function tempRoot(): Promise<string> {
  if (!root) {
    root = await Deno.makeTempDir({ prefix: "strata-engine-" });
    const r = root;
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(r, { recursive: true });
      } catch { /* already gone */ }
    });
  }
  return root;
}

/** Makes (once) the HF dir and a shard dir of `opts` with `quantize`. */
export function tinyShards(
  name: string,
  opts: TinyModelOptions,
  quantize: Quantization = "none",
): Promise<{ hf: string; shards: string }> {
  const key = `${name}:${quantize}`;
  let p = made.get(key);
  if (!p) {
    p = (async () => {
      const r = await tempRoot();
      const hf = join(r, name);
      try {
        await Deno.stat(join(hf, "config.json"));
      } catch {
        await makeTinyModel(hf, opts);
      }
      const shards = join(r, `${name}-shards-${quantize}`);
      const src = await openSource(hf);
      try {
        await splitModel(src, { out: shards, quantize });
      } finally {
        src.close();
      }
      return { hf, shards };
    })();
    made.set(key, p);
  }
  return p;
}

/** Every tiny-model variant. */
export const VARIANTS = tinyVariants();

/** Prompt ids used throughout (inside every tiny vocabulary). */
export const PROMPT = [1, 72, 101, 108, 108, 111, 44, 32, 119];
