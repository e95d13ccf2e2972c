using Microsoft.ML.OnnxRuntime;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>Runs built graphs on the CPU as the service opens them (all optimisations on), reading several outputs.</summary>
internal static class GraphSessions
{
    public static InferenceSession Open(string onnxPath)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 1 };
        return new InferenceSession(onnxPath, options);
    }

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
