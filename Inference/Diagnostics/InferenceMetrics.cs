using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using OrleansGpu.Inference.Files;

namespace OrleansGpu.Inference.Diagnostics;

/// <summary>
/// The engine's per-model measurements, on the <see cref="MeterName"/> meter, each tagged with the model and the task
/// (<c>embed</c> or <c>bertscore</c>). Recorded here, where the work happens; hosts export the meter (Prometheus,
/// OpenTelemetry) without the engine knowing how. Names follow Prometheus' conventions once the meter's name is
/// prefixed: <c>orleansgpu_inference_forward_seconds</c>.
/// </summary>
public static class InferenceMetrics
{
    public const string MeterName = "OrleansGpu.Inference";

    private static readonly Meter Meter = new(MeterName, typeof(InferenceMetrics).Assembly.GetName().Version?.ToString(3));

    private static readonly ConcurrentDictionary<Loaded, byte> LoadedModels = new();

    internal static readonly Histogram<double> QueueSeconds = Meter.CreateHistogram<double>(
        "queue_seconds", "s", "Time a request waited for its first forward pass (dynamic batching queue)");

    internal static readonly Histogram<double> TokenizeSeconds = Meter.CreateHistogram<double>(
        "tokenize_seconds", "s", "Time to tokenize one request's texts");

    internal static readonly Histogram<double> ForwardSeconds = Meter.CreateHistogram<double>(
        "forward_seconds", "s", "Duration of one forward pass");

    internal static readonly Histogram<int> BatchSize = Meter.CreateHistogram<int>(
        "batch_size", "{sequence}", "Sequences in one forward pass");

    internal static readonly Histogram<double> PaddingRatio = Meter.CreateHistogram<double>(
        "padding_ratio", null, "Share of a forward pass's token slots that are padding");

    internal static readonly Counter<long> Tokens = Meter.CreateCounter<long>(
        "tokens_total", "{token}", "Tokens run through forward passes (padding excluded); its rate is tokens per second");

    internal static readonly Counter<long> PaddedTokens = Meter.CreateCounter<long>(
        "padded_tokens_total", "{token}", "Token slots of forward passes, padding included; tokens_total over this is the share of the work that was useful");

    internal static readonly Counter<long> OutOfMemorySplits = Meter.CreateCounter<long>(
        "oom_splits_total", "{split}", "Forward passes the device ran out of memory for and that were run again in two halves");

    internal static readonly Counter<long> OutOfMemoryRefusals = Meter.CreateCounter<long>(
        "oom_refused_total", "{sequence}", "Sequences the device ran out of memory for alone: their requests failed on this host (the front tries another)");

    internal static readonly Histogram<double> LoadSeconds = Meter.CreateHistogram<double>(
        "model_load_seconds", "s", "Time to load a model (for BERTScore: one layer's graph) and open its session");

    static InferenceMetrics() =>
        Meter.CreateObservableGauge(
            "model_memory_bytes",
            () => LoadedModels.Keys
                .GroupBy(m => (m.Model, m.Task))
                .Select(g => new Measurement<long>(g.Sum(m => m.Bytes), Tags(g.Key.Model, g.Key.Task))),
            "By",
            "Estimated memory of the loaded models: the size of their weights");

    /// <summary>Tags of one model and task.</summary>
    public static TagList Tags(string model, string task) => new() { { "model", model }, { "task", task } };

    /// <summary>Counts a loaded model's weights in <c>model_memory_bytes</c> until the returned handle is disposed.</summary>
    internal static IDisposable TrackLoaded(string model, string task, long bytes)
    {
        var loaded = new Loaded(model, task, bytes);
        LoadedModels[loaded] = 0;
        return loaded;
    }

    /// <summary>Records a load's duration, from <paramref name="started"/> (a <see cref="Stopwatch.GetTimestamp"/>).</summary>
    internal static void RecordLoad(string model, string task, long started) =>
        LoadSeconds.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, Tags(model, task));

    /// <summary>The size of a model's weights: its ONNX file and the external data files beside it.</summary>
    public static long WeightBytes(string onnxPath)
    {
        var file = new FileInfo(onnxPath);
        var external = file.Directory?.EnumerateFiles($"{file.Name}*").Where(f => f.Name != file.Name).Sum(FileSizes.Of) ?? 0;
        return FileSizes.Of(file) + external;
    }

    private sealed class Loaded(string model, string task, long bytes) : IDisposable
    {
        public string Model { get; } = model;

        public string Task { get; } = task;

        public long Bytes { get; } = bytes;

        public void Dispose() => LoadedModels.TryRemove(this, out _);
    }
}
