using System.Globalization;
using System.Text.Json;
using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Bench;

/// <summary>
/// What fp16 costs in accuracy: the model's native graph built in fp32 and in fp16 (weights from its checkpoint, or
/// from its ONNX export when it has none, as the bundled all-MiniLM-L6-v2), both run on <c>--device</c>: the oracle's
/// texts and random ones embedded by each (per-text cosine and largest component difference, fp16 against fp32 and
/// both against sentence-transformers), and the BERTScore oracle's runs scored by each (F1 difference). Judged by
/// issue 12's goals: cosine ≥ 0.9999 per text, max |Δ| ≤ 2e-3, F1 |Δ| ≤ 1e-3. fp16 is meant for CUDA; on the CPU the
/// provider computes fp16 graphs in float32, so a CPU run is only a stand-in (it measures the rounding of weights and
/// stored values) and says so.
/// <code>
/// Bench --scenario precision --device cuda --oracle embed-public.json --bertscore-oracle bertscore-public.json --models /tmp/models
/// </code>
/// </summary>
internal static class PrecisionError
{
    private const double MinCosine = 0.9999;
    private const double MaxEmbeddingDelta = 2e-3;
    private const double MaxF1Delta = 1e-3;

    public static int Run(BenchOptions options)
    {
        var device = ExecutionDevice.Parse(options.Device);
        var encoderOptions = new EncoderOptions { Device = device };
        var store = new ModelStore(options.ModelsDirectory ?? ModelStore.DefaultDirectory);
        var folder = store.Resolve(options.Model ?? DefaultModelPackage.ModelName);
        var config = ModelArchitectureConfig.Read(Path.Combine(folder.Directory, "config.json"));
        var cache = options.GraphCache ?? Path.Combine(Path.GetTempPath(), "orleansgpu-bench-graphs");
        var graphs = new ModelGraphs(cache);

        var (oracleTexts, oracleEmbeddings) = EmbedOracleFile.Read(options.Oracle);
        var corpus = new Corpus();
        string[] texts = [.. oracleTexts, .. corpus.Sentences(600, 8, 24), .. corpus.Sentences(100, 150, 220)];
        var bertScoreRuns = ReadBertScoreOracle(options.BertScoreOracle);

        var rows = new List<object>();
        var lines = new List<string>();
        var passed = true;
        foreach (var variant in options.Variants.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var graphVariant = Enum.Parse<GraphVariant>(variant, ignoreCase: true);
            ModelFolder Built(GraphPrecision precision)
            {
                using var checkpoint = folder.Weights.OnnxPath is { } onnx ? (ICheckpoint)OnnxExportCheckpoint.Open(onnx) : ModelWeights.Open(folder.Directory);
                var graph = NativeEncoderGraphs.GetOrBuild(
                    folder.Directory, checkpoint, config, null, cache, new NativeGraphOptions { Variant = graphVariant, Precision = precision });
                return folder with { Weights = new WeightFiles(WeightsFormat.Onnx, [graph]) };
            }

            var fp32Folder = Built(GraphPrecision.Fp32);
            var fp16Folder = Built(GraphPrecision.Fp16);

            float[] fp32, fp16;
            string provider;
            double fp32Seconds, fp16Seconds;
            var embedOptions = new EmbedOptions { BatchSize = 64 };
            using (var model = EmbeddingModel.Load(fp32Folder, graphs, encoderOptions))
            {
                (fp32, fp32Seconds) = Timed(model, texts, embedOptions);
            }

            using (var model = EmbeddingModel.Load(fp16Folder, graphs, encoderOptions))
            {
                (fp16, fp16Seconds) = Timed(model, texts, embedOptions);
                provider = model.Provider;
            }

            var dims = fp32.Length / texts.Length;
            var (cosine, delta) = Compare(fp16, fp32, dims, texts.Length);
            var (oracleCosine32, oracleDelta32) = Compare(fp32, oracleEmbeddings, dims, oracleTexts.Length);
            var (oracleCosine16, oracleDelta16) = Compare(fp16, oracleEmbeddings, dims, oracleTexts.Length);

            double? f1Delta = null, f1Oracle16 = null;
            if (bertScoreRuns.Count > 0)
            {
                using var model32 = new BertScoreModel(fp32Folder, graphs, encoderOptions);
                using var model16 = new BertScoreModel(fp16Folder, graphs, encoderOptions);
                foreach (var (request, expected) in bertScoreRuns)
                {
                    var f32 = model32.Score(request).F1;
                    var f16 = model16.Score(request).F1;
                    f1Delta = Math.Max(f1Delta ?? 0, f16.Zip(f32, (a, b) => (double)Math.Abs(a - b)).Max());
                    f1Oracle16 = Math.Max(f1Oracle16 ?? 0, f16.Zip(expected, (a, b) => (double)Math.Abs(a - b)).Max());
                }
            }

            var onCuda = provider.StartsWith("CUDA", StringComparison.Ordinal);
            var withinGoals = cosine >= MinCosine && delta <= MaxEmbeddingDelta && (f1Delta ?? 0) <= MaxF1Delta;
            passed &= withinGoals && (device.Kind != ExecutionDeviceKind.Cuda || onCuda);
            var verdict = (withinGoals ? "within goals" : "OUTSIDE GOALS") + (onCuda ? "" : " (CPU stand-in)");
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {folder.Name} | {variant} packed | {provider} | {texts.Length} | {cosine:F6} | {delta:0.00e+0} | {oracleDelta32:0.00e+0} / {oracleDelta16:0.00e+0} | {Format(f1Delta)} | {fp32Seconds:F2} / {fp16Seconds:F2} | {verdict} |"));
            rows.Add(new
            {
                variant = graphVariant.ToString().ToLowerInvariant(),
                provider,
                texts = texts.Length,
                fp16_vs_fp32_min_cosine = cosine,
                fp16_vs_fp32_max_abs_diff = delta,
                fp32_vs_oracle_min_cosine = oracleCosine32,
                fp32_vs_oracle_max_abs_diff = oracleDelta32,
                fp16_vs_oracle_min_cosine = oracleCosine16,
                fp16_vs_oracle_max_abs_diff = oracleDelta16,
                bertscore_f1_fp16_vs_fp32_max_abs_diff = f1Delta,
                bertscore_f1_fp16_vs_oracle_max_abs_diff = f1Oracle16,
                embed_seconds_fp32 = fp32Seconds,
                embed_seconds_fp16 = fp16Seconds,
                within_goals = withinGoals,
                stand_in = !onCuda,
            });
        }

        Report.Table("| model | graph | provider | texts | fp16 vs fp32: min cosine | max abs diff | vs oracle (fp32 / fp16) | BERTScore F1 max abs diff | embed s (fp32 / fp16) | verdict |", lines);
        Report.Save(options, new
        {
            scenario = "precision",
            model = folder.Name,
            device = options.Device,
            goals = new { min_cosine = MinCosine, max_abs_diff = MaxEmbeddingDelta, max_f1_diff = MaxF1Delta },
            results = rows,
            passed,
            machine = Report.Machine,
            at = DateTimeOffset.UtcNow,
        });
        return passed ? 0 : 1;
    }

    /// <summary>The texts' embeddings and the wall seconds they took, after a warm-up pass of one batch (the session's first run pays for its set-up).</summary>
    private static (float[] Result, double Seconds) Timed(EmbeddingModel model, string[] texts, EmbedOptions options)
    {
        model.Embed(texts[..Math.Min(options.BatchSize, texts.Length)], options);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = model.Embed(texts, options);
        return (result, clock.Elapsed.TotalSeconds);
    }

    private static string Format(double? value) => value is { } v ? v.ToString("0.00e+0", CultureInfo.InvariantCulture) : "–";

    /// <summary>The smallest per-row cosine and the largest component difference over the first <paramref name="count"/> rows.</summary>
    private static (double MinCosine, double MaxDelta) Compare(float[] a, float[] b, int dims, int count)
    {
        double minCosine = 1, maxDelta = 0;
        for (var row = 0; row < count; row++)
        {
            double dot = 0, na = 0, nb = 0;
            for (var d = 0; d < dims; d++)
            {
                double x = a[(row * dims) + d], y = b[(row * dims) + d];
                dot += x * y;
                na += x * x;
                nb += y * y;
                maxDelta = Math.Max(maxDelta, Math.Abs(x - y));
            }

            minCosine = Math.Min(minCosine, dot / Math.Sqrt(na * nb));
        }

        return (minCosine, maxDelta);
    }

    /// <summary>The oracle's runs without baseline rescaling (L6 and L4, with and without idf), as requests with bert_score's F1.</summary>
    private static List<(BertScoreRequest Request, float[] F1)> ReadBertScoreOracle(string? path)
    {
        if (path is null)
        {
            return [];
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        string[] candidates = [.. root.GetProperty("candidates").EnumerateArray().Select(t => t.GetString()!)];
        string[] references = [.. root.GetProperty("references").EnumerateArray().Select(t => t.GetString()!)];
        var runs = new List<(BertScoreRequest, float[])>();
        foreach (var run in root.GetProperty("runs").EnumerateObject().Where(r => !r.Name.EndsWith("rescaled", StringComparison.Ordinal)))
        {
            var request = new BertScoreRequest
            {
                Candidates = candidates,
                References = BertScoreRequest.Single(references),
                NumLayers = int.Parse(run.Name[1..run.Name.IndexOf('_', StringComparison.Ordinal)], CultureInfo.InvariantCulture),
                Idf = run.Name.EndsWith("_idf", StringComparison.Ordinal),
            };
            runs.Add((request, [.. run.Value.GetProperty("F").EnumerateArray().Select(v => v.GetSingle())]));
        }

        return runs;
    }
}
