// A front restarted under load, as a deploy restarts it (SIGTERM, then a new process at the same address): two real
// fronts in client mode share a real silo, both in the plugin's host pool, and 16 tool calls run at once the whole
// time. The stopping front answers what it holds and refuses new connections; the pool fails over to the other
// front and comes back to the restarted one. No tool call fails, and no answer is a 5xx.

import { afterAll, expect, it, vi } from "vitest";
import { frontDll, siloDll, startFront, startSilo, type RunningFront, type RunningSilo } from "./front.js";
import { registerWith } from "./mockApi.js";

const KEY = "rolling-key";
const CLIENTS = 16;

const processes: Array<{ stop(): Promise<void> }> = [];
afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all(processes.map((p) => p.stop()));
});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it.skipIf(!frontDll || !siloDll)(
  `restarting one of two fronts under ${CLIENTS} concurrent tool calls fails none${frontDll && siloDll ? "" : " (skipped: Api.Front and Silo.Gpu are not built; run dotnet build first)"}`,
  async () => {
    const silo: RunningSilo = await startSilo("gpu-rolling");
    processes.push(silo);
    const client = { Cluster__Mode: "client", Cluster__Gateways: String(silo.gateway) };
    const [first, other] = await Promise.all([startFront(KEY, client), startFront(KEY, client)]);
    let a: RunningFront = first;
    processes.push({ stop: () => a.stop() }, other);

    const { tool, services } = registerWith(
      { hosts: [{ name: "a", url: a.url }, { name: "b", url: other.url }], apiKey: KEY, timeout: 60, healthCheckIntervalSeconds: 1 },
      "full",
    );
    for (const service of services) await service.start();

    // Every answer the pool's compute calls get, and every connection that failed.
    const answers: Array<{ url: string; status: number }> = [];
    const connectionErrors: string[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const url = String(input);
      try {
        const response = await realFetch(input, init);
        if (init?.method === "POST") answers.push({ url, status: response.status });
        return response;
      } catch (error) {
        connectionErrors.push(`${url}: ${String((error as { cause?: unknown }).cause ?? error)}`);
        throw error;
      }
    });

    const calls: Array<{ host: string; started: number; ended: number }> = [];
    const failures: string[] = [];
    let running = true;
    const workers = Array.from({ length: CLIENTS }, async (_, worker) => {
      for (let i = 0; running; i++) {
        const started = Date.now();
        const result = await tool("gpu_embed").execute(`w${worker}-${i}`, { texts: [`worker ${worker} call ${i}`, "a second text"] });
        if (result.isError) failures.push(result.content[0].text);
        else calls.push({ host: result.details.host as string, started, ended: Date.now() });
      }
    });

    await waitFor(() => calls.filter((c) => c.host === "a").length >= 30, "front a to serve 30 calls");
    const terminatedAt = Date.now();
    const code = await a.terminate();
    const exitedAt = Date.now();
    expect(code).toBe(0);
    a = await startFront(KEY, client, a.port);
    const restartedAt = Date.now();
    await waitFor(() => calls.some((c) => c.host === "a" && c.started > restartedAt), "the pool to use the restarted front a");
    await waitFor(() => calls.length >= 40 + calls.filter((c) => c.started < restartedAt).length, "40 more calls");
    running = false;
    await Promise.all(workers);

    expect(failures).toEqual([]);
    // Calls front a held when it was told to stop were answered by it.
    expect(calls.filter((c) => c.host === "a" && c.started < terminatedAt && c.ended > terminatedAt).length).toBeGreaterThan(0);
    // While it was down, front b served.
    expect(calls.some((c) => c.host === "b" && c.started > terminatedAt && c.ended < restartedAt)).toBe(true);
    expect(answers.filter((r) => r.status >= 500)).toEqual([]);
    console.log(
      `${calls.length} tool calls, none failed; front a exited ${exitedAt - terminatedAt} ms after SIGTERM and was back ${restartedAt - exitedAt} ms later; ` +
        `${connectionErrors.length} connections failed over (${[...new Set(connectionErrors.map((e) => e.replace(/^[^:]+:\/\/[^/]+\S*: /, "")))].join("; ")})`,
    );
  },
  400_000,
);
