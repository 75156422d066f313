/**
 * Errors of the HTTP API in OpenAI's shape:
 * `{"error": {"message", "type", "param", "code"}}` with a 4xx (or 5xx)
 * status, so that OpenAI clients raise their usual exceptions.
 *
 * @module
 */
import { StrataError } from "../errors.ts";

/** Options of {@linkcode ApiError}. */
export interface ApiErrorOptions {
  /** OpenAI's error type (default "invalid_request_error"). */
  type?: string;
  /** The request field at fault, or null. */
  param?: string | null;
  /** A machine-readable code, or null. */
  code?: string | null;
}

/**
 * An error answered to the client: HTTP status plus OpenAI's error body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ApiError } from "./api_error.ts";
 * const e = new ApiError(400, "max_tokens must be an integer >= 1", { param: "max_tokens" });
 * const r = e.toResponse();
 * assert.equal(r.status, 400);
 * assert.equal((await r.json()).error.param, "max_tokens");
 * ```
 */
export class ApiError extends StrataError {
  /** The HTTP status. */
  readonly status: number;
  /** OpenAI's error type. */
  readonly type: string;
  /** The request field at fault, or null. */
  readonly param: string | null;
  /** A machine-readable code, or null. */
  readonly code: string | null;

  /** An error with HTTP `status` and `message`. */
  constructor(status: number, message: string, opts: ApiErrorOptions = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? "invalid_request_error";
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
  }

  /** The JSON body: `{"error": {...}}`. */
  toJSON(): { error: Record<string, string | null> } {
    return {
      error: {
        message: this.message,
        type: this.type,
        param: this.param,
        code: this.code,
      },
    };
  }

  /** The HTTP response. */
  toResponse(headers: HeadersInit = {}): Response {
    return Response.json(this.toJSON(), { status: this.status, headers });
  }
}

/**
 * Turns anything thrown while answering into an {@linkcode ApiError}: an
 * ApiError stays; another StrataError (bad input the engine refused) is a
 * 400; anything else is a 500 whose message is kept short.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toApiError } from "./api_error.ts";
 * import { UsageError } from "../errors.ts";
 * assert.equal(toApiError(new UsageError("bad")).status, 400);
 * assert.equal(toApiError(new Error("boom")).status, 500);
 * ```
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof StrataError) return new ApiError(400, e.message);
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError(
    500,
    `internal error: ${message.split("\n")[0]}`,
    { type: "server_error" },
  );
}
