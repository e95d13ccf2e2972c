import { vi } from "vitest";
import plugin from "../src/index.js";
import type { Tool } from "../src/tools.js";

/** A hand-written OpenClaw api: records the tools and services that register() hands it. */
export function registerWith(pluginConfig: unknown, registrationMode = "full") {
  const tools: Tool[] = [];
  const services: Array<{ id: string; start(): void | Promise<void>; stop?(): void | Promise<void> }> = [];
  const api = {
    id: "openclaw-orleansgpu",
    name: "OrleansGpu",
    config: {},
    pluginConfig,
    registrationMode,
    logger: { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() },
    registerTool: vi.fn((tool: Tool) => tools.push(tool)),
    registerService: vi.fn((service: (typeof services)[number]) => services.push(service)),
  };
  const returned = plugin.register(api as never);
  const tool = (name: string) => {
    const found = tools.find((t) => t.name === name);
    if (!found) throw new Error(`tool ${name} not registered`);
    return found;
  };
  return { api, tools, services, returned, tool };
}
