// Starts the real Api.Front (the .NET build output) on a free loopback port, for the end-to-end tests.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..", "..");
const built = (project: string) => ["Debug", "Release"].map((c) => join(repo, project, "bin", c, "net10.0", `${project}.dll`)).find((p) => existsSync(p));
export const frontDll = built("Api.Front");
export const siloDll = built("Silo.Gpu");
const modelsDir = process.env.ORLEANSGPU_TEST_MODELS ?? join(tmpdir(), "orleansgpu-test-models");

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
  port: number;
  output(): string;
  /** SIGKILL: gone at once. */
  stop(): Promise<void>;
  /** SIGTERM, as a restart or `docker stop` sends it; resolves with the exit code once the process has ended. */
  terminate(): Promise<number | null>;
}

/**
 * Starts the front (co-hosting its silo, CPU, MiniLM for both tools) with any extra settings, and waits for /health;
 * on `port` when given (a restart at the same address).
 */
export async function startFront(apiKey?: string, settings: Record<string, string> = {}, port?: number): Promise<RunningFront> {
  if (!frontDll) throw new Error("Api.Front is not built: run `dotnet build` at the repository root first.");
  const listen = port ?? (await freePort());
  const silo = await freePort();
  const gateway = await freePort();
  const child = spawnDotnet(frontDll, {
    ASPNETCORE_URLS: `http://127.0.0.1:${listen}`,
    Cluster__SiloPort: String(silo),
    Cluster__PrimarySiloPort: String(silo),
    Cluster__GatewayPort: String(gateway),
    ...(apiKey ? { API_KEY: apiKey } : {}),
    ...settings,
  });
  const url = `http://127.0.0.1:${listen}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) throw new Error(`Api.Front exited with ${child.process.exitCode}:\n${child.output()}`);
    try {
      const response = await fetch(`${url}/health`);
      if (response.ok) {
        return { url, port: listen, output: child.output, stop: async () => void (await child.signal("SIGKILL")), terminate: () => child.signal("SIGTERM") };
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await child.signal("SIGKILL");
  throw new Error(`Api.Front did not become healthy:\n${child.output()}`);
}

export interface RunningSilo {
  /** The gateway port fronts in client mode connect to (Cluster__Gateways). */
  gateway: number;
  stop(): Promise<void>;
}

/** Starts a GPU silo (Silo.Gpu, localhost clustering, CPU, MiniLM for both tools) and waits until its models are ready. */
export async function startSilo(hostName: string): Promise<RunningSilo> {
  if (!siloDll) throw new Error("Silo.Gpu is not built: run `dotnet build` at the repository root first.");
  const port = await freePort();
  const gateway = await freePort();
  const child = spawnDotnet(siloDll, {
    GPU_HOST_NAME: hostName,
    Cluster__SiloPort: String(port),
    Cluster__PrimarySiloPort: String(port),
    Cluster__GatewayPort: String(gateway),
    Logging__LogLevel__OrleansGpu: "Information",
  });
  const deadline = Date.now() + 120_000;
  while (!child.output().includes(`GPU host ${hostName} ready`)) {
    if (child.process.exitCode !== null || Date.now() > deadline) {
      await child.signal("SIGKILL");
      throw new Error(`Silo.Gpu did not become ready:\n${child.output()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { gateway, stop: async () => void (await child.signal("SIGKILL")) };
}

function spawnDotnet(dll: string, settings: Record<string, string>) {
  const child: ChildProcess = spawn("dotnet", [dll], {
    env: {
      ...process.env,
      MODELS_DIR: modelsDir,
      TORCH_DEVICE: "cpu",
      MODEL_BERTSCORE: "all-MiniLM-L6-v2",
      Logging__LogLevel__Default: "Warning",
      ...settings,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return {
    process: child,
    output: () => output,
    signal: (signal: NodeJS.Signals) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
