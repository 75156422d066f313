/**
 * Reading a request's JSON body under a size cap: the declared
 * `Content-Length` is checked before anything is read, and the bytes are
 * counted as they arrive (a chunked body has no length), so an oversized
 * body is refused with 413 without being held in memory.
 *
 * @module
 */
import { ApiError } from "./api_error.ts";

/** The default cap of a request body: 1 MB. */
export const DEFAULT_MAX_BODY_BYTES = 1_000_000;

/**
 * Reads `req`'s body as a JSON object of at most `maxBytes` bytes.
 *
 * @throws {ApiError} 413 when the body is larger, 400 when it is not JSON
 * or not an object.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJsonBody } from "./body.ts";
 * const req = (body: string) => new Request("http://x/", { method: "POST", body });
 * assert.deepEqual(await readJsonBody(req('{"a":1}'), 100), { a: 1 });
 * await assert.rejects(readJsonBody(req("{"), 100), /could not parse the JSON body/);
 * await assert.rejects(readJsonBody(req("x".repeat(101)), 100), /larger than 100 bytes/);
 * ```
 */
export async function readJsonBody(
  req: Request,
  maxBytes: number = DEFAULT_MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const tooLarge = () =>
    new ApiError(
      413,
      `the request body is larger than ${maxBytes} bytes (serve --max-body-bytes sets the cap)`,
      { code: "request_too_large" },
    );
  const declared = Number(req.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.byteLength;
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ApiError(
      400,
      `We could not parse the JSON body of your request: ${
        (e as Error).message
      }`,
      { code: "invalid_json" },
    );
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ApiError(400, "the request body must be a JSON object", {
      code: "invalid_json",
    });
  }
  return v as Record<string, unknown>;
}
