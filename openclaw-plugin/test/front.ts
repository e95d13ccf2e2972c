// Starts the real Api.Front (the .NET build output) on a free loopback port, for the end-to-end tests.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..", "..");
export const frontDll = ["Debug", "Release"].map((c) => join(repo, "Api.Front", "bin", c, "net10.0", "Api.Front.dll")).find((p) => existsSync(p));

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface RunningFront {
  url: string;
  stop(): Promise<void>;
}

/** Starts the front (co-hosting its silo, CPU, MiniLM for both tools) with any extra settings, and waits for /health. */
export async function startFront(apiKey?: string, settings: Record<string, string> = {}): Promise<RunningFront> {
  if (!frontDll) throw new Error("Api.Front is not built: run `dotnet build` at the repository root first.");
  const port = await freePort();
  const silo = await freePort();
  const gateway = await freePort();
  const child: ChildProcess = spawn("dotnet", [frontDll], {
    env: {
      ...process.env,
      ASPNETCORE_URLS: `http://127.0.0.1:${port}`,
      Cluster__SiloPort: String(silo),
      Cluster__PrimarySiloPort: String(silo),
      Cluster__GatewayPort: String(gateway),
      MODELS_DIR: process.env.ORLEANSGPU_TEST_MODELS ?? join(tmpdir(), "orleansgpu-test-models"),
      TORCH_DEVICE: "cpu",
      MODEL_BERTSCORE: "all-MiniLM-L6-v2",
      ...(apiKey ? { API_KEY: apiKey } : {}),
      Logging__LogLevel__Default: "Warning",
      ...settings,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Api.Front exited with ${child.exitCode}:\n${output}`);
    try {
      const response = await fetch(`${url}/health`);
      if (response.ok) {
        return {
          url,
          stop: () =>
            new Promise((done) => {
              child.once("exit", () => done());
              child.kill("SIGKILL");
            }),
        };
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill("SIGKILL");
  throw new Error(`Api.Front did not become healthy:\n${output}`);
}
