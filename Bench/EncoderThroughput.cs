using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Bench;

/// <summary>
/// Model-only throughput of ONNX encoders through <see cref="OnnxEncoder"/>: the ceiling that the service can
/// approach, without tokenisation, pooling or HTTP. Graphs: an exported <c>--onnx</c> file and/or graphs the native
/// builder makes (<c>--native</c>: a model folder with config.json and its weights in any format <see cref="ModelWeights"/>
/// reads, or a config.json alone for random weights), in each of <c>--variants</c> × <c>--packing</c> ×
/// <c>--precisions</c> (fp16 on CUDA only). Workloads (<c>--shapes</c>): <c>BxL</c>, one batch of B sequences of L
/// tokens; <c>BxA-Z</c>, B sequences of lengths drawn from A…Z; <c>Bxoracle</c> and <c>Bxoracle-sorted</c>, the
/// <c>--oracle</c> file's real token ids (embed-public.json) cut into batches of B in the file's order, or longest
/// first as the batcher forms the passes of one large request. Every graph runs every workload, one workload at a
/// time, in <c>--rounds</c> rounds whose order alternates, so that a noisy machine weighs on all of them alike; the
/// figures that compare graphs on a shared machine are CPU time per useful (real) token.
/// <code>
/// Bench --scenario encoder --onnx model.onnx --device cuda --shapes 32x20,256x20,64x128 --seconds 3
/// Bench --scenario encoder --native Bench/configs/all-MiniLM-L6-v2.json --variants fused --packing padded,packed \
///       --shapes 32xoracle,32xoracle-sorted --oracle ../shared/oracles/embed-public.json --threads 1 --rounds 2
/// Bench --scenario encoder --native Bench/configs/deberta-xlarge-mnli.json --layers 40 --precisions fp32,fp16 --device cuda --shapes 64x32
/// </code>
/// </summary>
internal static class EncoderThroughput
{
    public static int Run(BenchOptions options)
    {
        if (options.Onnx is null && options.Native is null)
        {
            throw new ArgumentException("--onnx or --native is required for the encoder scenario");
        }

        var encoderOptions = new EncoderOptions { Device = ExecutionDevice.Parse(options.Device), IntraOpThreads = options.Threads };
        var targets = new List<Target>();
        var skipped = new List<string>();
        try
        {
            if (options.Onnx is { } onnx)
            {
                targets.Add(Open(Path.GetFileName(onnx), onnx, null, encoderOptions));
            }

            if (options.Native is { } native)
            {
                foreach (var graphOptions in NativeOptions(options))
                {
                    var target = BuildNative(native, graphOptions, options, encoderOptions);
                    if (graphOptions.Precision == GraphPrecision.Fp16 && !target.Encoder.OnGpu)
                    {
                        // The CPU provider runs fp16 graphs by casting to float32: slower than fp32, and not what fp16 is for.
                        skipped.Add($"{target.Label}: fp16 runs on CUDA only; skipped on {target.Encoder.Provider}");
                        target.Encoder.Dispose();
                        continue;
                    }

                    targets.Add(target);
                }
            }

            var rows = new List<object>();
            var lines = new List<string>();
            foreach (var workload in Workloads(options))
            {
                var totals = targets.ToDictionary(t => t, _ => new Timing());
                for (var round = 0; round < options.Rounds; round++)
                {
                    var order = round % 2 == 0 ? targets : Enumerable.Reverse(targets).ToList();
                    foreach (var target in order)
                    {
                        totals[target].Add(Time(target.Encoder, workload.Batches, options.Seconds, options.Callers));
                    }
                }

                foreach (var target in targets)
                {
                    var t = totals[target];
                    var batches = t.Iterations * workload.Batches.Length;
                    var sequencesPerSecond = t.Iterations * workload.Sequences / t.Seconds;
                    var usefulPerSecond = t.Iterations * workload.RealTokens / t.Seconds;
                    var cpuMicrosPerToken = t.CpuSeconds * 1e6 / (t.Iterations * workload.RealTokens);
                    rows.Add(new
                    {
                        graph = target.Label,
                        provider = target.Encoder.Provider,
                        workload = workload.Name,
                        batches_per_iteration = workload.Batches.Length,
                        sequences = workload.Sequences,
                        real_tokens = workload.RealTokens,
                        padded_tokens = workload.PaddedTokens,
                        padding = Math.Round(workload.Padding, 3),
                        iterations = t.Iterations,
                        seconds = Math.Round(t.Seconds, 3),
                        sequences_per_s = Math.Round(sequencesPerSecond, 1),
                        useful_tokens_per_s = Math.Round(usefulPerSecond),
                        ms_per_batch = Math.Round(t.Seconds * 1000 / batches, 3),
                        cpu_ms_per_batch = Math.Round(t.CpuSeconds * 1000 / batches, 3),
                        cpu_us_per_useful_token = Math.Round(cpuMicrosPerToken, 2),
                        cpu_us_per_useful_token_by_round = t.CpuMicrosPerTokenByRound(workload.RealTokens),
                    });
                    lines.Add(string.Create(CultureInfo.InvariantCulture,
                        $"| {target.Label} | {target.Encoder.Provider} | {workload.Name} | {workload.Padding:P0} | {sequencesPerSecond:0.0} | {usefulPerSecond:0} | {t.Seconds * 1000 / batches:0.00} | {t.CpuSeconds * 1000 / batches:0.00} | {cpuMicrosPerToken:0.0} |"));
                }
            }

            Report.Table("| graph | provider | workload | padding | sequences/s | useful tokens/s | ms/batch | CPU ms/batch | CPU µs/useful token |", lines);
            foreach (var target in targets)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{target.Label}: built in {target.BuildSeconds:0.00} s, opened in {target.OpenSeconds:0.00} s"));
            }

            skipped.ForEach(Console.WriteLine);
            Report.Save(options, new
            {
                scenario = "encoder",
                onnx = options.Onnx,
                native = options.Native,
                layers = options.Layers,
                rounds = options.Rounds,
                callers = options.Callers,
                threads = options.Threads,
                graphs = targets.Select(t => new { graph = t.Label, path = t.Path, provider = t.Encoder.Provider, build_seconds = t.BuildSeconds, open_seconds = Math.Round(t.OpenSeconds, 2) }),
                skipped,
                shapes = rows,
                machine = Report.Machine,
                at = DateTimeOffset.UtcNow,
            });
            return 0;
        }
        finally
        {
            foreach (var target in targets)
            {
                target.Encoder.Dispose();
            }
        }
    }

    /// <summary>Every combination of <c>--variants</c>, <c>--packing</c> and <c>--precisions</c>.</summary>
    private static IEnumerable<NativeGraphOptions> NativeOptions(BenchOptions options) =>
        from variant in List(options.Variants)
        from packing in List(options.Packing)
        from precision in List(options.Precisions)
        select new NativeGraphOptions
        {
            Variant = Enum.Parse<GraphVariant>(variant, ignoreCase: true),
            Packed = packing switch
            {
                "packed" => true,
                "padded" => false,
                _ => throw new ArgumentException($"--packing takes packed and/or padded, not {packing}"),
            },
            Precision = Enum.Parse<GraphPrecision>(precision, ignoreCase: true),
        };

    private static string[] List(string values) => values.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Runs every batch of the workload, over and over, for <paramref name="seconds"/>; returns the iterations, the
    /// wall time and this process's CPU time (on a machine shared with other work, CPU time compares graphs where
    /// wall time mostly measures the neighbours).
    /// </summary>
    /// <remarks>
    /// With <paramref name="callers"/> above one, that many threads run the workload at once on the one session, as
    /// the batcher's workers do (<c>--callers 2 --threads 1</c> is the service's CPU setting on two cores).
    /// </remarks>
    private static (int Iterations, double Seconds, double CpuSeconds) Time(OnnxEncoder encoder, int[][][] batches, double seconds, int callers)
    {
        foreach (var batch in batches.Take(3))
        {
            using var _ = encoder.Run(batch, 0);
        }

        var iterations = 0;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        void Loop()
        {
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                foreach (var batch in batches)
                {
                    using var states = encoder.Run(batch, 0);
                }

                Interlocked.Increment(ref iterations);
            }
        }

        var threads = Enumerable.Range(0, Math.Max(1, callers)).Select(_ => new Thread(Loop)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        var wall = clock.Elapsed.TotalSeconds;
        return (iterations, wall, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
    }

    /// <summary>Builds (or takes from the cache) the native graph of a model folder, or of a config.json with random weights.</summary>
    private static Target BuildNative(string native, NativeGraphOptions graphOptions, BenchOptions options, EncoderOptions encoderOptions)
    {
        var random = File.Exists(native);
        var directory = random ? Path.GetDirectoryName(Path.GetFullPath(native))! : native;
        var config = ModelArchitectureConfig.Read(random ? native : Path.Combine(native, "config.json"));
        var cache = options.GraphCache ?? Path.Combine(Path.GetTempPath(), "orleansgpu-bench-graphs");
        using var checkpoint = random ? new RandomCheckpoint() : OpenCheckpoint(native);
        var clock = Stopwatch.StartNew();
        var graph = NativeEncoderGraphs.GetOrBuildGraph(directory, checkpoint, config, options.Layers, cache, graphOptions);
        var buildSeconds = graph.Built ? Math.Round(clock.Elapsed.TotalSeconds, 2) : (double?)null;
        var label = $"native {config.ModelType} {(random ? "random " : "")}{NativeEncoderGraphs.Describe(graphOptions).Replace('_', ' ')}";
        return Open(label, graph.OnnxPath, buildSeconds, encoderOptions);
    }

    /// <summary>A model folder's checkpoint, or the weights inside its ONNX export when it has no checkpoint (the bundled MiniLM).</summary>
    internal static ICheckpoint OpenCheckpoint(string folder) =>
        ModelWeights.Find(folder) is null && File.Exists(Path.Combine(folder, "model.onnx"))
            ? OnnxExportCheckpoint.Open(Path.Combine(folder, "model.onnx"))
            : ModelWeights.Open(folder);

    private static Target Open(string label, string path, double? buildSeconds, EncoderOptions encoderOptions)
    {
        var clock = Stopwatch.StartNew();
        var encoder = OnnxEncoder.Open(path, encoderOptions);
        return new Target(label, path, encoder, buildSeconds, clock.Elapsed.TotalSeconds);
    }

    private static IEnumerable<Workload> Workloads(BenchOptions options)
    {
        var corpus = new Corpus();
        foreach (var shape in List(options.Shapes))
        {
            var parts = shape.Split('x', 2);
            var batch = int.Parse(parts[0], CultureInfo.InvariantCulture);
            var lengths = parts[1];
            if (lengths.StartsWith("oracle", StringComparison.Ordinal))
            {
                var sequences = OracleSequences(options.Oracle ?? throw new ArgumentException($"{shape} needs --oracle embed-public.json"));
                if (lengths == "oracle-sorted")
                {
                    sequences = [.. sequences.OrderByDescending(s => s.Length)];
                }
                else if (lengths != "oracle")
                {
                    throw new ArgumentException($"{shape}: the oracle workloads are Bxoracle and Bxoracle-sorted");
                }

                yield return new Workload(shape, [.. sequences.Chunk(batch)]);
            }
            else if (lengths.Split('-') is [var low, var high])
            {
                var random = new Random(batch);
                int min = int.Parse(low, CultureInfo.InvariantCulture), max = int.Parse(high, CultureInfo.InvariantCulture);
                yield return new Workload(shape, [[.. Enumerable.Range(0, batch).Select(_ => corpus.TokenIds(random.Next(min, max + 1), 101, 102))]]);
            }
            else
            {
                var tokens = int.Parse(lengths, CultureInfo.InvariantCulture);
                yield return new Workload(shape, [[.. Enumerable.Range(0, batch).Select(_ => corpus.TokenIds(tokens, 101, 102))]]);
            }
        }
    }

    /// <summary>The oracle's token ids (BERT's vocabulary; valid for every config in Bench/configs).</summary>
    private static int[][] OracleSequences(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return [.. doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(ids => ids.EnumerateArray().Select(i => i.GetInt32()).ToArray())];
    }

    private sealed record Target(string Label, string Path, OnnxEncoder Encoder, double? BuildSeconds, double OpenSeconds);

    /// <summary>Batches run one after the other as one iteration; padding as the encoder pads each batch (to its longest).</summary>
    private sealed record Workload(string Name, int[][][] Batches)
    {
        public int Sequences { get; } = Batches.Sum(b => b.Length);

        public long RealTokens { get; } = Batches.Sum(b => b.Sum(s => (long)s.Length));

        public long PaddedTokens { get; } = Batches.Sum(b => (long)b.Length * b.Max(s => s.Length));

        public double Padding => 1 - ((double)RealTokens / PaddedTokens);
    }

    private sealed class Timing
    {
        private readonly List<(int Iterations, double CpuSeconds)> _rounds = [];

        public int Iterations { get; private set; }

        public double Seconds { get; private set; }

        public double CpuSeconds { get; private set; }

        public void Add((int Iterations, double Seconds, double CpuSeconds) round)
        {
            Iterations += round.Iterations;
            Seconds += round.Seconds;
            CpuSeconds += round.CpuSeconds;
            _rounds.Add((round.Iterations, round.CpuSeconds));
        }

        public double[] CpuMicrosPerTokenByRound(long realTokens) =>
            [.. _rounds.Select(r => Math.Round(r.CpuSeconds * 1e6 / (r.Iterations * realTokens), 2))];
    }
}
