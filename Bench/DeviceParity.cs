using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Bench;

/// <summary>
/// The default model (all-MiniLM-L6-v2) on a device against the CPU: embeds the oracle's texts and random
/// sentences on both, and reports the largest difference per component, plus both against the
/// sentence-transformers oracle. Fails when the device is not the one asked for or differs by more than 1e-4.
/// <code>
/// Bench --scenario parity --device cuda --oracle embed-public.json --models /tmp/models
/// </code>
/// </summary>
internal static class DeviceParity
{
    private const double Tolerance = 1e-4;

    public static int Run(BenchOptions options)
    {
        var device = ExecutionDevice.Parse(options.Device);
        var store = new ModelStore(options.ModelsDirectory ?? ModelStore.DefaultDirectory);
        var folder = store.Resolve(options.Model ?? DefaultModelPackage.ModelName);

        var (oracleTexts, oracleEmbeddings) = EmbedOracleFile.Read(options.Oracle);
        var corpus = new Corpus();
        string[] texts = [.. oracleTexts, .. corpus.Sentences(600, 8, 24), .. corpus.Sentences(100, 150, 220)];

        var graphs = new ModelGraphs(options.GraphCache ?? CacheFolders.Graphs);
        using var cpu = EmbeddingModel.Load(folder, graphs, new EncoderOptions { Device = ExecutionDevice.Cpu });
        using var onDevice = EmbeddingModel.Load(folder, graphs, new EncoderOptions { Device = device });
        var embedOptions = new EmbedOptions { BatchSize = 64 };
        var cpuVectors = cpu.Embed(texts, embedOptions);
        var clock = Stopwatch.StartNew();
        var deviceVectors = onDevice.Embed(texts, embedOptions);
        var deviceSeconds = clock.Elapsed.TotalSeconds;

        var dims = cpu.Dimensions;
        var oracleCount = oracleTexts.Length * dims;
        var deviceVsCpu = MaxAbsDifference(deviceVectors, cpuVectors, deviceVectors.Length);
        var deviceVsOracle = MaxAbsDifference(deviceVectors, oracleEmbeddings, oracleCount);
        var cpuVsOracle = MaxAbsDifference(cpuVectors, oracleEmbeddings, oracleCount);
        var wantedProvider = device.Kind != ExecutionDeviceKind.Cuda || onDevice.OnGpu;
        var passed = wantedProvider && deviceVsCpu <= Tolerance && deviceVsOracle <= Tolerance;

        Report.Table(
            "| model | provider | texts | max abs diff vs CPU | vs oracle (device) | vs oracle (CPU) | verdict |",
            [string.Create(CultureInfo.InvariantCulture,
                $"| {folder.Name} | {onDevice.Provider} | {texts.Length} | {deviceVsCpu:0.00e+0} | {deviceVsOracle:0.00e+0} | {cpuVsOracle:0.00e+0} | {(passed ? "pass" : "FAIL")} |")]);
        Report.Save(options, new
        {
            scenario = "parity",
            model = folder.Name,
            provider = onDevice.Provider,
            texts = texts.Length,
            oracle_texts = oracleTexts.Length,
            max_abs_diff_vs_cpu = deviceVsCpu,
            max_abs_diff_vs_oracle = deviceVsOracle,
            cpu_max_abs_diff_vs_oracle = cpuVsOracle,
            tolerance = Tolerance,
            device_seconds = Math.Round(deviceSeconds, 3),
            passed,
            machine = Report.Machine,
            at = DateTimeOffset.UtcNow,
        });
        return passed ? 0 : 1;
    }

    private static double MaxAbsDifference(float[] a, float[] b, int count)
    {
        var max = 0.0;
        for (var i = 0; i < count; i++)
        {
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }

        return max;
    }
}
