#!/usr/bin/env python3
"""The table of tools/bench/cpu-ceiling.sh: service / raw ONNX Runtime per round, and where the front's CPU went.

    cpu-ceiling-report.py OUT_DIR ROUNDS CLK_TCK
"""
import json
import re
import statistics
import sys

out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def threads(path):
    rows = {}
    for line in open(path):
        tid, name, ticks = line.rstrip("\n").split("|")
        rows[tid] = (name, int(ticks))
    return rows


def group(name):
    if name.startswith("encoder-batch"):
        return "batcher workers (forward passes)"
    if name.startswith(".NET TP") or name.startswith(".NET ThreadPool") or name.startswith(".NET Long"):
        return "thread pool (HTTP, JSON, Orleans, tokenization)"
    if "GC" in name:
        return "GC"
    if name.startswith(".NET Tiered") or "JIT" in name:
        return "JIT"
    return "other (" + name + ")"


def metrics(path):
    values = {}
    for line in open(path):
        if not line.startswith("orleansgpu_inference_") or 'task="embed"' not in line:
            continue
        match = re.match(r'^(\w+)\{[^}]*\}\s+(\S+)', line)
        if match and not match.group(1).endswith("_bucket"):
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(2))
    return values


print("| round | raw 32×32 tokens/s | raw oracle ×32 tokens/s | raw oracle sorted ×32 tokens/s | service tokens/s | "
      "service / raw 32×32 | service / raw oracle sorted | p50 ms | raw 32×32 CPU µs/token | service CPU µs/token (front + client) | CPU efficiency, service / raw 32×32 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ratios, groups_total, seconds_total, client_total, engine, per_thread = [], {}, 0.0, 0.0, {}, {}
for r in range(1, rounds + 1):
    shapes = {s["workload"]: s for s in json.load(open(f"{out}/raw-{r}.json"))["shapes"]}
    raw = {k: v["useful_tokens_per_s"] for k, v in shapes.items()}
    service = json.load(open(f"{out}/service-{r}.json"))
    useful = service["useful_tokens_per_s"]

    before, after = threads(f"{out}/threads-before-{r}.txt"), threads(f"{out}/threads-after-{r}.txt")
    front_cpu = 0.0
    for tid, (name, ticks) in after.items():
        spent = (ticks - before.get(tid, (name, 0))[1]) / hz
        front_cpu += spent
        per_thread[(tid, name)] = per_thread.get((tid, name), 0.0) + spent
        groups_total[group(name)] = groups_total.get(group(name), 0) + spent
    seconds_total += service["seconds"]
    user, system = (float(v) for v in open(f"{out}/client-cpu-{r}.txt").read().split()[-2:])
    client_total += user + system

    # CPU per useful token compares the two on a shared machine, where wall time mostly measures the neighbours.
    raw_us = shapes["32x32"]["cpu_us_per_useful_token"]
    service_us = (front_cpu + user + system) * 1e6 / (useful * service["seconds"])
    ratios.append((useful / raw["32x32"], useful / raw["32xoracle-sorted"], raw_us / service_us))
    print(f"| {r} | {raw['32x32']:.0f} | {raw['32xoracle']:.0f} | {raw['32xoracle-sorted']:.0f} | {useful:.0f} | "
          f"{ratios[-1][0]:.2f} | {ratios[-1][1]:.2f} | {service['latency_ms']['p50']:.0f} | {raw_us:.0f} | {service_us:.0f} | {ratios[-1][2]:.2f} |")
    m0, m1 = metrics(f"{out}/metrics-before-{r}.txt"), metrics(f"{out}/metrics-after-{r}.txt")
    for key in m1:
        engine[key] = engine.get(key, 0.0) + m1[key] - m0.get(key, 0.0)

print()
print(f"median service / raw 32×32: {statistics.median(r[0] for r in ratios):.2f}; "
      f"service / raw oracle sorted: {statistics.median(r[1] for r in ratios):.2f}; "
      f"CPU efficiency, service / raw 32×32: {statistics.median(r[2] for r in ratios):.2f}")
print()
front_total = sum(groups_total.values())
print(f"Where the CPU went during the service runs ({seconds_total:.1f} s of wall time, "
      f"{(front_total + client_total) / seconds_total:.2f} cores busy on average):")
print()
print("| where | CPU s | share |")
print("|---|---|---|")
small = sum(v for k, v in groups_total.items() if k.startswith("other") and v < 0.01 * front_total)
for name, spent in sorted(groups_total.items(), key=lambda kv: -kv[1]):
    if not (name.startswith("other") and spent < 0.01 * front_total):
        print(f"| front: {name} | {spent:.1f} | {spent / (front_total + client_total):.0%} |")
print(f"| front: other threads (each under 1%) | {small:.1f} | {small / (front_total + client_total):.0%} |")
print(f"| client (Bench: HTTP, JSON) | {client_total:.1f} | {client_total / (front_total + client_total):.0%} |")
print()

# ONNX Runtime's own pool threads carry the name of the thread that opened the session (often a thread-pool worker):
# a single "thread-pool" thread that works as hard as a batcher worker is one of them.
print("Busiest threads of the front: " + "; ".join(
    f"{name} #{tid} {spent:.1f} s" for (tid, name), spent in sorted(per_thread.items(), key=lambda kv: -kv[1])[:5]) + ".")
print()


def total(prefix, suffix):
    return engine.get(f"orleansgpu_inference_{prefix}_{suffix}", 0.0)


passes = total("forward_seconds", "count")
if passes:
    tokens, padded = total("tokens", "total"), total("padded_tokens", "total")
    print(f"Engine: {passes:.0f} forward passes, {total('batch_size', 'sum') / passes:.1f} texts each, "
          f"{total('forward_seconds', 'sum'):.1f} s in passes (wall, summed over workers), "
          f"{total('tokenize_seconds', 'sum'):.2f} s tokenizing, "
          f"padding {1 - tokens / padded:.1%} of token slots, "
          f"mean queue wait {total('queue_seconds', 'sum') / max(1, total('queue_seconds', 'count')) * 1000:.0f} ms.")
