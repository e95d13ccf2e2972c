using Google.Protobuf;
using Onnx;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Onnx;

[Collection(MiniLmCollection.Name)]
public sealed class PoolingGraphTests(MiniLmFixture minilm)
{
    // Three texts of different lengths, so that two of them are padded in the batch.
    private static readonly int[][] Batch = [[101, 1996, 4248, 2829, 4419, 2058, 1996, 102], [101, 7592, 102], [101, 2023, 2003, 1037, 3231, 102]];

    [Fact]
    public void The_default_model_pools_in_its_graph_and_equals_pooling_its_hidden_states()
    {
        Assert.True(minilm.Embedding.PoolsInGraph);
        Assert.Equal(PoolingModes.Mean, minilm.Embedding.Pooling);
        Assert.True(minilm.Embedding.Normalizes); // its modules end with Normalize, as on the hub

        using var plain = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);
        using var states = plain.Run(Batch, 0);
        var pooled = minilm.Embedding.Embed(Batch, new EmbedOptions { Normalize = false });

        var dims = states.HiddenSize;
        for (var k = 0; k < Batch.Length; k++)
        {
            var expected = ByHand(states, k, Batch[k].Length, PoolingModes.Mean);
            for (var d = 0; d < dims; d++)
            {
                Assert.Equal(expected[d], pooled[(k * dims) + d], 1e-6);
            }
        }
    }

    [Theory]
    [InlineData(PoolingModes.Cls)]
    [InlineData(PoolingModes.Max)]
    [InlineData(PoolingModes.Mean)]
    [InlineData(PoolingModes.MeanSqrtLen)]
    [InlineData(PoolingModes.WeightedMean)]
    [InlineData(PoolingModes.LastToken)]
    [InlineData(PoolingModes.Cls | PoolingModes.Max | PoolingModes.Mean)]
    public void Each_mode_pooled_in_the_MiniLM_graph_equals_the_mode_computed_by_hand_from_its_hidden_states(PoolingModes modes)
    {
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(minilm.Folder.Weights.OnnxPath!));
        Assert.True(PoolingGraph.CanPool(graph, modes));
        PoolingGraph.AppendInPlace(graph, modes);
        using var pooling = OnnxEncoder.Open(graph.ToByteArray(), null, MiniLmFixture.EncoderOptions);
        using var plain = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);

        using var states = plain.Run(Batch, 0);
        using var pooled = pooling.Run(Batch, 0);

        Assert.Equal(384 * modes.Count(), pooled.HiddenSize);
        for (var k = 0; k < Batch.Length; k++)
        {
            var expected = ByHand(states, k, Batch[k].Length, modes);
            var actual = pooled.Token(k, 0).ToArray();
            for (var d = 0; d < expected.Length; d++)
            {
                Assert.Equal(expected[d], actual[d], 1e-5);
            }

            // The host's pooling, for graphs that cannot pool themselves, gives the same.
            var host = new float[expected.Length];
            Pooling.Pool(states, k, Batch[k].Length, modes, host, normalize: false);
            for (var d = 0; d < expected.Length; d++)
            {
                Assert.Equal(expected[d], host[d], 1e-5);
            }
        }
    }

    [Theory]
    [InlineData(11)]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(18)]
    public void Padding_is_left_out_of_every_mode_whatever_the_opset(int opset)
    {
        // hidden = Gather(table, input_ids): token t's vector is row t of the table, so each result is known. The pad
        // row (100, 1000) is larger than every real row: max pooling must not see it, nor mean, weighted mean or last token.
        float[,] table = { { 1, 10 }, { 2, 20 }, { 4, 40 }, { 100, 1000 } };
        var all = PoolingModes.Cls | PoolingModes.Max | PoolingModes.Mean | PoolingModes.MeanSqrtLen | PoolingModes.WeightedMean | PoolingModes.LastToken;
        var model = GatherModel(table, opset);
        PoolingGraph.AppendInPlace(model, all);
        using var encoder = OnnxEncoder.Open(model.ToByteArray(), null, MiniLmFixture.EncoderOptions);

        using var states = encoder.Run([[1, 0, 2], [2]], padId: 3);

        Assert.Equal(1, states.Tokens);
        float[] first =
        [
            2, 20, // cls: the first token
            4, 40, // max over real tokens
            7 / 3f, 70 / 3f, // mean
            7 / MathF.Sqrt(3), 70 / MathF.Sqrt(3), // mean_sqrt_len_tokens
            ((1 * 2) + (2 * 1) + (3 * 4)) / 6f, ((1 * 20) + (2 * 10) + (3 * 40)) / 6f, // weightedmean: weights 1, 2, 3
            4, 40, // lasttoken
        ];
        float[] second = [4, 40, 4, 40, 4, 40, 4, 40, 4, 40, 4, 40];
        Assert.Equal(first, states.Token(0, 0).ToArray(), (a, b) => Math.Abs(a - b) <= 1e-5f * Math.Max(1, Math.Abs(a)));
        Assert.Equal(second, states.Token(1, 0).ToArray());
    }

    [Fact]
    public void Positional_modes_need_opset_11_and_a_graph_without_an_attention_mask_is_not_pooled()
    {
        var old = GatherModel(new float[,] { { 1 } }, 10);
        Assert.True(PoolingGraph.CanPool(old, PoolingModes.Mean | PoolingModes.Max | PoolingModes.Cls));
        Assert.False(PoolingGraph.CanPool(old, PoolingModes.LastToken));
        Assert.False(PoolingGraph.CanPool(old, PoolingModes.WeightedMean));

        var model = GatherModel(new float[,] { { 1 } }, 17);
        model.Graph.Input.RemoveAt(1);
        Assert.False(PoolingGraph.CanPool(model));
        Assert.Throws<InvalidDataException>(() => PoolingGraph.AppendInPlace(model));
    }

    /// <summary>sentence-transformers' Pooling.forward for one sequence, written out plainly.</summary>
    private static float[] ByHand(HiddenStates states, int sequence, int length, PoolingModes modes)
    {
        var hidden = states.HiddenSize;
        var result = new List<float>();
        foreach (var mode in modes.InOrder())
        {
            for (var d = 0; d < hidden; d++)
            {
                double sum = 0, weights = 0;
                var max = float.NegativeInfinity;
                for (var t = 0; t < length; t++)
                {
                    var v = states.Token(sequence, t)[d];
                    var w = mode == PoolingModes.WeightedMean ? t + 1 : 1;
                    sum += w * (double)v;
                    weights += w;
                    max = Math.Max(max, v);
                }

                result.Add(mode switch
                {
                    PoolingModes.Cls => states.Token(sequence, 0)[d],
                    PoolingModes.LastToken => states.Token(sequence, length - 1)[d],
                    PoolingModes.Max => max,
                    PoolingModes.MeanSqrtLen => (float)(sum / Math.Sqrt(weights)),
                    _ => (float)(sum / weights),
                });
            }
        }

        return [.. result];
    }

    private static ModelProto GatherModel(float[,] table, int opset)
    {
        var model = new ModelProto { IrVersion = 7, OpsetImport = { new OperatorSetIdProto { Domain = "", Version = opset } }, Graph = new GraphProto { Name = "gather" } };
        var graph = model.Graph;
        graph.Input.Add(Tensor("input_ids", TensorProto.Types.DataType.Int64, "batch", "tokens"));
        graph.Input.Add(Tensor("attention_mask", TensorProto.Types.DataType.Int64, "batch", "tokens"));
        graph.Output.Add(Tensor("last_hidden_state", TensorProto.Types.DataType.Float, "batch", "tokens", "hidden"));
        var weights = new TensorProto { Name = "table", DataType = (int)TensorProto.Types.DataType.Float, Dims = { table.GetLength(0), table.GetLength(1) } };
        weights.FloatData.Add(table.Cast<float>());
        graph.Initializer.Add(weights);
        graph.Node.Add(new NodeProto { OpType = "Gather", Input = { "table", "input_ids" }, Output = { "last_hidden_state" } });
        return model;
    }

    private static ValueInfoProto Tensor(string name, TensorProto.Types.DataType type, params string[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(dims.Select(d => new TensorShapeProto.Types.Dimension { DimParam = d }));
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }
}
