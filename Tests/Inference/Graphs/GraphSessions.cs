using Microsoft.ML.OnnxRuntime;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>Runs built graphs on the CPU as the service opens them (all optimisations on), reading several outputs.</summary>
internal static class GraphSessions
{
    public static InferenceSession Open(string onnxPath, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = level, IntraOpNumThreads = 1 };
        return new InferenceSession(onnxPath, options);
    }

    /// <summary>
    /// Opens an fp16 graph on the CPU, short of the CPU-only layout optimisations (level 3): ONNX Runtime 1.31's
    /// NchwcTransformer crashes the process on the padded fused fp16 DeBERTa graphs. The service opens fp16 graphs on
    /// the CPU only with <c>GPU_FP16_ON_CPU</c>, at this same level (<c>EncoderOptions.Float16Graph</c>); on CUDA that
    /// transformer does not apply.
    /// </summary>
    public static InferenceSession OpenFp16OnCpu(string onnxPath) => Open(onnxPath, GraphOptimizationLevel.ORT_ENABLE_EXTENDED);

    /// <summary>Runs one right-padded batch; returns each output's values, row-major <c>[batch, tokens, hidden]</c>.</summary>
    public static float[][] Run(InferenceSession session, IReadOnlyList<long[]> ids, IReadOnlyList<long[]> masks, IReadOnlyList<string> outputs)
    {
        var batch = ids.Count;
        var tokens = ids[0].Length;
        long[] shape = [batch, tokens];
        using var idValue = OrtValue.CreateTensorValueFromMemory(ids.SelectMany(i => i).ToArray(), shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(masks.SelectMany(m => m).ToArray(), shape);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["input_ids", "attention_mask"], [idValue, maskValue], [.. outputs]);
        return [.. results.Select(r => r.GetTensorDataAsSpan<float>().ToArray())];
    }
}
