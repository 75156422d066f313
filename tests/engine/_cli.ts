/**
 * Runs `cli.ts` in this process for subprocess tests (with the naive matmul
 * fallback of _naive_matmul.ts while lib/gpu/_matmul.ts is a stub).
 *
 * @module
 */
import { installMatmulFallback } from "./_naive_matmul.ts";
import { main } from "../../cli.ts";

installMatmulFallback();
Deno.exit(await main(Deno.args));
