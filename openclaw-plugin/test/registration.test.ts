import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { TOOL_NAMES } from "../src/tools.js";
import { fakeHost, gpuService } from "./fakeHosts.js";
import { registerWith } from "./mockApi.js";

const manifest = JSON.parse(readFileSync(new URL("../openclaw.plugin.json", import.meta.url), "utf8"));

describe("register(api)", () => {
  it("registers the five tools synchronously, each with label, description, JSON-Schema parameters and execute", () => {
    const { tools, returned, api } = registerWith({ hosts: [{ url: "http://127.0.0.1:1" }] });
    expect(returned).toBeUndefined();
    expect(tools.map((t) => t.name)).toEqual([...TOOL_NAMES]);
    expect(tools.map((t) => t.name)).toEqual(manifest.contracts.tools);
    for (const tool of tools) {
      expect(tool.label.length).toBeGreaterThan(0);
      expect(tool.description.length).toBeGreaterThan(10);
      expect(tool.parameters).toMatchObject({ type: "object" });
      expect(typeof tool.execute).toBe("function");
    }
    expect(api.registerTool.mock.calls.map((c) => (c[1] as { name: string }).name)).toEqual([...TOOL_NAMES]);
  });

  it.each([undefined, null, {}, { hosts: "nope" }, { hosts: [{ name: "x" }] }, { serviceUrl: "ftp://x" }, 42])(
    "never throws on missing or broken config (%j) and the tools say it is not configured",
    async (config) => {
      const { tools, services, tool } = registerWith(config);
      expect(tools).toHaveLength(5);
      expect(services).toHaveLength(0);
      const result = await tool("gpu_embed").execute("call-1", { texts: ["a"] });
      expect(result.isError).toBe(true);
      expect(result.content[0].text).toContain("not configured");
      expect(result.details).toEqual({ failure: { kind: "not_configured" } });
    },
  );

  it("starts no timer in register; registers the health service only in full mode", () => {
    const config = { hosts: [{ url: "http://127.0.0.1:1" }], healthCheckIntervalSeconds: 30 };
    expect(registerWith(config, "full").services.map((s) => s.id)).toEqual(["openclaw-orleansgpu-health"]);
    expect(registerWith(config, "discovery").services).toHaveLength(0);
    expect(registerWith(config, "tool-discovery").services).toHaveLength(0);
    expect(registerWith({ ...config, healthCheckIntervalSeconds: 0 }, "full").services).toHaveLength(0);
  });

  it("the health service polls /health when started and stops polling when stopped", async () => {
    const host = await fakeHost(gpuService("h"));
    try {
      const { services } = registerWith({ hosts: [{ url: host.url }], healthCheckIntervalSeconds: 0.2 }, "full");
      await services[0].start();
      await new Promise((r) => setTimeout(r, 500));
      await services[0].stop?.();
      const polls = host.received.filter((r) => r.path === "/health").length;
      expect(polls).toBeGreaterThanOrEqual(2);
      await new Promise((r) => setTimeout(r, 500));
      expect(host.received.filter((r) => r.path === "/health").length).toBe(polls);
    } finally {
      await host.close();
    }
  });
});

describe("manifest and package", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

  it("uses the unscoped package name as id, an ESM package and the built entry", () => {
    expect(manifest.id).toBe(pkg.name.replace(/^@[^/]+\//, ""));
    expect(pkg.type).toBe("module");
    expect(pkg.openclaw.extensions).toEqual(["./dist/index.js"]);
    expect(pkg.files).toEqual(expect.arrayContaining(["dist", "openclaw.plugin.json"]));
    expect(manifest.activation).toEqual({ onStartup: true });
  });

  it("has a strict config schema without top-level required, covering every key the code reads", () => {
    const schema = manifest.configSchema;
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toBeUndefined();
    expect(Object.keys(schema.properties).sort()).toEqual(
      ["apiKey", "healthCheckIntervalSeconds", "hosts", "limits", "loadBalancing", "models", "serviceUrl", "timeout", "url"].sort(),
    );
    expect(Object.keys(schema.properties.hosts.items.properties).sort()).toEqual(["apiKey", "name", "url"]);
    expect(schema.properties.apiKey.type).toEqual(["string", "object"]);
    expect(schema.properties.loadBalancing.enum).toEqual(["round-robin", "least-busy"]);
  });

  it("marks keys sensitive and declares them as secret inputs", () => {
    expect(manifest.uiHints.apiKey.sensitive).toBe(true);
    expect(manifest.configContracts.secretInputs.paths.map((p: { path: string }) => p.path)).toEqual(["apiKey", "hosts.*.apiKey"]);
  });

  it("declares exactly the tools that register() registers", () => {
    expect(manifest.contracts.tools).toEqual([...TOOL_NAMES]);
  });
});
