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

/** A made-up embedding that depends on the text alone, so that split and unsplit calls can be compared. */
export function vectorOf(text: string): number[] {
  let hash = 0x811c9dc5;
  for (const ch of text) hash = Math.imul(hash ^ ch.codePointAt(0)!, 0x01000193) >>> 0;
  return [hash / 2 ** 32, text.length];
}

/** A made-up score of one candidate against its references: it changes if a reference moves to another candidate. */
export function scoreOf(candidate: string, references: string | string[]): number {
  return vectorOf(`${candidate}|${([] as string[]).concat(references).join("|")}`)[0];
}

interface ComputeBody {
  texts?: string[];
  candidates?: string[];
  references?: Array<string | string[]>;
}

/** Inputs in an /embed or /bertscore body, counted as the front counts them: candidates and references together. */
export function inputsOf(body: ComputeBody): number {
  return (body.texts?.length ?? 0) + (body.candidates?.length ?? 0) + (body.references ?? []).reduce((n, r) => n + (Array.isArray(r) ? r.length : 1), 0);
}

/** How a host says no to a request over its limit. */
export type Refusal = (res: ServerResponse, inputs: number, max: number) => void;

/** The front's answer: a 400 problem details that names the limit. */
export const frontRefusal: Refusal = (res, inputs, max) =>
  json(res, 400, {
    type: "https://httpstatuses.io/400",
    title: "Bad Request",
    status: 400,
    detail: `The request holds ${inputs} texts; at most ${max} are allowed per request (GPU_MAX_BATCH_SIZE).`,
    code: "invalid_input",
  }, { "Content-Type": "application/problem+json" });

/** A 400 that gives only a code, no limit. */
export const codeRefusal: Refusal = (res) => json(res, 400, { detail: "Request rejected.", code: "too_many_inputs" });

/** FastAPI's validation error for a list over pydantic's max_length: a 422 with a list of messages. */
export const fastApiRefusal: Refusal = (res, inputs, max) =>
  json(res, 422, { detail: [{ type: "too_long", loc: ["body", "texts"], msg: `List should have at most ${max} items after validation, not ${inputs}`, input: [] }] });

/** A seed behind a proxy: 413 with a body that is not JSON. */
export const seedRefusal: Refusal = (res) => {
  res.writeHead(413, { "Content-Type": "text/html" });
  res.end("<html><body><h1>413 Request Entity Too Large</h1></body></html>");
};

/**
 * A GPU service that refuses a compute request over `maxInputs` inputs in the given way, and otherwise answers with
 * vectorOf / scoreOf, so that results can be checked against each text and pair. A /bertscore body whose lists do
 * not pair up is refused.
 */
export function cappedService(name: string, maxInputs: number, refuse: Refusal): Handler {
  const plain = gpuService(name);
  return (req, res) => {
    if (req.path !== "/embed" && req.path !== "/bertscore") return plain(req, res);
    const body = req.body as ComputeBody;
    const inputs = inputsOf(body);
    if (inputs > maxInputs) return refuse(res, inputs, maxInputs);
    if (req.path === "/embed") {
      return json(res, 200, { embeddings: body.texts!.map(vectorOf), model: "all-MiniLM-L6-v2", dimensions: 2 });
    }
    const { candidates = [], references = [] } = body;
    if (candidates.length !== references.length) return json(res, 400, { detail: "candidates and references differ in length" });
    const scores = candidates.map((c, i) => scoreOf(c, references[i]));
    return json(res, 200, { precision: scores, recall: scores, f1: scores, model: "m", num_layers: 4, hash: "h" });
  };
}
