// OpenClaw plugin entry: registers the five GPU tools, and (in full registration mode only) a service that polls
// host health. register() is synchronous and never throws: without configuration the tools explain what to set.

import { readConfig } from "./config.js";
import { HostPool } from "./client.js";
import { createTools } from "./tools.js";

export const PLUGIN_ID = "openclaw-orleansgpu";

interface PluginLogger {
  debug?(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface PluginApi {
  pluginConfig?: Record<string, unknown> | null;
  registrationMode?: string;
  logger?: PluginLogger;
  registerTool(tool: unknown, options?: { name?: string }): void;
  registerService?(service: { id: string; start(ctx?: unknown): void | Promise<void>; stop?(ctx?: unknown): void | Promise<void> }): void;
}

function register(api: PluginApi): void {
  const config = readConfig(api.pluginConfig ?? {}, process.env);
  const pool = config.ok ? new HostPool(config.config) : undefined;
  if (!config.ok) {
    api.logger?.warn(`${PLUGIN_ID}: ${config.reason}`);
  }

  for (const tool of createTools(config, pool)) {
    api.registerTool(tool, { name: tool.name });
  }

  const interval = config.ok ? config.config.healthCheckIntervalSeconds : 0;
  if (pool && interval > 0 && api.registrationMode === "full" && api.registerService) {
    let timer: ReturnType<typeof setInterval> | undefined;
    api.registerService({
      id: `${PLUGIN_ID}-health`,
      start() {
        const poll = () =>
          pool.checkAll().catch((error: unknown) => api.logger?.warn(`${PLUGIN_ID}: health check failed: ${String(error)}`));
        void poll();
        timer = setInterval(poll, interval * 1000);
        timer.unref?.();
      },
      stop() {
        if (timer) {
          clearInterval(timer);
          timer = undefined;
        }
      },
    });
  }
}

export default {
  id: PLUGIN_ID,
  name: "OrleansGpu",
  description: "Sentence embeddings and BERTScore on a cluster of GPU hosts, with failover.",
  register,
};
