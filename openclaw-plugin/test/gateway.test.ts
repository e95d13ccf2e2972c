// The built plugin inside a real OpenClaw gateway (openclaw@2026.9.6 on Node 24), driving the real Api.Front:
// linked install, config set, `plugins inspect --runtime --json` (loaded, five tools, no diagnostics), then every
// tool through the gateway's POST /tools/invoke. .ci/run installs OpenClaw and sets OPENCLAW_CLI / OPENCLAW_NODE.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { deadUrl } from "./fakeHosts.js";
import { freePort, frontDll, startFront, type RunningFront } from "./front.js";

const run = promisify(execFile);
const cli = process.env.OPENCLAW_CLI;
const node = process.env.OPENCLAW_NODE;
const pluginDir = resolve(import.meta.dirname, "..");
const built = existsSync(join(pluginDir, "dist", "index.js"));
const ready = Boolean(cli && node && existsSync(cli) && existsSync(node) && frontDll && built);
const why = !cli || !node ? "OPENCLAW_CLI and OPENCLAW_NODE are not set (.ci/run sets them)" : !frontDll ? "Api.Front is not built" : "the plugin is not built (npm run build)";

describe.skipIf(!ready)(`in a real OpenClaw gateway${ready ? "" : ` (skipped: ${why})`}`, () => {
  let home: string;
  let front: RunningFront;
  let gateway: ChildProcess | undefined;
  let gatewayUrl: string;
  let gatewayLog = "";
  // OpenClaw runs as a user would run it: without vitest's variables (NODE_ENV=test, VITEST*), which it reads as
  // its own test mode and then prints nothing.
  const env = () => ({
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST") && k !== "NODE_ENV" && k !== "NODE_OPTIONS")),
    HOME: home,
    PATH: `${dirname(node!)}:${process.env.PATH}`,
  });
  const openclaw = (...args: string[]) => run(node!, [cli!, ...args], { env: env(), cwd: pluginDir, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 });

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "openclaw-home-"));
    front = await startFront("gateway-key");
    await openclaw("plugins", "install", "--link", pluginDir, "--force", "--accept-capabilities");
    const hosts = [
      { name: "dead", url: await deadUrl() },
      { name: "live", url: front.url, apiKey: "gateway-key" },
    ];
    await openclaw("config", "set", "plugins.entries.openclaw-orleansgpu.config.hosts", JSON.stringify(hosts));
    await openclaw("config", "set", "plugins.entries.openclaw-orleansgpu.config.timeout", "120");
  }, 300_000);

  afterAll(async () => {
    gateway?.kill("SIGKILL");
    await front?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it("plugins inspect shows the plugin loaded with its five tools and no diagnostics", async () => {
    // The CLI exits right after writing its report; a file, unlike a pipe, keeps all of it.
    const file = join(home, "inspect.json");
    const fd = openSync(file, "w");
    const child = spawn(node!, [cli!, "plugins", "inspect", "openclaw-orleansgpu", "--runtime", "--json"], { env: env(), cwd: pluginDir, stdio: ["ignore", fd, "ignore"] });
    const code = await new Promise<number | null>((done) => child.once("exit", done));
    closeSync(fd);
    expect(code).toBe(0);
    const stdout = readFileSync(file, "utf8");
    const report = JSON.parse(stdout.slice(stdout.indexOf("{")));
    expect(report.plugin.status).toBe("loaded");
    expect(report.plugin.toolNames).toEqual(["gpu_health", "gpu_info", "gpu_status", "gpu_bertscore", "gpu_embed"]);
    expect(report.diagnostics).toEqual([]);
  }, 180_000);

  it("the gateway serves every tool through POST /tools/invoke against the real front", async () => {
    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    gateway = spawn(node!, [cli!, "gateway", "run", "--allow-unconfigured", "--auth", "none", "--bind", "loopback", "--port", String(port)], {
      env: env(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    gateway.stdout?.on("data", (d) => (gatewayLog += d));
    gateway.stderr?.on("data", (d) => (gatewayLog += d));

    const invoke = async (name: string, args: Record<string, unknown>) => {
      const response = await fetch(`${gatewayUrl}/tools/invoke`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name, args }),
      });
      return { status: response.status, body: (await response.json()) as { ok: boolean; result?: { content: Array<{ text: string }>; details: Record<string, unknown> } } };
    };

    const deadline = Date.now() + 120_000;
    for (;;) {
      if (gateway.exitCode !== null) throw new Error(`gateway exited:\n${gatewayLog}`);
      try {
        const probe = await invoke("gpu_health", {});
        if (probe.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`gateway did not serve /tools/invoke:\n${gatewayLog}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    const health = await invoke("gpu_health", {});
    expect(health.body.ok).toBe(true);
    expect(health.body.result?.content[0].text).toContain("1/2 GPU host(s) up");

    const info = await invoke("gpu_info", {});
    expect(info.body.result?.content[0].text).toContain("all-MiniLM-L6-v2");

    const status = await invoke("gpu_status", {});
    expect(status.body.result?.content[0].text).toMatch(/live: \d+ running/);

    const embed = await invoke("gpu_embed", { texts: ["The weather is lovely today.", "It's so sunny outside!"] });
    expect(embed.body.ok).toBe(true);
    expect(embed.body.result?.content[0].text).toContain("384 dimensions");
    const vectors = (embed.body.result?.details.embeddings as { embeddings: number[][] }).embeddings;
    const cosine = vectors[0].reduce((s, v, d) => s + v * vectors[1][d], 0);
    expect(cosine).toBeCloseTo(0.666, 2); // the published sentence-transformers similarity

    // 500 texts in one tool call: more than the 100 the plugin once capped a call at. The front takes them whole or
    // refuses them for size and the plugin splits them; either way every vector is sentence-transformers', in order.
    const oracle = JSON.parse(readFileSync(resolve(pluginDir, "..", "..", "shared", "oracles", "embed-public.json"), "utf8"));
    const many = Array.from({ length: 500 }, (_, i) => oracle.texts[i % oracle.texts.length] as string);
    const big = await invoke("gpu_embed", { texts: many });
    expect(big.body.ok).toBe(true);
    expect(big.body.result?.content[0].text).toContain("Embedded 500 text(s)");
    const bigVectors = (big.body.result?.details.embeddings as { embeddings: number[][] }).embeddings;
    expect(bigVectors).toHaveLength(500);
    let worst = 0;
    bigVectors.forEach((row, i) => row.forEach((v, d) => (worst = Math.max(worst, Math.abs(v - oracle.embeddings[i % oracle.texts.length][d])))));
    expect(worst).toBeLessThanOrEqual(1e-5);

    const score = await invoke("gpu_bertscore", { candidates: ["The cat sat on the mat."], references: ["The cat sat on the mat."], model_type: "all-MiniLM-L6-v2" });
    expect(score.body.ok).toBe(true);
    expect((score.body.result?.details.bertscore as { f1: number[] }).f1[0]).toBeCloseTo(1, 5);
  }, 240_000);
});
