using System.Diagnostics;
using System.Globalization;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Bench;

/// <summary>
/// Model-only throughput of one ONNX encoder through <see cref="OnnxEncoder"/>: the ceiling that the service can
/// approach, without tokenisation, pooling or HTTP.
/// <code>
/// Bench --scenario encoder --onnx model.onnx --device cuda --shapes 32x20,256x20,64x128 --seconds 3
/// </code>
/// </summary>
internal static class EncoderThroughput
{
    public static int Run(BenchOptions options)
    {
        var path = options.Onnx ?? throw new ArgumentException("--onnx is required for the encoder scenario");
        var opened = Stopwatch.StartNew();
        using var encoder = OnnxEncoder.Open(path, new EncoderOptions { Device = ExecutionDevice.Parse(options.Device) });
        var openSeconds = opened.Elapsed.TotalSeconds;
        var corpus = new Corpus();
        var rows = new List<object>();
        var lines = new List<string>();
        foreach (var (batch, tokens) in ParseShapes(options.Shapes))
        {
            var sequences = Enumerable.Range(0, batch).Select(_ => corpus.TokenIds(tokens, 101, 102)).ToArray();
            for (var i = 0; i < 3; i++)
            {
                using var _ = encoder.Run(sequences, 0);
            }

            var runs = 0;
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < options.Seconds)
            {
                using var _ = encoder.Run(sequences, 0);
                runs++;
            }

            var seconds = clock.Elapsed.TotalSeconds;
            var perSecond = runs * batch / seconds;
            rows.Add(new { batch, tokens, runs, seconds = Math.Round(seconds, 3), sequences_per_s = Math.Round(perSecond, 1), tokens_per_s = Math.Round(perSecond * tokens), ms_per_batch = Math.Round(seconds * 1000 / runs, 3) });
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {Path.GetFileName(path)} | {encoder.Provider} | {batch} × {tokens} | {perSecond:0} | {perSecond * tokens:0} | {seconds * 1000 / runs:0.00} |"));
        }

        Report.Table("| model | provider | batch × tokens | sequences/s | tokens/s | ms/batch |", lines);
        Report.Save(options, new { scenario = "encoder", onnx = path, provider = encoder.Provider, open_seconds = Math.Round(openSeconds, 2), shapes = rows, machine = Report.Machine, at = DateTimeOffset.UtcNow });
        return 0;
    }

    private static IEnumerable<(int Batch, int Tokens)> ParseShapes(string shapes) =>
        shapes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
        {
            var parts = s.Split('x');
            return (int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture));
        });
}
