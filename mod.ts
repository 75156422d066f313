/**
 * Strata: run large language models on GPUs much smaller than the model, by
 * streaming decoder layers through WebGPU.
 *
 * @example
 * ```ts ignore
 * import { AutoModel } from "jsr:@strata/strata";
 * const model = await AutoModel.fromPretrained("path/to/model", { gpuMemory: "2GB" });
 * const ids = await model.generate("Once upon a time", { maxNewTokens: 32 });
 * console.log(model.tokenizer.decode(ids));
 * await model.dispose();
 * ```
 *
 * @module
 */
export * from "./lib/errors.ts";
