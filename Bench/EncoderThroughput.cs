using System.Diagnostics;
using System.Globalization;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Bench;

/// <summary>
/// Model-only throughput of ONNX encoders through <see cref="OnnxEncoder"/>: the ceiling that the service can
/// approach, without tokenisation, pooling or HTTP. Graphs: an exported <c>--onnx</c> file and/or graphs the native
/// builder makes (<c>--native</c>: a model folder with config.json and its weights in any format <see cref="ModelWeights"/> reads,
/// or a config.json alone for random weights), in each of <c>--variants</c>; every graph runs every shape, one shape at a time, so that a noisy
/// machine weighs on all of them alike.
/// <code>
/// Bench --scenario encoder --onnx model.onnx --device cuda --shapes 32x20,256x20,64x128 --seconds 3
/// Bench --scenario encoder --native Bench/configs/deberta-xlarge-mnli.json --layers 40 --variants plain,fused --shapes 8x32
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
        try
        {
            if (options.Onnx is { } onnx)
            {
                targets.Add(Open(Path.GetFileName(onnx), onnx, null, encoderOptions));
            }

            if (options.Native is { } native)
            {
                foreach (var variant in options.Variants.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    targets.Add(BuildNative(native, Enum.Parse<GraphVariant>(variant, ignoreCase: true), options, encoderOptions));
                }
            }

            var corpus = new Corpus();
            var rows = new List<object>();
            var lines = new List<string>();
            foreach (var (batch, tokens) in ParseShapes(options.Shapes))
            {
                var sequences = Enumerable.Range(0, batch).Select(_ => corpus.TokenIds(tokens, 101, 102)).ToArray();
                foreach (var target in targets)
                {
                    var (runs, seconds, cpuSeconds) = Time(target.Encoder, sequences, options.Seconds);
                    var perSecond = runs * batch / seconds;
                    rows.Add(new
                    {
                        graph = target.Label,
                        batch,
                        tokens,
                        runs,
                        seconds = Math.Round(seconds, 3),
                        sequences_per_s = Math.Round(perSecond, 1),
                        tokens_per_s = Math.Round(perSecond * tokens),
                        ms_per_batch = Math.Round(seconds * 1000 / runs, 3),
                        cpu_ms_per_batch = Math.Round(cpuSeconds * 1000 / runs, 3),
                    });
                    lines.Add(string.Create(CultureInfo.InvariantCulture,
                        $"| {target.Label} | {target.Encoder.Provider} | {batch} × {tokens} | {perSecond:0.0} | {perSecond * tokens:0} | {seconds * 1000 / runs:0.00} | {cpuSeconds * 1000 / runs:0.00} |"));
                }
            }

            Report.Table("| graph | provider | batch × tokens | sequences/s | tokens/s | ms/batch | CPU ms/batch |", lines);
            foreach (var target in targets)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{target.Label}: built in {target.BuildSeconds:0.00} s, opened in {target.OpenSeconds:0.00} s"));
            }

            Report.Save(options, new
            {
                scenario = "encoder",
                onnx = options.Onnx,
                native = options.Native,
                layers = options.Layers,
                graphs = targets.Select(t => new { graph = t.Label, path = t.Path, provider = t.Encoder.Provider, build_seconds = t.BuildSeconds, open_seconds = Math.Round(t.OpenSeconds, 2) }),
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

    /// <summary>
    /// Runs the batch for <paramref name="seconds"/>; returns the runs, the wall time and this process's CPU time (on a
    /// machine shared with other work, CPU time per batch compares graphs where wall time mostly measures the neighbours).
    /// </summary>
    private static (int Runs, double Seconds, double CpuSeconds) Time(OnnxEncoder encoder, int[][] sequences, double seconds)
    {
        for (var i = 0; i < 3; i++)
        {
            using var _ = encoder.Run(sequences, 0);
        }

        var runs = 0;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            using var _ = encoder.Run(sequences, 0);
            runs++;
        }

        var wall = clock.Elapsed.TotalSeconds;
        return (runs, wall, (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds);
    }

    /// <summary>Builds (or takes from the cache) the native graph of a model folder, or of a config.json with random weights.</summary>
    private static Target BuildNative(string native, GraphVariant variant, BenchOptions options, EncoderOptions encoderOptions)
    {
        var random = File.Exists(native);
        var directory = random ? Path.GetDirectoryName(Path.GetFullPath(native))! : native;
        var config = ModelArchitectureConfig.Read(random ? native : Path.Combine(native, "config.json"));
        var cache = options.GraphCache ?? Path.Combine(Path.GetTempPath(), "orleansgpu-bench-graphs");
        using ICheckpoint checkpoint = random ? new RandomCheckpoint() : ModelWeights.Open(native);
        var clock = Stopwatch.StartNew();
        var graph = NativeEncoderGraphs.GetOrBuildGraph(directory, checkpoint, config, options.Layers, cache, new NativeGraphOptions { Variant = variant });
        var buildSeconds = graph.Built ? Math.Round(clock.Elapsed.TotalSeconds, 2) : (double?)null;
        var label = $"native {config.ModelType} {(random ? "random " : "")}{variant.ToString().ToLowerInvariant()}";
        return Open(label, graph.OnnxPath, buildSeconds, encoderOptions);
    }

    private static Target Open(string label, string path, double? buildSeconds, EncoderOptions encoderOptions)
    {
        var clock = Stopwatch.StartNew();
        var encoder = OnnxEncoder.Open(path, encoderOptions);
        return new Target(label, path, encoder, buildSeconds, clock.Elapsed.TotalSeconds);
    }

    private static IEnumerable<(int Batch, int Tokens)> ParseShapes(string shapes) =>
        shapes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
        {
            var parts = s.Split('x');
            return (int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture));
        });

    private sealed record Target(string Label, string Path, OnnxEncoder Encoder, double? BuildSeconds, double OpenSeconds);
}
