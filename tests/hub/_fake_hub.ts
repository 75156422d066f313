// A fake Hugging Face Hub on 127.0.0.1 (random port) with just the endpoints
// downloadSnapshot uses:
//   GET  /api/models/{org}/{name}/revision/{rev}[?blobs=true] → {id, sha, siblings}
//   HEAD/GET /{org}/{name}/resolve/{rev}/{file}
//     regular files: 200 with ETag (git-sha1-like id) and the bytes
//     LFS files (*.safetensors): 302 to {cdn}/cdn/{sha256} (another port, so
//     another origin) with X-Linked-Etag,
//     X-Linked-Size and X-Repo-Commit, like the real hub
//   GET /cdn/{sha256}: the bytes, honouring "Range: bytes=N-"
// Options: drop the connection midway through the first transfer of a file;
// require a token; list extra (hostile) file names; hide sizes from the listing.
import { createHash } from "node:crypto";

export interface FakeFile {
  name: string;
  data: Uint8Array;
  lfs?: boolean;
}

export interface FakeHubOptions {
  repo: string;
  commit: string;
  files: FakeFile[];
  /** Branch/tag names that resolve to `commit`. */
  refs?: string[];
  /** File names whose first transfer is cut after half the bytes. */
  dropOnce?: string[];
  /** Names listed in `siblings` without content. */
  extraNames?: string[];
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** File names served with half their bytes (and a matching Content-Length). */
  wrongSize?: string[];
  /** Leave sizes/blobIds out of the listing (forces HEAD requests). */
  bareListing?: boolean;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | null;
  authorization: string | null;
}

export const sha256 = (b: Uint8Array): string =>
  createHash("sha256").update(b).digest("hex");
const sha1 = (b: Uint8Array): string =>
  createHash("sha1").update(b).digest("hex");

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  readonly endpoint: string;
  /** A second server (another origin, like the real hub's CDN) for LFS bytes. */
  readonly cdn: string;
  #server: Deno.HttpServer;
  #cdnServer: Deno.HttpServer;
  #opts: FakeHubOptions;
  #dropped = new Set<string>();

  constructor(opts: FakeHubOptions) {
    this.#opts = opts;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
    const addr = this.#server.addr as Deno.NetAddr;
    this.endpoint = `http://127.0.0.1:${addr.port}`;
    this.#cdnServer = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
    this.cdn = `http://127.0.0.1:${
      (this.#cdnServer.addr as Deno.NetAddr).port
    }`;
  }

  async stop(): Promise<void> {
    await this.#server.shutdown();
    await this.#cdnServer.shutdown();
  }

  requestsFor(suffix: string): LoggedRequest[] {
    return this.log.filter((r) => r.path.endsWith(suffix));
  }

  #file(name: string): FakeFile | undefined {
    return this.#opts.files.find((f) => f.name === name);
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    this.log.push({
      method: req.method,
      path,
      range: req.headers.get("range"),
      authorization: req.headers.get("authorization"),
    });
    const o = this.#opts;
    if (
      o.token && !path.startsWith("/cdn/") &&
      req.headers.get("authorization") !== `Bearer ${o.token}`
    ) {
      return new Response("unauthorized", { status: 401 });
    }
    const revs = new Set([o.commit, ...(o.refs ?? ["main"])]);
    const apiPrefix = `/api/models/${o.repo}/revision/`;
    if (path.startsWith(apiPrefix)) {
      const rev = path.slice(apiPrefix.length);
      if (!revs.has(rev)) {
        return Response.json({ error: "Revision not found" }, { status: 404 });
      }
      const blobs = url.searchParams.get("blobs") === "true" && !o.bareListing;
      const siblings = [
        ...o.files.map((f) =>
          blobs
            ? {
              rfilename: f.name,
              size: f.data.length,
              blobId: sha1(f.data),
              ...(f.lfs
                ? {
                  lfs: {
                    sha256: sha256(f.data),
                    size: f.data.length,
                    pointerSize: 134,
                  },
                }
                : {}),
            }
            : { rfilename: f.name }
        ),
        ...(o.extraNames ?? []).map((n) => ({
          rfilename: n,
          size: 1,
          blobId: "0".repeat(40),
        })),
      ];
      return Response.json({ id: o.repo, sha: o.commit, siblings });
    }
    if (path.startsWith("/api/models/")) {
      return Response.json({ error: "Repository not found" }, { status: 404 });
    }
    const resolvePrefix = `/${o.repo}/resolve/`;
    if (path.startsWith(resolvePrefix)) {
      const rest = path.slice(resolvePrefix.length);
      const slash = rest.indexOf("/");
      const rev = rest.slice(0, slash);
      const f = this.#file(rest.slice(slash + 1));
      if (!revs.has(rev) || !f) {
        return new Response("Entry not found", { status: 404 });
      }
      if (f.lfs) {
        return new Response(null, {
          status: 302,
          headers: {
            location: `${this.cdn}/cdn/${sha256(f.data)}`,
            "x-linked-etag": `"${sha256(f.data)}"`,
            "x-linked-size": String(f.data.length),
            "x-repo-commit": o.commit,
            etag: `"${sha1(f.data)}"`,
          },
        });
      }
      return this.#serve(req, f, {
        etag: `"${sha1(f.data)}"`,
        "x-repo-commit": o.commit,
      });
    }
    if (path.startsWith("/cdn/")) {
      const f = o.files.find((x) => sha256(x.data) === path.slice(5));
      if (!f) return new Response("no such blob", { status: 404 });
      return this.#serve(req, f, {});
    }
    return new Response("not found", { status: 404 });
  }

  #serve(req: Request, f: FakeFile, extra: Record<string, string>): Response {
    const total = f.data.length;
    let start = 0;
    let status = 200;
    const headers: Record<string, string> = {
      ...extra,
      "accept-ranges": "bytes",
    };
    const range = req.headers.get("range");
    if (range) {
      const m = /^bytes=(\d+)-$/.exec(range);
      if (!m) return new Response("bad range", { status: 400 });
      start = Number(m[1]);
      if (start >= total) {
        return new Response(null, {
          status: 416,
          headers: { "content-range": `bytes */${total}` },
        });
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${total - 1}/${total}`;
    }
    if (this.#opts.wrongSize?.includes(f.name)) {
      const half = f.data.subarray(0, Math.floor(total / 2));
      return new Response(half.slice(), {
        status: 200,
        headers: { ...extra, "content-length": String(half.length) },
      });
    }
    headers["content-length"] = String(total - start);
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const body = f.data.subarray(start);
    if (this.#opts.dropOnce?.includes(f.name) && !this.#dropped.has(f.name)) {
      this.#dropped.add(f.name);
      const half = body.subarray(0, Math.floor(body.length / 2));
      // Send half, then break the connection (the client sees a short body).
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          c.enqueue(half.slice());
          await new Promise((r) => setTimeout(r, 20));
          c.error(new Error("fake hub: connection dropped"));
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(body.slice(), { status, headers });
  }
}
