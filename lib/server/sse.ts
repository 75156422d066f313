/**
 * Server-sent events, as OpenAI streams them: each chunk is one
 * `data: <json>` event, the stream ends with `data: [DONE]`. An error after
 * the headers went out is sent as a last `data: {"error": ...}` event.
 *
 * @module
 */
import { toApiError } from "./api_error.ts";

/** Sends one event (a JSON value, or a raw string such as `[DONE]`). */
export type SendEvent = (data: unknown) => void;

/**
 * A `text/event-stream` response whose events `produce` sends. When the
 * client goes away the stream is cancelled and `cancel` aborts (the
 * producer should stop at its next step).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sseResponse } from "./sse.ts";
 * const r = sseResponse(async (send) => {
 *   send({ n: 1 });
 *   send("[DONE]");
 * }, new AbortController());
 * assert.equal(await r.text(), 'data: {"n":1}\n\ndata: [DONE]\n\n');
 * ```
 */
export function sseResponse(
  produce: (send: SendEvent) => Promise<void>,
  cancel: AbortController,
): Response {
  const enc = new TextEncoder();
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      ctrl = c;
    },
    cancel() {
      open = false;
      cancel.abort();
    },
  });
  const send: SendEvent = (data) => {
    if (!open) return;
    const text = typeof data === "string" ? data : JSON.stringify(data);
    try {
      ctrl.enqueue(enc.encode(`data: ${text}\n\n`));
    } catch {
      open = false; // the stream is already gone
      cancel.abort();
    }
  };
  void (async () => {
    try {
      await produce(send);
    } catch (e) {
      send(toApiError(e).toJSON());
    } finally {
      if (open) {
        open = false;
        try {
          ctrl.close();
        } catch { /* cancelled meanwhile */ }
      }
    }
  })();
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
    },
  });
}
