/**
 * chatglm.cpp's GLM test vectors (../shared/models/glm-chatglmcpp): tiny
 * random ChatGLM2/3 and GLM-4-9B-chat checkpoints with the final-norm hidden
 * states THUDM's modeling_chatglm.py gives over three KV-cached steps.
 *
 * @module
 */
import { join } from "node:path";
import { SafetensorsFile } from "../../lib/format/safetensors.ts";
import { refDecode, type RefTensor } from "../reference/forward.ts";

/** The vectors' directory. */
export const SHARED =
  new URL("../../../shared/models/glm-chatglmcpp/", import.meta.url).pathname;

/** Whether ../shared has them. */
export const HAVE = await Deno.stat(SHARED).then(() => true, () => false);
if (!HAVE) console.warn(`chatglm.cpp vector tests skipped: no ${SHARED}`);

/** golden.json: final-norm hidden states [T][D] by step. */
export interface Golden {
  [step: string]: { input_ids: number[]; last_hidden_state: number[][] };
}

/** The vectors' config, weights (and their shapes) and goldens. */
export async function loadChatglmCpp(variant: "glm2" | "glm4"): Promise<{
  hf: Record<string, unknown>;
  golden: Golden;
  weights: Map<string, RefTensor>;
  shapes: Map<string, number[]>;
}> {
  const dir = join(SHARED, variant);
  const hf = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const golden: Golden = JSON.parse(
    await Deno.readTextFile(join(dir, "golden.json")),
  );
  const f = await SafetensorsFile.open(join(dir, "model.safetensors"));
  const weights = new Map<string, RefTensor>();
  const shapes = new Map<string, number[]>();
  try {
    for (const [name, info] of f.tensors) {
      weights.set(name, refDecode(await f.read(name), info.dtype, name));
      shapes.set(name, info.shape);
    }
  } finally {
    f.close();
  }
  return { hf, golden, weights, shapes };
}
