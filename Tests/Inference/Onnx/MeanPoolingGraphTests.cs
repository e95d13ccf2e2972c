using Google.Protobuf;
using Onnx;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Onnx;

[Collection(MiniLmCollection.Name)]
public sealed class MeanPoolingGraphTests(MiniLmFixture minilm)
{
    [Fact]
    public void The_default_model_pools_in_its_graph_and_equals_pooling_its_hidden_states()
    {
        Assert.True(minilm.Embedding.PoolsInGraph);

        int[][] batch = [[101, 1996, 4248, 2829, 4419, 2058, 1996, 102], [101, 7592, 102], [101, 2023, 2003, 1037, 3231, 102]];
        using var plain = OnnxEncoder.Open(minilm.Folder.OnnxPath, MiniLmFixture.EncoderOptions);
        using var states = plain.Run(batch, 0);
        var pooled = minilm.Embedding.Embed(batch, new EmbedOptions { Normalize = false });

        var dims = states.HiddenSize;
        var expected = new float[dims];
        for (var k = 0; k < batch.Length; k++)
        {
            Pooling.MeanPool(states, k, batch[k].Length, expected, normalize: false);
            for (var d = 0; d < dims; d++)
            {
                Assert.Equal(expected[d], pooled[(k * dims) + d], 1e-6);
            }
        }
    }

    [Theory]
    [InlineData(11)]
    [InlineData(17)]
    public void Padding_is_left_out_of_the_mean_whatever_the_opset(int opset)
    {
        // hidden = Gather(table, input_ids): token t's vector is row t of the table, so each mean is known.
        float[,] table = { { 1, 10 }, { 2, 20 }, { 4, 40 }, { 100, 1000 } };
        var model = GatherModel(table, opset);
        MeanPoolingGraph.AppendInPlace(model);
        using var encoder = OnnxEncoder.Open(model.ToByteArray(), null, MiniLmFixture.EncoderOptions);

        using var states = encoder.Run([[0, 1, 2], [2]], padId: 3);

        Assert.Equal(1, states.Tokens);
        Assert.Equal([7 / 3f, 70 / 3f], states.Token(0, 0).ToArray());
        Assert.Equal([4f, 40f], states.Token(1, 0).ToArray()); // the two pad rows (100, 1000) count for nothing
    }

    [Fact]
    public void A_graph_without_an_attention_mask_is_not_pooled()
    {
        var model = GatherModel(new float[,] { { 1 } }, 17);
        model.Graph.Input.RemoveAt(1);
        Assert.False(MeanPoolingGraph.CanPool(model));
        Assert.Throws<InvalidDataException>(() => MeanPoolingGraph.AppendInPlace(model));
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
