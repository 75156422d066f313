/**
 * The HTTP handler of `strata serve`: OpenAI's `GET /v1/models`,
 * `POST /v1/completions` and `POST /v1/chat/completions` (streamed as
 * server-sent events or not), plus `GET /health`. Generation goes through
 * the {@linkcode Scheduler}; chat goes through the same
 * {@linkcode ChatSession} as `strata chat`; text comes out of the same
 * {@linkcode streamReply} as both.
 *
 * @module
 */
import { StrataError } from "../errors.ts";
import { type FinishReason, type Reply, streamReply } from "../chat/reply.ts";
import { ChatSession } from "../chat/session.ts";
import { ApiError, toApiError } from "./api_error.ts";
import { DEFAULT_MAX_BODY_BYTES, readJsonBody } from "./body.ts";
import {
  parseChatRequest,
  parseCompletionRequest,
  type SamplingRequest,
} from "./request.ts";
import type { Scheduler, SchedulerModel } from "./scheduler.ts";
import { type SendEvent, sseResponse } from "./sse.ts";
import { pendingJsonResponse } from "./pending_json.ts";

/** What the handler needs from the model (AutoModel has it). */
export interface ServedModel extends SchedulerModel {
  /** Text → prompt ids (BOS added as the model wants; `""` is BOS alone). */
  encode(text: string): number[];
  /** The vocabulary size (token id prompts are checked against it). */
  readonly config: { readonly vocabSize: number };
}

/** Sampling defaults of the server (its command-line flags). */
export interface ServeDefaults {
  /** Tokens when a request gives no `max_tokens` (default: the rest of the context). */
  maxTokens?: number;
  /** Temperature when a request gives none (default 1, as OpenAI). */
  temperature?: number;
  /** top-p when a request gives none. */
  topP?: number;
  /** top-k (extension field `top_k`). */
  topK?: number;
  /** min-p (extension field `min_p`). */
  minP?: number;
  /** Repetition penalty (extension field `repetition_penalty`). */
  repetitionPenalty?: number;
  /** Seed when a request gives none (default: random). */
  seed?: number;
}

/** Options of {@linkcode createHandler}. */
export interface HandlerOptions {
  /** The model (used for tokenization; generation goes through `scheduler`). */
  model: ServedModel;
  /** The id the API reports (`/v1/models`, `model` in responses). */
  modelId: string;
  /** The queue that owns the model. */
  scheduler: Scheduler;
  /** The chat template, or null (then chat completions are refused). */
  chatTemplate: string | null;
  /** Where the template came from when not the model (for messages). */
  templateSource?: string;
  /** When set, `/v1/*` requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MB). */
  maxBodyBytes?: number;
  /** Sampling defaults. */
  defaults?: ServeDefaults;
  /** One line per request (method, path, status, tokens, seconds). */
  log?: (line: string) => void;
}

const CREATED = Math.floor(Date.now() / 1000);

function newId(prefix: string): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** OpenAI's finish_reason: a full context is a "length". */
function finish(r: FinishReason): "stop" | "length" {
  return r === "length" || r === "context" ? "length" : "stop";
}

function usage(r: Reply) {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
  };
}

/** Constant-time string comparison (the API key). */
function sameKey(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let d = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    d |= (x[i] ?? 0) ^ (y[i] ?? 0);
  }
  return d === 0;
}

/**
 * Builds the request handler (for `Deno.serve`).
 *
 * @example
 * ```ts ignore
 * import { createHandler } from "./handler.ts";
 * import { Scheduler } from "./scheduler.ts";
 * const handler = createHandler({
 *   model, modelId: "tiny", scheduler: new Scheduler(model),
 *   chatTemplate: model.tokenizer?.chatTemplate ?? null,
 * });
 * Deno.serve({ hostname: "127.0.0.1", port: 8080 }, handler);
 * ```
 */
export function createHandler(
  opts: HandlerOptions,
): (req: Request) => Promise<Response> {
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const d = opts.defaults ?? {};
  const model = opts.model;

  /** The prompt's token budget: max_tokens bounded by the context. */
  const budget = (
    promptTokens: number,
    req: SamplingRequest,
    promptParam: "prompt" | "messages",
  ): number => {
    const ctx = model.maxSeqLen;
    if (promptTokens + 1 > ctx) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${ctx} tokens. However, your prompt has ${promptTokens} tokens. Please reduce the length of the prompt.`,
        { code: "context_length_exceeded", param: promptParam },
      );
    }
    if (req.maxTokens !== undefined) {
      if (promptTokens + req.maxTokens > ctx) {
        throw new ApiError(
          400,
          `This model's maximum context length is ${ctx} tokens. However, you requested ${
            promptTokens + req.maxTokens
          } tokens (${promptTokens} in the prompt, ${req.maxTokens} for the completion). Please reduce the length of the prompt or max_tokens.`,
          { code: "context_length_exceeded", param: "max_tokens" },
        );
      }
      return req.maxTokens;
    }
    return Math.min(d.maxTokens ?? Infinity, ctx - promptTokens);
  };

  const generateOptions = (req: SamplingRequest, maxNewTokens: number) => {
    const temperature = req.temperature ?? d.temperature ?? 1;
    return {
      maxNewTokens,
      temperature,
      doSample: temperature > 0,
      topP: req.topP ?? d.topP,
      topK: req.topK ?? d.topK,
      minP: req.minP ?? d.minP,
      repetitionPenalty: req.repetitionPenalty ?? d.repetitionPenalty,
      seed: req.seed ?? d.seed,
    };
  };

  const needTokenizer = () => {
    if (!model.tokenizer) {
      throw new ApiError(
        400,
        `${opts.modelId}: the model has no tokenizer, so it cannot answer with text`,
      );
    }
  };

  /**
   * Runs one generation, streamed as SSE events or answered as JSON; logs
   * one line when it ends (the request line is logged when headers go out).
   */
  const answer = (
    parsed: SamplingRequest,
    generate: (a: {
      signal: AbortSignal;
      onText?: (s: string) => void;
    }) => Promise<Reply>,
    shape: {
      id: string;
      object: string;
      chunkObject: string;
      first?: unknown; // the first streamed choice (chat: the role)
      piece: (text: string) => unknown; // a streamed choice
      last: (reason: "stop" | "length") => unknown; // the final streamed choice
      whole: (r: Reply) => unknown; // the choice of a non-streamed answer
    },
  ): Promise<Response> | Response => {
    const base = {
      id: shape.id,
      created: Math.floor(Date.now() / 1000),
      model: opts.modelId,
    };
    // Both kinds of answer learn that the client left from a failed write
    // (the body stream is cancelled): Deno's server does not reliably abort
    // request.signal while the handler writes nothing.
    const cancel = new AbortController();
    const signal = cancel.signal;
    const t0 = performance.now();
    const run = async (a: Parameters<typeof generate>[0]) => {
      try {
        const r = await generate(a);
        opts.log?.(
          `${shape.object} ${shape.id}: ${r.promptTokens} + ${r.completionTokens} tokens, ${r.finishReason}, ${
            ((performance.now() - t0) / 1000).toFixed(3)
          } s${parsed.stream ? ", streamed" : ""}`,
        );
        return r;
      } catch (e) {
        opts.log?.(
          `${shape.object} ${shape.id}: failed: ${toApiError(e).message}`,
        );
        throw e;
      }
    };
    if (!parsed.stream) {
      return pendingJsonResponse(async () => {
        const r = await run({ signal });
        return {
          ...base,
          object: shape.object,
          choices: [shape.whole(r)],
          usage: usage(r),
        };
      }, cancel);
    }
    const chunk = (choice: unknown, extra: Record<string, unknown> = {}) => ({
      ...base,
      object: shape.chunkObject,
      choices: choice === undefined ? [] : [choice],
      ...extra,
    });
    return sseResponse(async (send: SendEvent) => {
      if (shape.first !== undefined) send(chunk(shape.first));
      const r = await run({
        signal,
        onText: (s) => send(chunk(shape.piece(s))),
      });
      if (r.finishReason === "abort") return; // the client is gone
      send(chunk(shape.last(finish(r.finishReason))));
      if (parsed.includeUsage) send(chunk(undefined, { usage: usage(r) }));
      send("[DONE]");
    }, cancel);
  };

  const completions = async (req: Request): Promise<Response> => {
    const parsed = parseCompletionRequest(await readJsonBody(req, maxBody));
    needTokenizer();
    let ids: number[];
    if (typeof parsed.prompt === "string") {
      ids = model.encode(parsed.prompt);
    } else {
      ids = parsed.prompt;
      const v = model.config.vocabSize;
      const badId = ids.find((i) => i >= v);
      if (badId !== undefined) {
        throw new ApiError(
          400,
          `prompt: token id ${badId} is not below the vocabulary size ${v}`,
          { param: "prompt" },
        );
      }
    }
    const gen = generateOptions(parsed, budget(ids.length, parsed, "prompt"));
    return answer(
      parsed,
      ({ signal, onText }) =>
        streamReply(opts.scheduler.view(), ids, {
          generate: gen,
          stop: parsed.stop,
          signal,
          onText,
        }),
      {
        id: newId("cmpl-"),
        object: "text_completion",
        chunkObject: "text_completion",
        piece: (text) => ({
          index: 0,
          text,
          logprobs: null,
          finish_reason: null,
        }),
        last: (reason) => ({
          index: 0,
          text: "",
          logprobs: null,
          finish_reason: reason,
        }),
        whole: (r) => ({
          index: 0,
          text: r.text,
          logprobs: null,
          finish_reason: finish(r.finishReason),
        }),
      },
    );
  };

  const chat = async (req: Request): Promise<Response> => {
    const parsed = parseChatRequest(await readJsonBody(req, maxBody));
    needTokenizer();
    if (opts.chatTemplate === null) {
      throw new ApiError(
        400,
        `${opts.modelId} has no chat template: start serve with --chat-template FILE, or use /v1/completions`,
        { code: "no_chat_template" },
      );
    }
    const session = new ChatSession({
      model: opts.scheduler.view(),
      modelName: opts.modelId,
      template: opts.chatTemplate,
      templateSource: opts.templateSource,
      messages: parsed.messages,
    });
    let ids: number[];
    try {
      ids = session.prompt();
    } catch (e) {
      if (e instanceof StrataError) {
        throw new ApiError(400, e.message, { param: "messages" });
      }
      throw e;
    }
    const gen = generateOptions(parsed, budget(ids.length, parsed, "messages"));
    return answer(
      parsed,
      ({ signal, onText }) =>
        session.reply(ids, {
          generate: gen,
          stop: parsed.stop,
          signal,
          onText,
        }),
      {
        id: newId("chatcmpl-"),
        object: "chat.completion",
        chunkObject: "chat.completion.chunk",
        first: {
          index: 0,
          delta: { role: "assistant", content: "" },
          logprobs: null,
          finish_reason: null,
        },
        piece: (content) => ({
          index: 0,
          delta: { content },
          logprobs: null,
          finish_reason: null,
        }),
        last: (reason) => ({
          index: 0,
          delta: {},
          logprobs: null,
          finish_reason: reason,
        }),
        whole: (r) => ({
          index: 0,
          message: { role: "assistant", content: r.text },
          logprobs: null,
          finish_reason: finish(r.finishReason),
        }),
      },
    );
  };

  const modelObject = {
    id: opts.modelId,
    object: "model",
    created: CREATED,
    owned_by: "strata",
  };

  const route = (req: Request, path: string): Promise<Response> | Response => {
    if (path === "/health" || path === "/v1/health") {
      if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed();
      return Response.json({
        status: "ok",
        model: opts.modelId,
        running: opts.scheduler.running,
        waiting: opts.scheduler.waiting,
      });
    }
    if (!path.startsWith("/v1/")) throw notFound(path);
    if (opts.apiKey !== undefined) {
      const auth = req.headers.get("authorization") ?? "";
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameKey(m[1].trim(), opts.apiKey)) {
        throw new ApiError(
          401,
          m
            ? "Incorrect API key provided."
            : "You didn't provide an API key: send Authorization: Bearer <key>.",
          { code: "invalid_api_key" },
        );
      }
    }
    if (path === "/v1/models") {
      if (req.method !== "GET") throw notAllowed();
      return Response.json({ object: "list", data: [modelObject] });
    }
    if (path.startsWith("/v1/models/")) {
      if (req.method !== "GET") throw notAllowed();
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      if (id !== opts.modelId) {
        throw new ApiError(404, `The model '${id}' does not exist`, {
          code: "model_not_found",
          param: "model",
        });
      }
      return Response.json(modelObject);
    }
    if (path === "/v1/completions") {
      if (req.method !== "POST") throw notAllowed();
      return completions(req);
    }
    if (path === "/v1/chat/completions") {
      if (req.method !== "POST") throw notAllowed();
      return chat(req);
    }
    throw notFound(path);
  };

  return async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    const path = new URL(req.url).pathname.replace(/\/+$/, "") || "/";
    let res: Response;
    try {
      res = await route(req, path);
    } catch (e) {
      res = toApiError(e).toResponse();
    }
    opts.log?.(
      `${req.method} ${path} ${res.status} ${
        ((performance.now() - t0) / 1000).toFixed(3)
      } s`,
    );
    return res;
  };
}

function notFound(path: string): ApiError {
  return new ApiError(404, `no route ${path}`, { code: "not_found" });
}

function notAllowed(): ApiError {
  return new ApiError(405, "method not allowed", {
    code: "method_not_allowed",
  });
}
