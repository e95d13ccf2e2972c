import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 180_000,
    // The gateway and end-to-end tests start real processes; run files one after another on a 2-core machine.
    fileParallelism: false,
  },
});
