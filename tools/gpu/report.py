#!/usr/bin/env python3
"""REPORT.md of a tools/gpu/measure.py run: issue 12's goals (and the GPU halves of issues 11 and 13) beside the
figures, the peers of the same run and the targets, then every HTTP and model-only figure. Reads only RESULTS_DIR;
a figure that is missing (a step skipped or failed) is shown as such, never guessed.

    python3 tools/gpu/report.py RESULTS_DIR > RESULTS_DIR/REPORT.md
"""
import glob
import json
import os
import re
import sys

RES = sys.argv[1]
# bert_score 0.3.13 itself on an H200, deberta-xlarge-mnli, its defaults (../shared/gpu/README.md): issue 12's anchor.
BERT_SCORE_OWN_PAIRS_PER_S = 280


def load(name):
    path = os.path.join(RES, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def rate(name, field="items_per_s"):
    r = load(f"{name}.json")
    return r.get(field) if r and not r.get("failures") else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def peers():
    p = load("peers.json") or {}
    flat = {}
    for group in ("minilm", "bertscore"):
        flat.update(p.get(group, {}))
    return flat, p


def encoder_rate(name, graph_pattern, workload, field="useful_tokens_per_s"):
    r = load(f"{name}.json")
    if not r:
        return None
    for row in r.get("shapes", []):
        if re.search(graph_pattern, row["graph"]) and re.fullmatch(workload, row["workload"]):
            return row[field]
    return None


def metric(text, name):
    total = None
    for line in (text or "").splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total = (total or 0) + float(line.split()[-1])
    return total


def main():
    summary = load("summary.json") or {}
    flat, raw_peers = peers()
    out = []
    w = out.append
    machine = summary.get("machine", {})
    w("# GPU run: issue 12's goals through HTTP, peers in the same run\n")
    w(f"Machine: {machine.get('gpu', 'no GPU (rehearsal)')}, {machine.get('nproc')} cores; device setting "
      f"`{summary.get('device')}`; scale {summary.get('scale')}; {summary.get('elapsed_s')} s of a {summary.get('budget_s')} s budget. "
      f"Peers: {raw_peers.get('env', {}).get('gpu', 'not run')} (torch {raw_peers.get('env', {}).get('torch', '–')}); "
      f"finished before measuring: {summary.get('peers_done_before_measuring')}.\n")
    w("Steps: " + "; ".join(f"{k} {v}" for k, v in summary.get("steps", {}).items()) + "\n")

    rows = []

    def goal(name, ours, peer, target, met, note=""):
        rows.append((name, ours, peer, target, {True: "yes", False: "**no**", None: "–"}[met], note))

    def at_least(value, target):
        return None if value is None else value >= target

    st_short = flat.get("st_minilm_short_fp32_bs256", {}).get("sent_per_s")
    st_long32 = flat.get("st_minilm_long_fp32_bs256", {}).get("sent_per_s")
    st_long16 = flat.get("st_minilm_long_fp16_bs256", {}).get("sent_per_s")
    replica32 = flat.get("bertscore_debertaxl_L40_fp32_bs64", {}).get("pairs_per_s")
    replica16 = flat.get("bertscore_debertaxl_L40_fp16_bs64", {}).get("pairs_per_s")
    short32, short16 = rate("defaults-short-fp32"), rate("defaults-short-fp16")
    long32, long16 = rate("defaults-long-fp32"), rate("defaults-long-fp16")
    bs32, bs16 = rate("defaults-bertscore-fp32"), rate("defaults-bertscore-fp16")

    r = ratio(short32, st_short)
    goal("6. embeddings fp32, defaults, short texts (requests of 256) vs sentence-transformers batch 256",
         f"{fmt(short32)} texts/s", f"{fmt(st_short)} texts/s", "≥ 3×", at_least(r, 3), f"{fmt(r, 2)}×")
    goal("6. embeddings fp16, defaults, short texts", f"{fmt(short16)} texts/s ({(load('defaults-short-fp16.json') or {}).get('compute_precision', '–')})",
         f"{fmt(flat.get('st_minilm_short_fp16_bs256', {}).get('sent_per_s'))} texts/s (ST fp16)", "≥ 100,000 texts/s", at_least(short16, 100000))
    r = ratio(bs32, BERT_SCORE_OWN_PAIRS_PER_S)
    goal("6. BERTScore fp32, deberta-xlarge-mnli L40 (built from pytorch_model.bin)", f"{fmt(bs32)} pairs/s",
         f"bert_score {BERT_SCORE_OWN_PAIRS_PER_S} (recorded); replica {fmt(replica32)} this run", "≥ 560 pairs/s (2×)",
         at_least(bs32, 2 * BERT_SCORE_OWN_PAIRS_PER_S), f"{fmt(r, 2)}× bert_score, {fmt(ratio(bs32, replica32), 2)}× replica")
    goal("6. BERTScore fp16", f"{fmt(bs16)} pairs/s ({(load('defaults-bertscore-fp16.json') or {}).get('compute_precision', '–')})",
         f"replica fp16 {fmt(replica16)} this run", "≥ 2,240 pairs/s (8×)", at_least(bs16, 8 * BERT_SCORE_OWN_PAIRS_PER_S),
         f"{fmt(ratio(bs16, BERT_SCORE_OWN_PAIRS_PER_S), 2)}× bert_score")
    r = ratio(long32, st_long32)
    goal("6. long texts (~190 tokens) fp32 vs sentence-transformers fp32", f"{fmt(long32)} texts/s", f"{fmt(st_long32)} texts/s",
         "≥ 2×", at_least(r, 2), f"{fmt(r, 2)}×; fp16 {fmt(long16)} vs ST fp16 {fmt(st_long16)} ({fmt(ratio(long16, st_long16), 2)}×)")
    real = rate("defaults-real", "useful_tokens_per_s")
    ceiling = encoder_rate("encoder-minilm", r"fused.*packed.*fp32", r"\d+xoracle-sorted")
    r = ratio(real, ceiling)
    goal("6. service vs model-only ceiling of the same graph (real sentences, useful tokens/s)", fmt(real),
         f"{fmt(ceiling)} (fused packed fp32, the oracle in batches, longest first)", "≥ 70%", at_least(r, 0.7), f"{fmt(100 * r if r else None)}%")

    tuned = {"default": (real, rate("defaults-single"))}
    for path in sorted(glob.glob(os.path.join(RES, "admission-*-real.json"))):
        mc = path.split("admission-")[1].split("-")[0]
        tuned[mc] = (rate(f"admission-{mc}-real", "useful_tokens_per_s"), rate(f"admission-{mc}-single"))
    for k, label in ((0, "real sentences, 64 clients × 32 texts"), (1, "one-text requests, 256 clients")):
        best = max((v[k] for v in tuned.values() if v[k]), default=None)
        share = ratio(tuned["default"][k], best)
        goal(f"2. default admission vs best GPU_MAX_CONCURRENT ({label})", fmt(tuned["default"][k]),
             ", ".join(f"{m}: {fmt(v[k])}" for m, v in tuned.items() if m != "default"), "≥ 90% of the best",
             at_least(share, 0.9), f"{fmt(100 * share if share else None)}%")

    one, two = rate("silos1-real", "useful_tokens_per_s"), rate("silos2-real", "useful_tokens_per_s")
    r = ratio(two, one)
    goal("7. two silos sharing the card vs one, through one front (real sentences)", fmt(two), fmt(one), "≥ 1.8×",
         at_least(r, 1.8), f"{fmt(r, 2)}×; one-text requests {fmt(rate('silos2-single'))} vs {fmt(rate('silos1-single'))}")

    p = load("precision.json")
    for row in (p or {}).get("results", [{}]):
        figures = "–" if not row else (
            f"{row['variant']} on {row['provider']}{' (stand-in)' if row.get('stand_in') else ''}: min cosine "
            f"{row['fp16_vs_fp32_min_cosine']:.7f}, max |Δ| {row['fp16_vs_fp32_max_abs_diff']:.2e}, "
            f"F1 max |Δ| {row['bertscore_f1_fp16_vs_fp32_max_abs_diff']:.2e} ({row['texts']} texts)")
        goal("5. fp16 error vs fp32 on the oracles", figures, "fp32 vs oracle: " + (
            f"cos {row['fp32_vs_oracle_min_cosine']:.9f}, |Δ| {row['fp32_vs_oracle_max_abs_diff']:.1e}" if row else "–"),
             "cos ≥ 0.9999, |Δ| ≤ 2e-3, F1 |Δ| ≤ 1e-3", row.get("within_goals") if row else None,
             f"embed s fp32 {row['embed_seconds_fp32']:.2f} / fp16 {row['embed_seconds_fp16']:.2f}" if row else "")

    oom = load("oom-long.json")
    metrics = open(os.path.join(RES, "oom-metrics.txt")).read() if os.path.exists(os.path.join(RES, "oom-metrics.txt")) else None
    # The counter appears in /metrics from its first split on.
    splits = None if metrics is None else metric(metrics, "orleansgpu_inference_oom_splits_total") or 0
    goal("issue 13: real CUDA out of memory (arena held to a small GPU_MEMORY_BUDGET) split and served",
         f"{fmt(splits)} splits, {oom.get('failures') if oom else '–'} failed of {oom.get('requests') if oom else '–'}", "",
         "splits > 0, no failure", None if not oom or splits is None else (splits > 0 and oom.get("failures") == 0))

    ready = summary.get("defaults_ready_s", {})
    info = load("defaults-loaded-info.json") or {}
    held = [m for h in info.get("hosts", []) for m in h.get("models", []) if "deberta" in m["name"]]
    goal("issue 11: deberta-xlarge-mnli loaded through the builder (no export), from the front's start",
         f"{fmt(ready.get('since_start'), 1)} s to both defaults ready; "
         f"memory {fmt(held[0].get('memory_bytes') / 2**30 if held and held[0].get('memory_bytes') else None, 2)} GiB",
         f"replica {fmt(replica32)} pairs/s", "loads and serves", None if not held else bool(bs32))
    par = load("parity.json")
    goal("parity: real all-MiniLM-L6-v2 on the device vs sentence-transformers' oracle",
         f"max |Δ| {par.get('max_abs_diff_vs_oracle') if par else '–'}", "", f"≤ {par.get('tolerance') if par else 1e-5}",
         par.get("passed") if par else None)

    w("| goal | ours | peer / reference | target | met | ratio, notes |")
    w("|---|---|---|---|---|---|")
    for row in rows:
        w("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")

    w("\n## Every HTTP run\n")
    w("| run | scenario | requests × batch | concurrency | precision asked → computed | items/s | useful tokens/s | p50 ms | p99 ms | first call ms | failures |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(RES, "*.json"))):
        r = load(os.path.basename(path))
        if not isinstance(r, dict) or "items_per_s" not in r:
            continue
        w(f"| {os.path.basename(path)[:-5]} | {r['scenario']} | {r['requests']} × {r['batch']} | {r['concurrency']} | "
          f"{r.get('precision') or 'default'} → {r.get('compute_precision') or '–'} | {fmt(r['items_per_s'], 1)} | "
          f"{fmt(r.get('useful_tokens_per_s'))} | {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | {r.get('first_call_ms', '–')} | {r['failures']} |")

    for name in ("encoder-minilm", "encoder-deberta"):
        r = load(f"{name}.json")
        if not r:
            continue
        w(f"\n## Model only: {name}\n")
        w("| graph | provider | workload | padding | sequences/s | useful tokens/s | ms/batch |")
        w("|---|---|---|---|---|---|---|")
        for s in r.get("shapes", []):
            w(f"| {s['graph']} | {s['provider']} | {s['workload']} | {s['padding']} | {fmt(s['sequences_per_s'], 1)} | "
              f"{fmt(s['useful_tokens_per_s'])} | {s['ms_per_batch']} |")
        for g in r.get("graphs", []):
            w(f"- {g['graph']}: built in {g.get('build_seconds')} s, opened in {g.get('open_seconds')} s")
        for s in r.get("skipped", []):
            w(f"- {s}")

    if flat:
        w("\n## Peers (../shared/gpu/peers.py, this run)\n")
        w("| peer | sentences or pairs/s | tokens/s |")
        w("|---|---|---|")
        for k, v in flat.items():
            w(f"| {k} | {fmt(v.get('sent_per_s') or v.get('pairs_per_s'), 1)} | {fmt(v.get('tok_per_s'))} |")

    if summary.get("gpu_memory"):
        w("\n## GPU memory (nvidia-smi, used, total)\n")
        for k, v in summary["gpu_memory"].items():
            w(f"- {k}: {v}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
