#!/usr/bin/env python3
"""The lent-GPU measurements of issue 12 (and the GPU halves of issues 11 and 13) in one call, the peers in the same run.

    python3 tools/gpu/measure.py APP_DIR EXTRA_DIR RESULTS_DIR [--device cuda] [--budget 520] [--scale 1] [--steps ...]

APP_DIR: a self-contained `dotnet publish` of Api.Front, Silo.Gpu and Bench in one folder (tools/gpu/publish.sh).
EXTRA_DIR: the oracles (embed-public.json, bertscore-public.json) and ../shared/gpu's peers.py and minilm-vocab.txt
(tools/gpu/stage-extra.sh). RESULTS_DIR receives every figure as JSON, every log, and REPORT.md, which sets each of
issue 12's goals beside its figure, its peer and its target. With $OUT set (the device tool), REPORT.md and a tarball of
RESULTS_DIR are copied there at the end, whatever happened before.

The steps, in the order they run (each skipped, and said so, when the time left is less than it needs):
  defaults   the one-machine default front with no settings at all: real sentences (useful tokens/s), short texts in
             requests of 256 (fp32 and fp16), long texts (fp32 and fp16), one-text requests, and BERTScore on
             microsoft/deberta-xlarge-mnli built from its pytorch_model.bin (fp32 and fp16); its load time and memory
  encoder    model-only ceilings of the same graphs the service runs (the builder's fused, packed graphs)
  precision  fp16 against fp32 on CUDA, on the oracles (embeddings per text, BERTScore F1)
  admission  GPU_MAX_CONCURRENT set by hand against the default, on the same two loads as `defaults`
  two-silos  one Silo.Gpu and then two on the same card, each behind one client-mode front
  oom        a host with a small memory budget (its CUDA arena held to it) given passes larger than it: split, served
  parity     the real all-MiniLM-L6-v2 on CUDA against the CPU and sentence-transformers' oracle
The peers (peers.py: sentence-transformers, a bert_score replica) and the checkpoint (make_checkpoints.py) come from
tools/gpu/baselines.sh, started detached while the build is shipped; this waits for them before it touches the GPU.

Rehearsal on a machine without a GPU (every step but the peers, at a small scale, with deberta-xlarge-mnli's 48 layers
at hidden size 64, so that a lent run goes right the first time):
    python3 tools/gpu/measure.py /tmp/pub /tmp/extra /tmp/res --device cpu --scale 0.02 --no-peers --tiny-deberta
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request

PORT = 8765


class Run:
    def __init__(self, args):
        self.args = args
        self.app, self.extra = os.path.realpath(args.app), os.path.realpath(args.extra)
        self.res = os.path.realpath(args.results)
        self.logs = os.path.join(self.res, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.models, self.graphs = args.models, args.graphs
        os.makedirs(self.models, exist_ok=True)
        self.started = time.monotonic()
        self.deadline = self.started + args.budget
        self.summary = {"steps": {}, "device": args.device, "scale": args.scale, "budget_s": args.budget}
        self.procs = []

    # -- time ---------------------------------------------------------------------------------------------------
    def left(self):
        return self.deadline - time.monotonic()

    def log(self, *parts):
        print(f"== {time.strftime('%H:%M:%S')} (+{time.monotonic() - self.started:.0f} s)", *parts, flush=True)

    def n(self, count, least=1):
        """A request count scaled for a rehearsal."""
        return max(least, int(round(count * self.args.scale)))

    # -- processes ----------------------------------------------------------------------------------------------
    def env(self, **settings):
        e = dict(os.environ)
        e.update({
            "DOTNET_ENVIRONMENT": "Production", "Logging__LogLevel__Default": "Warning",
            "Logging__LogLevel__OrleansGpu": "Information", "TORCH_DEVICE": self.args.device,
            "MODELS_DIR": self.models, "GRAPHS_DIR": self.graphs, "ORLEANS_TLS": "off",
            # Offline: a model not in the models folder must fail at once, not wait for a hub that cannot be reached.
            "HF_HUB_OFFLINE": "1",
        })
        e.update({k: str(v) for k, v in settings.items()})
        return e

    def start(self, tag, argv, **settings):
        out = open(os.path.join(self.logs, f"{tag}.log"), "ab")
        p = subprocess.Popen(argv, env=self.env(**settings), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = []

    def get(self, path, port=PORT, timeout=5):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.read().decode()

    def get_json(self, path, port=PORT):
        return json.loads(self.get(path, port))

    def wait_healthy(self, port=PORT, hosts=1, limit=120):
        end = time.monotonic() + min(limit, max(5, self.left()))
        while time.monotonic() < end:
            try:
                if json.loads(self.get("/health", port)).get("hosts", 0) >= hosts:
                    return True
            except Exception:
                pass
            time.sleep(0.5)
        return False

    def front(self, tag, **settings):
        """The one-machine default: a front with its own silo in the process."""
        self.start(f"front-{tag}", [os.path.join(self.app, "Api.Front"), "--urls", f"http://127.0.0.1:{PORT}"], **settings)
        if not self.wait_healthy():
            raise RuntimeError(f"front {tag} did not become healthy (logs/front-{tag}.log)")

    def cluster(self, tag, silos, **settings):
        """SILOS Silo.Gpu processes (localhost membership, the first holds it) and one client-mode front."""
        gateways = []
        for i in range(silos):
            silo_port, gateway = 11111 + 2 * i, 30000 + i
            self.start(f"{tag}-silo{i}", [os.path.join(self.app, "Silo.Gpu"), f"--Cluster:SiloPort={silo_port}",
                                          "--Cluster:PrimarySiloPort=11111", f"--Cluster:GatewayPort={gateway}"],
                       GPU_HOST_NAME=f"{tag}-{i}", **settings)
            gateways.append(str(gateway))
            if i == 0:
                time.sleep(3)
        self.start(f"{tag}-front", [os.path.join(self.app, "Api.Front"), "--urls", f"http://127.0.0.1:{PORT}",
                                     "--Cluster:Mode=client", f"--Cluster:Gateways={','.join(gateways)}"], **settings)
        if not self.wait_healthy(hosts=silos, limit=180):
            raise RuntimeError(f"cluster {tag} did not reach {silos} hosts")

    def bench(self, tag, *argv, limit=150):
        """One Bench run; its JSON (or None) into the summary under TAG."""
        out = os.path.join(self.res, f"{tag}.json")
        limit = min(limit, max(5, self.left() - 5))
        with open(os.path.join(self.logs, f"bench-{tag}.log"), "w") as log:
            try:
                code = subprocess.run([os.path.join(self.app, "Bench"), "--out", out, *map(str, argv)], stdout=log,
                                      stderr=subprocess.STDOUT, timeout=limit, env=self.env()).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        result = json.load(open(out)) if os.path.exists(out) else None
        self.log(f"bench {tag}: exit {code}", brief(result))
        return result

    def http(self, tag, scenario, requests, batch, concurrency, *extra, port=PORT, limit=150):
        return self.bench(tag, "--url", f"http://127.0.0.1:{port}", "--scenario", scenario, "--requests",
                          self.n(requests, least=2), "--batch", batch, "--concurrency", concurrency, *extra, limit=limit)

    def snapshot(self, tag, port=PORT):
        for path in ("/info", "/status", "/metrics"):
            try:
                body = self.get(path, port, timeout=10)
                with open(os.path.join(self.res, f"{tag}-{path.strip('/')}.{'txt' if path == '/metrics' else 'json'}"), "w") as f:
                    f.write(body)
            except Exception as ex:
                self.log(f"{path}: {ex}")
        self.gpu_memory(tag)

    def gpu_memory(self, tag):
        if shutil.which("nvidia-smi"):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True).stdout.strip()
            self.summary.setdefault("gpu_memory", {})[tag] = out

    def wait_loaded(self, model, use, limit):
        """Seconds until /info shows MODEL loaded for USE ('embedding' or 'bertscore') on every host, or None."""
        started = time.monotonic()
        end = started + min(limit, max(5, self.left() - 30))
        while time.monotonic() < end:
            try:
                hosts = self.get_json("/info")["hosts"]
                if hosts and all(any(m["name"].endswith(model) and m.get(use) for m in h["models"]) for h in hosts):
                    return round(time.monotonic() - started, 1)
            except Exception:
                pass
            time.sleep(1)
        return None

    # -- the steps ----------------------------------------------------------------------------------------------
    def step(self, name, needs, fn):
        if name not in self.args.steps:
            return
        if self.left() < needs:
            self.log(f"{name}: skipped, {self.left():.0f} s left of the budget, it needs about {needs} s")
            self.summary["steps"][name] = f"skipped for time ({self.left():.0f} s left, needs {needs})"
            return
        self.log(f"{name}: start ({self.left():.0f} s left)")
        t = time.monotonic()
        try:
            fn()
            self.summary["steps"][name] = f"ran in {time.monotonic() - t:.0f} s"
        except Exception as ex:
            self.log(f"{name}: failed: {ex!r}")
            self.summary["steps"][name] = f"failed after {time.monotonic() - t:.0f} s: {ex!r}"
        finally:
            self.stop_all()

    def oracle(self):
        return os.path.join(self.extra, "embed-public.json")

    def real_sentences(self, tag, port=PORT):
        # The embedding oracle's 327 real sentences (2-256 tokens, 22.6 on average) in requests of 32 from 64 clients:
        # the load that admission and two silos are compared on, in useful (unpadded) tokens/s.
        return self.http(tag, "embed-oracle", 1500, 32, 64, "--oracle", self.oracle(), port=port)

    def one_text(self, tag, port=PORT):
        return self.http(tag, "embed-short", 12000, 1, 256, port=port)

    def defaults(self):
        started = time.monotonic()
        self.front("defaults")
        # The defaults warm both default models at start: MiniLM from the NuGet package, deberta-xlarge-mnli built
        # from its pytorch_model.bin the first time (the graph cache keeps it for the later steps).
        self.summary["defaults_ready_s"] = {
            "embedding": self.wait_loaded("all-MiniLM-L6-v2", "embedding", 120),
            "bertscore": self.wait_loaded("deberta-xlarge-mnli", "bertscore", 400),
            "since_start": None,
        }
        self.summary["defaults_ready_s"]["since_start"] = round(time.monotonic() - started, 1)
        self.snapshot("defaults-loaded")
        self.real_sentences("defaults-real")
        for precision in ("fp32", "fp16"):
            self.http(f"defaults-short-{precision}", "embed-short", 400, 256, 16, "--precision", precision)
            self.http(f"defaults-long-{precision}", "embed-long", 120, 64, 8, "--precision", precision)
        self.one_text("defaults-single")
        for precision in ("fp32", "fp16"):
            self.http(f"defaults-bertscore-{precision}", "bertscore", 60, 64, 8, "--precision", precision, limit=400)
        self.snapshot("defaults-end")

    def encoder(self):
        minilm = os.path.join(self.models, "sentence-transformers", "all-MiniLM-L6-v2")
        precisions = "fp32,fp16" if self.args.device != "cpu" else "fp32"
        rehearsal = self.args.scale < 1  # a CPU runs a batch of 256 long texts for seconds: smaller shapes there
        seconds = 0.3 if rehearsal else 2
        if not os.path.isdir(minilm):  # the front extracts the NuGet package's files on first use
            self.front("extract", GPU_WARM_DEFAULTS="true", MODEL_BERTSCORE="all-MiniLM-L6-v2")
            self.wait_loaded("all-MiniLM-L6-v2", "embedding", 60)
            self.stop_all()
        self.bench("encoder-minilm", "--scenario", "encoder", "--device", self.args.device, "--native", minilm,
                   "--onnx", os.path.join(minilm, "model.onnx"), "--variants", "fused", "--packing", "packed,padded",
                   "--precisions", precisions, "--graph-cache", self.graphs, "--oracle", self.oracle(),
                   "--shapes", "32xoracle-sorted,32x20" if rehearsal else "256xoracle-sorted,256x20,256x190",
                   "--seconds", seconds, limit=150)
        deberta = os.path.join(self.models, "microsoft", "deberta-xlarge-mnli")
        if os.path.isdir(deberta):
            self.bench("encoder-deberta", "--scenario", "encoder", "--device", self.args.device, "--native", deberta,
                       "--layers", 40, "--variants", "fused",
                       "--packing", "packed", "--precisions", precisions, "--graph-cache", self.graphs,
                       "--shapes", "64x32,256x32,128x10-60", "--seconds", seconds, limit=240)

    def precision(self):
        self.bench("precision", "--scenario", "precision", "--device", self.args.device, "--oracle", self.oracle(),
                   "--bertscore-oracle", os.path.join(self.extra, "bertscore-public.json"), "--models", self.models,
                   "--graph-cache", self.graphs, limit=150)

    def admission(self):
        for mc in self.args.admission:
            self.front(f"admission-{mc}", GPU_MAX_CONCURRENT=mc, GPU_WARM_DEFAULTS="false")
            self.real_sentences(f"admission-{mc}-real")
            self.one_text(f"admission-{mc}-single")
            self.snapshot(f"admission-{mc}")
            self.stop_all()

    def two_silos(self):
        for silos in (1, 2):
            self.cluster(f"silos{silos}", silos, GPU_WARM_DEFAULTS="false", MODEL_BERTSCORE="all-MiniLM-L6-v2")
            self.real_sentences(f"silos{silos}-real")
            self.one_text(f"silos{silos}-single")
            self.snapshot(f"silos{silos}")
            self.stop_all()

    def oom(self):
        # MiniLM holds ~90 MB of weights; passes of 64 long texts (~200 tokens) need more than this budget for their
        # activations, so ONNX Runtime's arena (held to the budget) fails them and the batcher splits them.
        self.front("oom", GPU_MEMORY_BUDGET=self.args.oom_budget, GPU_WARM_DEFAULTS="false")
        self.http("oom-long", "embed-long", 40, 256, 4)
        self.snapshot("oom")

    def parity(self):
        self.bench("parity", "--scenario", "parity", "--device", self.args.device, "--oracle", self.oracle(),
                   "--models", self.models, limit=120)

    # -- before and after ---------------------------------------------------------------------------------------
    def wait_for_baselines(self):
        if self.args.tiny_deberta:
            subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_checkpoints.py"),
                            os.path.join(self.extra, "minilm-vocab.txt"), self.models, "--tiny"], check=True)
        done = os.path.join(self.res, ".baselines-done")
        if not os.path.exists(os.path.join(self.res, ".baselines-started")):
            if self.args.no_peers:
                return
            subprocess.Popen(["bash", os.path.join(os.path.dirname(__file__), "baselines.sh"), self.extra, self.res,
                              self.models], start_new_session=True)
        self.log("waiting for the checkpoint and the peers (tools/gpu/baselines.sh)")
        end = time.monotonic() + self.args.wait_peers
        while not os.path.exists(done) and time.monotonic() < end:
            time.sleep(1)
        self.summary["peers_done_before_measuring"] = os.path.exists(done)
        for name in ("baselines.log", "checkpoints.log", "peers.log"):
            path = os.path.join(self.res, name)
            if os.path.exists(path):
                print(f"--- {name}\n" + "".join(open(path).readlines()[-12:]), flush=True)

    def machine(self):
        info = {"nproc": os.cpu_count()}
        if shutil.which("nvidia-smi"):
            info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                         capture_output=True, text=True).stdout.strip()
        self.summary["machine"] = info
        self.log("machine", info)

    def finish(self):
        self.stop_all()
        self.summary["elapsed_s"] = round(time.monotonic() - self.started, 1)
        json.dump(self.summary, open(os.path.join(self.res, "summary.json"), "w"), indent=1)
        report = os.path.join(self.res, "REPORT.md")
        try:
            subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py"), self.res],
                           stdout=open(report, "w"), check=False, timeout=60)
            print(open(report).read(), flush=True)
        except Exception as ex:
            print(f"report failed: {ex!r}", flush=True)
        out = os.environ.get("OUT")
        if out:
            shutil.copy(report, out)
            with tarfile.open(os.path.join(out, "results.tar.gz"), "w:gz") as t:
                t.add(self.res, arcname="results")


def brief(result):
    if not result:
        return "(no result)"
    if result.get("scenario") in ("embed-short", "embed-long", "embed-oracle", "bertscore", "embed-2048"):
        return (f"{result['items_per_s']:,.0f}/s, p50 {result['latency_ms']['p50']} ms, failures {result['failures']}"
                + (f", useful tokens/s {result['useful_tokens_per_s']:,.0f}" if result.get("useful_tokens_per_s") else "")
                + (f", computed in {result['compute_precision']}" if result.get("compute_precision") else ""))
    return ""


def cuda_libraries(app):
    """The CUDA libraries may live in Python wheels rather than in ldconfig's cache; ICU may be missing (the tokenizer
    refuses to run without it), so a copy travels in the app folder."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    paths = []
    for lib in ("libcuda.so.1", "libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcufft.so.12",
                "libcudnn.so.9"):
        if lib not in cache:
            try:
                found = subprocess.run(["find", "/usr", "/opt", "/root", "-name", lib, "-print", "-quit"],
                                       capture_output=True, text=True, timeout=60).stdout.split()
            except subprocess.TimeoutExpired:
                found = []
            if found:
                paths.append(os.path.dirname(found[0]))
    if "libicuuc.so" not in cache and os.path.isdir(os.path.join(app, "icu")):
        paths.append(os.path.join(app, "icu"))
    if paths:
        os.environ["LD_LIBRARY_PATH"] = ":".join(dict.fromkeys(paths + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]))
    print("LD_LIBRARY_PATH=" + os.environ.get("LD_LIBRARY_PATH", ""), flush=True)


ALL_STEPS = ["defaults", "encoder", "precision", "admission", "two-silos", "oom", "parity"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("app"), p.add_argument("extra"), p.add_argument("results")
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=520, help="seconds for the whole call, the wait for the peers included")
    p.add_argument("--scale", type=float, default=1.0, help="request counts scaled by this (a rehearsal: 0.02)")
    p.add_argument("--steps", default=",".join(ALL_STEPS))
    p.add_argument("--admission", default="16,256,1024", help="GPU_MAX_CONCURRENT values set by hand (the default is measured in defaults)")
    p.add_argument("--oom-budget", default="400MiB")
    p.add_argument("--wait-peers", type=float, default=240, help="at most this long for baselines.sh before measuring anyway")
    p.add_argument("--no-peers", action="store_true", help="do not start baselines.sh when it has not run (no PyTorch here)")
    p.add_argument("--models", default="/tmp/measure-models")
    p.add_argument("--graphs", default="/tmp/measure-graphs")
    p.add_argument("--tiny-deberta", action="store_true", help="rehearsal: deberta-xlarge-mnli's layers at hidden size 64 (make_checkpoints.py --tiny)")
    args = p.parse_args()
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    args.admission = [int(v) for v in args.admission.split(",") if v.strip()]
    cuda_libraries(os.path.realpath(args.app))
    run = Run(args)
    try:
        run.machine()
        run.wait_for_baselines()
        run.step("defaults", 150, run.defaults)
        run.step("encoder", 70, run.encoder)
        run.step("precision", 40, run.precision)
        run.step("admission", 25 * len(args.admission), run.admission)
        run.step("two-silos", 60, run.two_silos)
        run.step("oom", 30, run.oom)
        run.step("parity", 25, run.parity)
    finally:
        run.finish()


if __name__ == "__main__":
    main()
