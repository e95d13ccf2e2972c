using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// Every hidden state of every architecture, built from <c>config.json</c> and one weight file alone, against what
/// Hugging Face transformers computed (shared/oracles/architectures): the four sequences as the one padded batch the
/// oracle ran, and each sequence alone, for the plain and the fused graphs, padded and packed, from each of the
/// fixture's files (<c>model.safetensors</c>, and the PyTorch zip and legacy files keyed as the real hub checkpoints,
/// read through the base-model view). The oracle's batch has lengths 3, 9, 17 and 126, so a packed graph runs on
/// 155 of its 504 positions.
/// </summary>
public sealed class ArchitectureOracleTests
{
    private const float Tolerance = 1e-5f;

    public static TheoryData<string, GraphVariant, bool, string> Cases()
    {
        var data = new TheoryData<string, GraphVariant, bool, string>();
        foreach (var architecture in ArchitectureOracles.Architectures)
        {
            foreach (var variant in new[] { GraphVariant.Plain, GraphVariant.Fused })
            {
                // Every file with the padded graph; packing changes the graph, not how weights are read.
                foreach (var file in new[] { "model.safetensors", "pytorch_model.bin", "pytorch_model.legacy.bin" })
                {
                    data.Add(architecture, variant, false, file);
                }

                data.Add(architecture, variant, true, "model.safetensors");
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_hidden_state_equals_transformers_within_1e5_batched_and_alone(string architecture, GraphVariant variant, bool packed, string weights)
    {
        var oracle = ArchitectureOracles.Load(architecture);
        var folder = ArchitectureOracles.Folder(architecture);
        var output = Directory.CreateTempSubdirectory("native-graph-");
        try
        {
            var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
            string onnx;
            using (var checkpoint = new BaseModelCheckpoint(ModelWeights.OpenFile(Path.Combine(folder, weights))))
            {
                onnx = NativeEncoderGraphs.Build(checkpoint, config, null, output.FullName, new NativeGraphOptions { Variant = variant, Packed = packed, ExposeAllLayers = true });
            }

            var layers = oracle.HiddenStates[0].Length;
            Assert.Equal(config.NumHiddenLayers + 1, layers);
            var names = Enumerable.Range(0, layers).Select(k => $"hidden_states.{k}").ToArray();
            using var session = GraphSessions.Open(onnx);

            var batch = GraphSessions.Run(session, [.. oracle.Inputs.Select(i => i.InputIds)], [.. oracle.Inputs.Select(i => i.AttentionMask)], names);
            var worst = new Worst();
            for (var s = 0; s < oracle.Inputs.Length; s++)
            {
                Compare(oracle, s, batch, row: s, tokens: oracle.Inputs[0].InputIds.Length, config.HiddenSize, worst, "batched");
            }

            for (var s = 0; s < oracle.Inputs.Length; s++)
            {
                var length = oracle.Lengths[s];
                var alone = GraphSessions.Run(session, [oracle.Inputs[s].InputIds[..length]], [oracle.Inputs[s].AttentionMask[..length]], names);
                Compare(oracle, s, alone, row: 0, tokens: length, config.HiddenSize, worst, "alone");
            }

            var label = $"{architecture} {variant} {(packed ? "packed" : "padded")} {weights}";
            TestContext.Current.TestOutputHelper?.WriteLine($"{label}: max |Δ| = {worst.Delta:E2} at {worst.Where}");
            Assert.True(worst.Delta <= Tolerance, $"{label}: max |Δ| = {worst.Delta:E2} at {worst.Where}");
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }

    private static void Compare(ArchitectureOracle oracle, int sequence, float[][] outputs, int row, int tokens, int hidden, Worst worst, string how)
    {
        var expected = oracle.HiddenStates[sequence];
        Assert.Equal(oracle.Lengths[sequence], expected[0].Length);
        for (var layer = 0; layer < expected.Length; layer++)
        {
            var values = outputs[layer];
            Assert.Equal(outputs.Length > 0 ? values.Length : 0, (values.Length / (tokens * hidden)) * tokens * hidden);
            for (var t = 0; t < expected[layer].Length; t++)
            {
                var offset = ((row * tokens) + t) * hidden;
                for (var c = 0; c < hidden; c++)
                {
                    var delta = Math.Abs(values[offset + c] - expected[layer][t][c]);
                    if (!(delta <= worst.Delta))
                    {
                        worst.Delta = float.IsNaN(delta) ? float.PositiveInfinity : delta;
                        worst.Where = $"{how}, sequence {sequence}, layer {layer}, token {t}, component {c}";
                    }
                }
            }
        }
    }

    private sealed class Worst
    {
        public float Delta { get; set; }

        public string Where { get; set; } = "nowhere";
    }
}
