/**
 * A JSON answer that is only known after a generation, sent so that a
 * client who leaves is noticed: the headers go out at once and a space is
 * written every `probeMs` while the answer is pending (JSON allows leading
 * whitespace). Deno's server tells a handler that its client went away only
 * when a write fails, so without these writes an abandoned request would
 * run to its last token. When one fails, `cancel` aborts.
 *
 * The status is 200 once the headers are out: every 4xx is decided before
 * (the body, the fields, the prompt's fit); an error during generation is
 * sent as OpenAI's error body after the spaces.
 *
 * @module
 */
import { toApiError } from "./api_error.ts";

/**
 * A `200 application/json` response whose body is `produce()`'s value,
 * written once it resolves, after spaces that probe the connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pendingJsonResponse } from "./pending_json.ts";
 * const r = pendingJsonResponse(async () => {
 *   await new Promise((ok) => setTimeout(ok, 30));
 *   return { ok: true };
 * }, new AbortController(), 10);
 * const text = await r.text();
 * assert.deepEqual(JSON.parse(text), { ok: true });
 * assert.match(text, /^ +\{/);
 * ```
 */
export function pendingJsonResponse(
  produce: () => Promise<unknown>,
  cancel: AbortController,
  probeMs = 250,
): Response {
  const enc = new TextEncoder();
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const stop = () => {
    open = false;
    clearInterval(timer);
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
    },
    cancel() {
      stop();
      cancel.abort();
    },
  });
  const write = (s: string) => {
    if (!open) return;
    try {
      ctrl.enqueue(enc.encode(s));
    } catch {
      stop();
      cancel.abort();
    }
  };
  const timer = setInterval(() => write(" "), probeMs);
  void (async () => {
    let out: unknown;
    try {
      out = await produce();
    } catch (e) {
      out = toApiError(e).toJSON();
    }
    clearInterval(timer);
    write(JSON.stringify(out));
    if (open) {
      stop();
      try {
        ctrl.close();
      } catch { /* cancelled meanwhile */ }
    }
  })();
  return new Response(body, {
    headers: { "content-type": "application/json" },
  });
}
