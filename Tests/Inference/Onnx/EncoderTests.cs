using Onnx;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Onnx;

[Collection(MiniLmCollection.Name)]
public sealed class EncoderTests(MiniLmFixture minilm)
{
    [Theory]
    [InlineData("", ExecutionDeviceKind.Auto, 0)]
    [InlineData("auto", ExecutionDeviceKind.Auto, 0)]
    [InlineData("cpu", ExecutionDeviceKind.Cpu, 0)]
    [InlineData("CUDA", ExecutionDeviceKind.Cuda, 0)]
    [InlineData("cuda:1", ExecutionDeviceKind.Cuda, 1)]
    [InlineData(" gpu ", ExecutionDeviceKind.Cuda, 0)]
    public void Device_settings_parse(string setting, ExecutionDeviceKind kind, int id)
    {
        var device = ExecutionDevice.Parse(setting);
        Assert.Equal(kind, device.Kind);
        Assert.Equal(id, device.DeviceId);
    }

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    public void Unknown_device_settings_are_refused(string setting) =>
        Assert.Throws<ArgumentException>(() => ExecutionDevice.Parse(setting));

    [Theory]
    [InlineData(0, 2, 2, 1)] // two passes at once on two cores: one thread each, not two each
    [InlineData(0, 2, 16, 8)]
    [InlineData(0, 3, 16, 5)]
    [InlineData(0, 4, 2, 1)] // more passes than cores: still one thread each
    [InlineData(0, 1, 16, 0)] // one caller at a time: ONNX Runtime's own default
    [InlineData(3, 2, 16, 3)] // set explicitly: as set
    public void Cpu_threads_are_the_cores_shared_among_the_passes_that_run_at_once(int set, int passes, int cores, int threads)
    {
        Assert.Equal(threads, EncoderOptions.CpuThreads(set, passes, cores));
        if (set == 0 && passes > 1)
        {
            Assert.True(threads * passes <= Math.Max(cores, passes));
        }
    }

    [Fact]
    public void A_batcher_opens_its_sessions_for_as_many_passes_as_it_has_workers()
    {
        var options = new BatchLimits { Workers = 2 }.ForSessions(new EncoderOptions());
        Assert.Equal(2, options.ConcurrentRuns);
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2), options.CpuIntraOpThreads);
        Assert.Equal(4, new BatchLimits { Workers = 2 }.ForSessions(new EncoderOptions { IntraOpThreads = 4 }).CpuIntraOpThreads);
    }

    [Fact]
    public void A_cuda_session_arena_is_limited_only_when_a_limit_is_given_provider_options_only_no_gpu_here()
    {
        var unlimited = OnnxEncoder.CudaProviderOptions(new EncoderOptions { Device = ExecutionDevice.Cuda(1) });
        Assert.Equal("1", unlimited["device_id"]);
        Assert.Equal("0", unlimited["use_tf32"]);
        Assert.False(unlimited.ContainsKey("gpu_mem_limit"));

        var limited = OnnxEncoder.CudaProviderOptions(new EncoderOptions { Device = ExecutionDevice.Cuda(), GpuMemoryLimit = 3L << 30 });
        Assert.Equal("3221225472", limited["gpu_mem_limit"]);
        Assert.Equal("kSameAsRequested", limited["arena_extend_strategy"]);
    }

    [Fact]
    public void Auto_device_falls_back_to_the_cpu_when_cuda_is_not_usable()
    {
        using var encoder = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, new EncoderOptions { Device = ExecutionDevice.Auto });
        if (encoder.OnGpu)
        {
            Assert.StartsWith("CUDA", encoder.Provider);
            return;
        }

        Assert.Equal("CPU", encoder.Provider);
        using var states = encoder.Run([[101, 7592, 102]], 0);
        Assert.Equal(384, states.HiddenSize);
    }

    [Fact]
    public void Explicit_cuda_without_a_usable_gpu_is_a_clear_error()
    {
        try
        {
            using var encoder = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, new EncoderOptions { Device = ExecutionDevice.Cuda() });
            Assert.StartsWith("CUDA", encoder.Provider); // this machine has a GPU
        }
        catch (DeviceUnavailableException ex)
        {
            Assert.Contains("cuda:0", ex.Message);
        }
    }

    [Fact]
    public void The_encoder_feeds_the_three_declared_inputs_and_returns_batch_tokens_hidden()
    {
        using var encoder = OpenCpu();
        using var states = encoder.Run([[101, 7592, 2088, 102], [101, 7592, 102]], 0);
        Assert.Equal(2, states.Batch);
        Assert.Equal(4, states.Tokens);
        Assert.Equal(384, states.HiddenSize);
        Assert.Equal(2 * 4 * 384, states.Values.Length);
    }

    [Fact]
    public void Padding_does_not_change_the_hidden_states_of_real_tokens()
    {
        using var encoder = OpenCpu();
        using var alone = encoder.Run([[101, 7592, 102]], 0);
        using var padded = encoder.Run([[101, 7592, 102], [101, 7592, 2088, 2003, 2307, 102]], 0);
        for (var t = 0; t < 3; t++)
        {
            var a = alone.Token(0, t);
            var b = padded.Token(0, t);
            for (var d = 0; d < a.Length; d++)
            {
                Assert.Equal(a[d], b[d], 1e-5f);
            }
        }
    }

    [Fact]
    public void The_model_has_six_layers()
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(minilm.Folder.Weights.OnnxPath!));
        Assert.Equal(6, LayerCut.CountLayers(model));
    }

    [Fact]
    public void Cutting_at_layer_4_drops_every_node_of_layers_4_and_5()
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(minilm.Folder.Weights.OnnxPath!));
        var before = model.Graph.Node.Count;
        LayerCut.CutInPlace(model, 4);

        Assert.True(model.Graph.Node.Count < before);
        Assert.Single(model.Graph.Output);
        var used = model.Graph.Initializer.Select(i => i.Name).ToList();
        Assert.Contains("encoder.layer.3.output.LayerNorm.bias", used);
        Assert.DoesNotContain(used, n => n.StartsWith("encoder.layer.4.", StringComparison.Ordinal) || n.StartsWith("encoder.layer.5.", StringComparison.Ordinal));
        Assert.DoesNotContain(used, n => n.StartsWith("pooler.", StringComparison.Ordinal));
    }

    [Fact]
    public void Cutting_at_the_last_layer_gives_the_full_models_last_hidden_state()
    {
        var bytes = File.ReadAllBytes(minilm.Folder.Weights.OnnxPath!);
        using var full = OpenCpu();
        using var cut = OnnxEncoder.Open(LayerCut.Cut(bytes, 6), null, MiniLmFixture.EncoderOptions);
        int[][] batch = [[101, 1996, 4248, 2829, 4419, 102]];
        using var a = full.Run(batch, 0);
        using var b = cut.Run(batch, 0);
        Assert.Equal(a.Values.ToArray(), b.Values.ToArray());
    }

    [Fact]
    public void Half_precision_outputs_are_read_as_float()
    {
        // The same graph with its output cast to float16, as models exported in half precision end.
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(minilm.Folder.Weights.OnnxPath!));
        var output = model.Graph.Output[0];
        model.Graph.Node.Add(new NodeProto
        {
            OpType = "Cast",
            Input = { output.Name },
            Output = { "hidden_fp16" },
            Attribute = { new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Float16 } },
        });
        var half = output.Clone();
        half.Name = "hidden_fp16";
        half.Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Float16;
        model.Graph.Output.Clear();
        model.Graph.Output.Add(half);

        using var full = OpenCpu();
        using var halved = OnnxEncoder.Open(Google.Protobuf.MessageExtensions.ToByteArray(model), null, MiniLmFixture.EncoderOptions);
        int[][] batch = [[101, 1996, 4248, 2829, 4419, 102], [101, 7592, 102]];
        using var a = full.Run(batch, 0);
        using var b = halved.Run(batch, 0);
        Assert.Equal(a.Values.Length, b.Values.Length);
        for (var i = 0; i < a.Values.Length; i++)
        {
            Assert.Equal((float)(Half)a.Values[i], b.Values[i]);
        }
    }

    [Fact]
    public void Cutting_beyond_the_last_layer_is_refused()
    {
        var bytes = File.ReadAllBytes(minilm.Folder.Weights.OnnxPath!);
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerCut.Cut(bytes, 7));
    }

    private OnnxEncoder OpenCpu() => OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);
}

/// <summary>The layer cut on a small synthetic graph whose LayerNorms are fused, as optimised exports have them.</summary>
public sealed class FusedLayerCutTests
{
    [Fact]
    public void The_end_of_a_layer_is_the_fused_layer_norm_that_applies_its_bias()
    {
        var model = new ModelProto { Graph = new GraphProto() };
        var graph = model.Graph;
        graph.Input.Add(new ValueInfoProto { Name = "input_ids" });
        graph.Output.Add(new ValueInfoProto { Name = "last_hidden_state", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } });
        foreach (var name in new[]
        {
            "embeddings.LayerNorm.bias", "encoder.layer.0.output.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.bias",
            "encoder.layer.1.output.LayerNorm.weight", "encoder.layer.1.output.LayerNorm.bias",
        })
        {
            graph.Initializer.Add(new TensorProto { Name = name });
        }

        graph.Node.Add(new NodeProto { OpType = "Gather", Input = { "input_ids" }, Output = { "emb" } });
        graph.Node.Add(new NodeProto { OpType = "LayerNormalization", Input = { "emb", "w", "embeddings.LayerNorm.bias" }, Output = { "h0" } });
        graph.Node.Add(new NodeProto { OpType = "SkipLayerNormalization", Input = { "h0", "h0", "encoder.layer.0.output.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.bias" }, Output = { "h1" } });
        graph.Node.Add(new NodeProto { OpType = "SkipLayerNormalization", Input = { "h1", "h1", "encoder.layer.1.output.LayerNorm.weight", "encoder.layer.1.output.LayerNorm.bias" }, Output = { "last_hidden_state" } });

        Assert.Equal(2, LayerCut.CountLayers(model));
        var cut = model.Clone();
        LayerCut.CutInPlace(cut, 1);
        Assert.Equal("h1", Assert.Single(cut.Graph.Output).Name);
        Assert.Equal(["Gather", "LayerNormalization", "SkipLayerNormalization"], cut.Graph.Node.Select(n => n.OpType));
        Assert.DoesNotContain(cut.Graph.Initializer, i => i.Name.StartsWith("encoder.layer.1.", StringComparison.Ordinal));

        var embeddingsOnly = model.Clone();
        LayerCut.CutInPlace(embeddingsOnly, 0);
        Assert.Equal("h0", Assert.Single(embeddingsOnly.Graph.Output).Name);
    }
}
