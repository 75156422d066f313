/**
 * `strata chat <model>`: an interactive chat. The conversation is kept as a
 * list of messages and rendered through the model's chat template on every
 * turn; replies stream as they are generated. Ctrl-C stops a reply (the
 * partial reply stays in the conversation); `/reset` starts over, `/exit`
 * or end of input (Ctrl-D) leaves.
 *
 * The REPL itself ({@linkcode runChat}) takes its input, output, interrupts
 * and model as arguments, so it can be tested without a terminal or a GPU.
 *
 * @module
 */
import { quantizationChoices } from "../quant/encoding.ts";
import { join } from "node:path";
import { FormatError, StrataError, UsageError } from "../errors.ts";
import { type ChatMessage, loadChatTemplate } from "../text/chat_template.ts";
import { ChatSession } from "../chat/session.ts";
import {
  isContextError,
  type ReplyGenerateOptions,
  type ReplyModel,
} from "../chat/reply.ts";
import { noteIgnoredTokenizer, quantizeFlag, samplingFlags } from "./_args.ts";
import { TRACE_HELP, traceFlag, writeTraceFlag } from "./_trace.ts";
import { parseModelCommand } from "./_model_command.ts";

const HELP = `Usage: deno run -A cli.ts chat <model> [flags]

<model>: a shard directory, a Hugging Face checkpoint directory, a .gguf file,
a llama2.c .bin (with --tokenizer), or org/name[@revision].

  --system TEXT            system prompt
  --chat-template FILE     Jinja chat template to use instead of the model's
                           (a .jinja/.txt file, or a JSON file with chat_template)
  --max-new-tokens N       longest reply in tokens (default 512)
  --temperature T          0 = greedy; default 0.7
  --top-k K, --top-p P, --min-p P, --repetition-penalty R
  --seed S                 PRNG seed
  --gpu-memory SIZE        GPU budget, e.g. 2GB, 512MiB
  --max-seq-len N          KV cache positions (the conversation must fit)
  ${
  `--quantize ${quantizationChoices()}`.padEnd(24)
} split-time quantization of a checkpoint
  --tokenizer FILE         llama2.c tokenizer for .bin checkpoints
${TRACE_HELP}
                           (written when the chat ends)
  --help

In the chat: Ctrl-C stops a reply, /reset forgets the conversation,
/exit or Ctrl-D leaves, /help lists the commands.`;

/** Generation options the chat passes on (a subset of the engine's). */
export type ChatGenerateOptions = ReplyGenerateOptions;

/** What the chat needs from a model (AutoModel has it). */
export type ChatModel = ReplyModel;

/** Where Ctrl-C comes from: `subscribe` returns an unsubscribe function. */
export interface InterruptSource {
  /** Calls `onInterrupt` on every interrupt until unsubscribed. */
  subscribe(onInterrupt: () => void): () => void;
}

/** Arguments of {@linkcode runChat}. */
export interface ChatOptions {
  /** The model. */
  model: ChatModel;
  /** The model's name (for messages). */
  modelName: string;
  /** The Jinja chat template. */
  template: string;
  /** Where the template came from when not the model (`--chat-template FILE`), for messages. */
  templateSource?: string;
  /** System prompt. */
  system?: string;
  /** Generation options of each reply. */
  generate?: ChatGenerateOptions;
  /** Lines typed by the user (UTF-8). */
  input: ReadableStream<Uint8Array>;
  /** Receives the prompt, the streamed replies and notices. */
  write: (text: string) => void | Promise<void>;
  /** Ctrl-C. */
  interrupts: InterruptSource;
  /** Prompt shown before each user line (default ">>> "). */
  prompt?: string;
}

/** What a chat session did (for tests). */
export interface ChatResult {
  /** The conversation at the end. */
  messages: ChatMessage[];
  /** Replies generated (complete or stopped). */
  replies: number;
  /** Replies stopped by Ctrl-C. */
  interrupted: number;
}

/** Splits a byte stream into lines (without the line ends). */
async function* lines(
  input: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  const reader = input.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) !== -1) {
        yield buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
      }
    }
    buf += decoder.decode();
    if (buf.length > 0) yield buf.replace(/\r$/, "");
  } finally {
    reader.releaseLock();
  }
}

const COMMANDS = "/reset  forget the conversation (keeps --system)\n" +
  "/exit   leave (also /quit, Ctrl-D)\n" +
  "/help   this list\n" +
  "Ctrl-C  stop the reply being written";

/**
 * Runs the chat loop until `/exit` or the end of input.
 *
 * @example
 * ```ts ignore
 * import { runChat } from "./chat.ts";
 * await runChat({
 *   model, modelName: "tiny", template: model.tokenizer!.chatTemplate!,
 *   input: Deno.stdin.readable, write: (s) => { Deno.stdout.writeSync(new TextEncoder().encode(s)); },
 *   interrupts: { subscribe: (f) => { Deno.addSignalListener("SIGINT", f); return () => Deno.removeSignalListener("SIGINT", f); } },
 * });
 * ```
 */
export async function runChat(opts: ChatOptions): Promise<ChatResult> {
  // The conversation, its template and the reply logic live in the session
  // (shared with `serve`); this loop is the terminal around it.
  const session = new ChatSession({
    model: opts.model,
    modelName: opts.modelName,
    template: opts.template,
    templateSource: opts.templateSource,
    system: opts.system,
  });
  const prompt = opts.prompt ?? ">>> ";
  const result: ChatResult = { messages: [], replies: 0, interrupted: 0 };
  let current: AbortController | null = null;
  const unsubscribe = opts.interrupts.subscribe(() => {
    if (current && !current.signal.aborted) {
      current.abort();
    } else if (!current) {
      void opts.write(
        "\n(Ctrl-C stops a reply; type /exit or press Ctrl-D to leave)\n" +
          prompt,
      );
    }
  });
  try {
    await opts.write(prompt);
    for await (const raw of lines(opts.input)) {
      const line = raw.trim();
      if (line === "") {
        await opts.write(prompt);
        continue;
      }
      if (line === "/exit" || line === "/quit") {
        result.messages = session.messages;
        return result;
      }
      if (line === "/reset") {
        session.reset();
        await opts.write("(conversation reset)\n" + prompt);
        continue;
      }
      if (line === "/help" || line === "/?") {
        await opts.write(COMMANDS + "\n" + prompt);
        continue;
      }
      if (/^\/[a-z]+$/.test(line)) {
        await opts.write(
          `unknown command ${line}; /help lists the commands\n` + prompt,
        );
        continue;
      }
      let ids: number[];
      try {
        ids = session.ask(raw);
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        await opts.write(`error: ${e.message}${hint(e)}\n` + prompt);
        continue;
      }
      const controller = new AbortController();
      current = controller;
      let finish: string;
      try {
        ({ finishReason: finish } = await session.reply(ids, {
          generate: opts.generate,
          signal: controller.signal,
          onText: opts.write,
        }));
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        // e.g. the conversation no longer fits the context: keep the REPL.
        await opts.write(`\nerror: ${e.message}${hint(e)}\n` + prompt);
        continue;
      } finally {
        current = null;
      }
      result.replies++;
      if (finish === "abort") {
        result.interrupted++;
        await opts.write(" [stopped]");
      } else if (finish === "context") {
        await opts.write(
          " [the context is full: /reset starts a new conversation; --max-seq-len sets the context]",
        );
      }
      await opts.write("\n" + prompt);
    }
    await opts.write("\n");
    result.messages = session.messages;
    return result;
  } finally {
    unsubscribe();
  }
}

/** The REPL's hint after an error that says the context is full. */
function hint(e: unknown): string {
  return isContextError(e)
    ? " (/reset starts a new conversation; --max-seq-len sets the context)"
    : "";
}

/**
 * Whether the shard directory's tokenizer has a default chat template
 * (chat_template.jinja, or in tokenizer_config.json, as {@linkcode Tokenizer}
 * reads them), or null when there is no tokenizer.json.
 */
async function templatePresence(dir: string): Promise<boolean | null> {
  try {
    await Deno.stat(join(dir, "tokenizer.json"));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    if ((await Deno.readTextFile(join(dir, "chat_template.jinja"))).trim()) {
      return true;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const path = join(dir, "tokenizer_config.json");
  let cfg: unknown;
  try {
    cfg = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new FormatError(path, `cannot read: ${(e as Error).message}`);
  }
  const ct = (cfg as { chat_template?: unknown } | null)?.chat_template;
  if (typeof ct === "string") return true;
  return Array.isArray(ct) &&
    ct.some((e) => e?.name === "default" && typeof e?.template === "string");
}

/**
 * Entry point of `strata chat`.
 *
 * @example
 * ```ts ignore
 * import { main } from "./chat.ts";
 * Deno.exit(await main(["shards/tiny", "--system", "Be brief."]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const cmd = parseModelCommand({
    command: "chat",
    args,
    options: {
      system: { type: "string" },
      "chat-template": { type: "string" },
    },
    help: HELP,
  });
  if (cmd === null) return 0;
  const { values: v, modelName } = cmd;
  const { quantize, compression } = quantizeFlag(v.quantize);
  const { maxSeqLen, ...sampling } = samplingFlags(v, {
    maxNewTokens: 512,
    minNewTokens: 1,
    temperature: 0.7,
  });
  const temperature = sampling.temperature!;
  const generate: ChatGenerateOptions = {
    maxNewTokens: sampling.maxNewTokens,
    temperature,
    doSample: temperature > 0,
    topK: sampling.topK,
    topP: sampling.topP,
    minP: sampling.minP,
    repetitionPenalty: sampling.repetitionPenalty,
    seed: sampling.seed,
  };
  // Read the override first: a bad file should fail before the model loads.
  const override = v["chat-template"] !== undefined
    ? await loadChatTemplate(v["chat-template"])
    : undefined;

  const log = (s: string) => console.error(s);
  noteIgnoredTokenizer(modelName, v.tokenizer, log);
  const trace = await traceFlag(v.trace);
  // Split (or download) first, and check that there is a tokenizer and a
  // template before the model goes to the GPU.
  const { resolveModel } = await import("../engine/resolve.ts");
  const dir = await resolveModel(modelName, {
    quantize,
    tokenizer: v.tokenizer,
    log,
  });
  const has = await templatePresence(dir);
  if (has === null) {
    throw new UsageError(
      `${modelName}: no tokenizer.json; chat needs a tokenizer`,
    );
  }
  if (!has && override === undefined) {
    throw new UsageError(
      `${modelName}: no chat template; pass --chat-template FILE`,
    );
  }

  const { AutoModel } = await import("../engine/auto_model.ts");
  const model = await AutoModel.fromPretrained(dir, {
    compression,
    quantize,
    gpuMemory: v["gpu-memory"],
    maxSeqLen,
    log,
    trace,
  });
  try {
    const template = override ?? model.tokenizer?.chatTemplate ?? null;
    if (!model.tokenizer) {
      throw new UsageError(
        `${modelName}: no tokenizer.json; chat needs a tokenizer`,
      );
    }
    if (template === null) {
      throw new UsageError(
        `${modelName}: no chat template; pass --chat-template FILE`,
      );
    }
    const enc = new TextEncoder();
    console.error(
      `chat with ${modelName}: Ctrl-C stops a reply, /reset, /exit or Ctrl-D to leave`,
    );
    await runChat({
      model,
      modelName,
      template,
      templateSource: v["chat-template"],
      system: v.system,
      generate,
      input: Deno.stdin.readable,
      write: async (s) => {
        const b = enc.encode(s);
        let off = 0;
        while (off < b.length) off += await Deno.stdout.write(b.subarray(off));
      },
      interrupts: {
        subscribe(f) {
          Deno.addSignalListener("SIGINT", f);
          return () => Deno.removeSignalListener("SIGINT", f);
        },
      },
    });
    await writeTraceFlag(trace, v.trace, log);
  } finally {
    await model.dispose();
  }
  return 0;
}
