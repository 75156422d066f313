/**
 * `strata serve <model>`: an OpenAI-compatible HTTP server (see
 * docs/serve.md). Loads the model once, then answers `/v1/models`,
 * `/v1/completions`, `/v1/chat/completions` and `/health` until SIGINT or
 * SIGTERM, when it cancels the generations, closes and frees the GPU.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { quantizationChoices } from "../quant/encoding.ts";
import { TRACE_HELP, traceFlag, writeTraceFlag } from "./_trace.ts";
import { parseModelCommand } from "./_model_command.ts";
import { loadChatTemplate } from "../text/chat_template.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../server/body.ts";
import {
  noteIgnoredTokenizer,
  numberFlag,
  quantizeFlag,
  samplingFlags,
} from "./_args.ts";

const HELP = `Usage: deno run -A cli.ts serve <model> [flags]

An OpenAI-compatible HTTP server: GET /v1/models, POST /v1/completions,
POST /v1/chat/completions (stream true or false), GET /health.
Requests queue in arrival order and run one at a time on the model; a
client that disconnects cancels its generation at the next pass.

<model>: a shard directory, a Hugging Face checkpoint directory, a .gguf file,
a llama2.c .bin (with --tokenizer), or org/name[@revision].

  --host ADDR              address to bind (default 127.0.0.1: this machine only)
  --port N                 port (default 8080; 0 = any free port)
  --api-key KEY            require 'Authorization: Bearer KEY' on /v1/*
                           (default: $STRATA_API_KEY; none = no auth)
  --model-id NAME          the model's id in the API (default: <model> as given)
  --chat-template FILE     Jinja chat template instead of the model's (chat
                           completions need one)
  --max-body-bytes N       largest request body (default ${DEFAULT_MAX_BODY_BYTES})
  --max-new-tokens N       max_tokens when a request gives none
                           (default: the rest of the context)
  --temperature T          when a request gives none (default 1, as OpenAI)
  --top-k K, --top-p P, --min-p P, --repetition-penalty R, --seed S
                           defaults for requests that do not set them
  --gpu-memory SIZE        GPU budget, e.g. 2GB, 512MiB
  --max-seq-len N          KV cache positions (prompt + max_tokens must fit)
  ${
  `--quantize ${quantizationChoices()}`.padEnd(24)
} split-time quantization of a checkpoint
  --tokenizer FILE         llama2.c tokenizer (tok512.bin) for .bin checkpoints
${TRACE_HELP}
                           (written when the server stops)
  --help

Example:
  deno run -A cli.ts serve model.gguf --port 8080
  curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_tokens":32}'`;

/** Options of {@linkcode main} for embedding and tests. */
export interface ServeMainOptions {
  /** Stops the server when aborted (default: SIGINT / SIGTERM). */
  signal?: AbortSignal;
  /** Called with the URL once listening. */
  onListen?: (url: string) => void;
}

/**
 * Entry point of `strata serve`: returns the exit code once stopped.
 *
 * @example
 * ```ts ignore
 * import { main } from "./serve.ts";
 * Deno.exit(await main(["model.gguf", "--port", "8080"]));
 * ```
 */
export async function main(
  args: string[],
  opts: ServeMainOptions = {},
): Promise<number> {
  const cmd = parseModelCommand({
    command: "serve",
    args,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "api-key": { type: "string" },
      "model-id": { type: "string" },
      "chat-template": { type: "string" },
      "max-body-bytes": { type: "string" },
    },
    help: HELP,
  });
  if (cmd === null) return 0;
  const { values: v, modelName } = cmd;
  const port = numberFlag("port", v.port, { int: true, min: 0 }) ?? 8080;
  if (port > 65535) {
    throw new UsageError(`--port must be <= 65535, got ${port}`);
  }
  const maxBodyBytes = numberFlag("max-body-bytes", v["max-body-bytes"], {
    int: true,
    min: 1,
  }) ?? DEFAULT_MAX_BODY_BYTES;
  const { quantize, compression } = quantizeFlag(v.quantize);
  const s = samplingFlags(v, { maxNewTokens: 0, minNewTokens: 1 });
  const hostname = v.host ?? "127.0.0.1";
  let apiKey = v["api-key"];
  if (apiKey === undefined) {
    try {
      apiKey = Deno.env.get("STRATA_API_KEY");
    } catch { /* no --allow-env */ }
  }
  if (apiKey === "") apiKey = undefined;
  // Read the override first: a bad file should fail before the model loads.
  const override = v["chat-template"] !== undefined
    ? await loadChatTemplate(v["chat-template"])
    : undefined;

  const trace = await traceFlag(v.trace);
  const log = (line: string) => console.error(line);
  noteIgnoredTokenizer(modelName, v.tokenizer, log);
  const { AutoModel } = await import("../engine/auto_model.ts");
  const { startServer } = await import("../server/server.ts");
  const model = await AutoModel.fromPretrained(modelName, {
    compression,
    quantize,
    gpuMemory: v["gpu-memory"],
    maxSeqLen: s.maxSeqLen,
    tokenizer: v.tokenizer,
    log,
    trace,
  });
  try {
    const template = override ?? model.tokenizer?.chatTemplate ?? null;
    if (!model.tokenizer) {
      log(
        `note: ${modelName} has no tokenizer: /v1/completions and /v1/chat/completions will answer 400`,
      );
    } else if (template === null) {
      log(
        `note: ${modelName} has no chat template: /v1/chat/completions will answer 400 (pass --chat-template FILE)`,
      );
    }
    if (!isLoopback(hostname) && apiKey === undefined) {
      log(
        `note: listening on ${hostname} without --api-key: anyone who reaches this port can use the model`,
      );
    }
    const server = await startServer({
      model,
      modelId: v["model-id"] ?? modelName,
      chatTemplate: template,
      templateSource: v["chat-template"],
      apiKey,
      maxBodyBytes,
      hostname,
      port,
      defaults: {
        maxTokens: v["max-new-tokens"] !== undefined
          ? s.maxNewTokens
          : undefined,
        temperature: s.temperature,
        topP: s.topP,
        topK: s.topK,
        minP: s.minP,
        repetitionPenalty: s.repetitionPenalty,
        seed: s.seed,
      },
      log,
    });
    log(
      `serve: listening on ${server.url} (model ${
        v["model-id"] ?? modelName
      }, context ${model.maxSeqLen} tokens${
        apiKey !== undefined ? ", API key required" : ""
      }); Ctrl-C stops`,
    );
    opts.onListen?.(server.url);
    await waitForStop(opts.signal);
    log("serve: stopping");
    await server.shutdown();
    await writeTraceFlag(trace, v.trace, log);
  } finally {
    await model.dispose();
  }
  return 0;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/** Resolves on `signal` or, without one, on SIGINT / SIGTERM. */
function waitForStop(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal) {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
      return;
    }
    const sigs: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const stop = () => {
      for (const s of sigs) Deno.removeSignalListener(s, stop);
      resolve();
    };
    for (const s of sigs) Deno.addSignalListener(s, stop);
  });
}
