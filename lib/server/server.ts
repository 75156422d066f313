/**
 * Starting and stopping the HTTP server: `Deno.serve` with the handler of
 * {@linkcode createHandler} and a {@linkcode Scheduler} that owns the model.
 *
 * @module
 */
import { createHandler, type HandlerOptions } from "./handler.ts";
import { Scheduler } from "./scheduler.ts";

/** Options of {@linkcode startServer}. */
export interface StartServerOptions extends Omit<HandlerOptions, "scheduler"> {
  /** Address to bind (default 127.0.0.1: this machine only). */
  hostname?: string;
  /** Port (default 8080; 0 = any free port). */
  port?: number;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port` it listens on. */
  readonly url: string;
  /** The bound address. */
  readonly hostname: string;
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** The generation queue. */
  readonly scheduler: Scheduler;
  /** Cancels every generation, stops listening and waits for open responses. */
  shutdown(): Promise<void>;
  /** Settles when the server has stopped. */
  readonly finished: Promise<void>;
}

/**
 * Serves `opts.model` over HTTP until {@linkcode RunningServer.shutdown}.
 * The model stays the caller's to dispose (after shutdown).
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./server.ts";
 * const server = await startServer({
 *   model, modelId: "tiny", chatTemplate: model.tokenizer?.chatTemplate ?? null, port: 0,
 * });
 * console.log(server.url); // http://127.0.0.1:<port>
 * await server.shutdown();
 * await model.dispose();
 * ```
 */
export async function startServer(
  opts: StartServerOptions,
): Promise<RunningServer> {
  const scheduler = new Scheduler(opts.model);
  const handler = createHandler({ ...opts, scheduler });
  const hostname = opts.hostname ?? "127.0.0.1";
  const { promise: listening, resolve } = Promise.withResolvers<
    Deno.NetAddr
  >();
  const server = Deno.serve({
    hostname,
    port: opts.port ?? 8080,
    onListen: (addr) => resolve(addr as Deno.NetAddr),
    // a client that goes away mid-answer is not an error of the server
    onError: (e) => toResponse(e),
  }, handler);
  const addr = await listening;
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  let stopping: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    hostname: addr.hostname,
    port: addr.port,
    scheduler,
    shutdown() {
      stopping ??= (async () => {
        await scheduler.close();
        await server.shutdown();
      })();
      return stopping;
    },
    finished: server.finished,
  };
}

function toResponse(e: unknown): Response {
  return Response.json({
    error: {
      message: `internal error: ${(e as Error)?.message ?? String(e)}`,
      type: "server_error",
      param: null,
      code: null,
    },
  }, { status: 500 });
}
