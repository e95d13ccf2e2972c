// Real node:http servers on loopback that play GPU hosts, with scripted answers and a log of what they received.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

export type Handler = (request: Received, response: ServerResponse) => void | Promise<void>;

export interface FakeHost {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

export async function fakeHost(handler: Handler): Promise<FakeHost> {
  const received: Received[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const request: Received = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body: raw ? JSON.parse(raw) : undefined };
    received.push(request);
    try {
      await handler(request, res);
    } catch {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A URL where nothing listens: a port that was just free. */
export async function deadUrl(): Promise<string> {
  const host = await fakeHost(() => {});
  await host.close();
  return host.url;
}

/** A plain GPU service: health, info, status (with the given load), embed (2 dims) and bertscore. */
export function gpuService(name: string, load = 0): Handler {
  return (req, res) => {
    switch (req.path) {
      case "/health":
        return json(res, 200, { status: "ok", device: "cuda" });
      case "/info":
        return json(res, 200, { device: "cuda", device_name: `GPU of ${name}`, loaded_models: ["all-MiniLM-L6-v2"] });
      case "/status":
        return json(res, 200, { queue: { max_concurrent: 2, in_flight: load, available_slots: 2, waiting_estimate: 0 }, active_jobs: [] });
      case "/embed": {
        const texts = (req.body as { texts: string[] }).texts;
        return json(res, 200, { embeddings: texts.map((_, i) => [i, 1]), model: "all-MiniLM-L6-v2", dimensions: 2 }, { "X-Host": name });
      }
      case "/bertscore": {
        const n = (req.body as { candidates: string[] }).candidates.length;
        return json(res, 200, { precision: Array(n).fill(0.9), recall: Array(n).fill(0.8), f1: Array(n).fill(0.85), model: "m", hash: "h" });
      }
      default:
        return json(res, 404, { detail: "no such route" });
    }
  };
}
