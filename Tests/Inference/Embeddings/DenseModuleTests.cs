using System.Text;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Models.Hub;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Inference.Checkpoints;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Embeddings;

/// <summary>
/// sentence-transformers <c>Dense</c> modules on the real all-MiniLM-L6-v2: its own un-normalised mean-pooled output
/// (checked against the sentence-transformers oracle elsewhere) through seeded random Dense weights, computed here
/// in double, must be what the service embeds.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class DenseModuleTests(MiniLmFixture minilm) : IDisposable
{
    private static readonly string[] Texts =
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.", "A", "Dense layers project the pooled vector into another space, as distiluse and LaBSE do."];

    private readonly string _dir = Directory.CreateTempSubdirectory("dense-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Tanh 384→256 then Identity 256→128 without bias, as LaBSE-like and distiluse-like heads chain them.</summary>
    public static DenseSpec[] Chain =>
    [
        new("2_Dense", 384, 256, Bias: true, DenseSpec.Tanh, Seed: 7),
        new("3_Dense", 256, 128, Bias: false, DenseSpec.Identity, Seed: 8),
    ];

    [Theory]
    [InlineData("safetensors")]
    [InlineData("bin")]
    [InlineData("legacy")]
    public async Task Dense_modules_then_normalize_equal_the_double_precision_computation_from_the_plain_pooled_output(string format)
    {
        var folder = Open("acme/dense-" + format, DenseSpec.MiniLmWithDense(Chain, format));
        Assert.Equal(2, folder.SentenceTransformers.Dense.Count);
        Assert.Equal(DenseActivation.Tanh, folder.SentenceTransformers.Dense[0].Activation);
        Assert.Equal(DenseActivation.Identity, folder.SentenceTransformers.Dense[1].Activation);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        Assert.Equal(128, model.Dimensions);
        Assert.True(model.Normalizes);

        var pooled = minilm.Embedding.Embed(Texts, new EmbedOptions { Normalize = false });
        var normalized = model.Embed(Texts);
        var raw = model.Embed(Texts, new EmbedOptions { Normalize = false });
        var batched = await model.EmbedAsync(model.Tokenize(Texts), normalize: null, cancellationToken: TestContext.Current.CancellationToken);
        AssertClose(pooled, Chain, normalize: true, normalized);
        AssertClose(pooled, Chain, normalize: false, raw);
        AssertClose(pooled, Chain, normalize: true, batched);
    }

    [Fact]
    public void A_single_identity_dense_without_normalize_is_the_projection_alone()
    {
        DenseSpec[] head = [new("2_Dense", 384, 384, Bias: true, DenseSpec.Identity, Seed: 11)];
        var folder = Open("acme/dense-identity", DenseSpec.MiniLmWithDense(head, "bin", normalize: false));
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        Assert.Equal(384, model.Dimensions);
        Assert.False(model.Normalizes);

        var pooled = minilm.Embedding.Embed(Texts, new EmbedOptions { Normalize = false });
        AssertClose(pooled, head, normalize: false, model.Embed(Texts));
        AssertClose(pooled, head, normalize: true, model.Embed(Texts, new EmbedOptions { Normalize = true }));
    }

    [Fact]
    public void A_labse_like_model_cls_pooling_then_dense_then_normalize_projects_the_first_token()
    {
        DenseSpec[] head = [new("2_Dense", 384, 384, Bias: true, DenseSpec.Tanh, Seed: 12)];
        var files = DenseSpec.MiniLmWithDense(head, "safetensors");
        files["1_Pooling/config.json"] = Encoding.UTF8.GetBytes(TestRepos.PoolingConfig("cls"));
        var folder = Open("acme/labse-like", files);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        Assert.Equal(PoolingModes.Cls, model.Pooling);

        int[][] sequences = [[101, 7592, 2088, 102], [101, 2023, 2003, 1037, 3231, 6251, 102]];
        using var plain = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);
        using var states = plain.Run(sequences, 0);
        var actual = model.Embed(sequences, new EmbedOptions());
        for (var k = 0; k < sequences.Length; k++)
        {
            var expected = DenseSpec.Expected(states.Token(k, 0), head, normalize: true);
            for (var d = 0; d < 384; d++)
            {
                Assert.True(Math.Abs(expected[d] - actual[(k * 384) + d]) <= 1e-5, $"text {k}, component {d}");
            }
        }
    }

    [Theory]
    [InlineData(8)]
    [InlineData(6)]
    public void A_residual_dense_adds_its_input_or_the_input_s_bias_free_projection(int outFeatures)
    {
        var random = new Random(4);
        float[] Values(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5))];
        var weight = Values(outFeatures * 8);
        var bias = Values(outFeatures);
        var residual = Values(outFeatures * 8);
        var root = Path.Combine(_dir, "residual");
        Directory.CreateDirectory(Path.Combine(root, "2_Dense"));
        File.WriteAllText(
            Path.Combine(root, "2_Dense", "config.json"),
            $$"""{"in_features": 8, "out_features": {{outFeatures}}, "bias": true, "activation_function": "torch.nn.modules.activation.ReLU", "use_residual": true}""");
        List<SafetensorsFiles.Tensor> tensors =
        [
            new("linear.weight", "F32", [outFeatures, 8], Bytes(weight)),
            new("linear.bias", "F32", [outFeatures], Bytes(bias)),
        ];
        if (outFeatures != 8)
        {
            tensors.Add(new("residual.weight", "F32", [outFeatures, 8], Bytes(residual)));
        }

        SafetensorsFiles.Write(Path.Combine(root, "2_Dense", "model.safetensors"), tensors);
        var config = DenseModuleConfig.Read(root, "2_Dense");
        Assert.True(config.UseResidual);
        var head = DenseHead.Load("acme/residual", root, [config])!;

        var x = Values(8);
        var y = new float[outFeatures];
        head.Apply(x, y);
        for (var o = 0; o < outFeatures; o++)
        {
            double linear = bias[o], skip = outFeatures == 8 ? x[o] : 0;
            for (var i = 0; i < 8; i++)
            {
                linear += (double)weight[(o * 8) + i] * x[i];
                skip += outFeatures == 8 ? 0 : (double)residual[(o * 8) + i] * x[i];
            }

            Assert.Equal(Math.Max(linear, 0) + skip, y[o], 1e-6);
        }
    }

    [Theory]
    [InlineData("torch.nn.modules.activation.ReLU", DenseActivation.ReLU)]
    [InlineData("torch.nn.GELU", DenseActivation.GELU)]
    [InlineData("torch.nn.modules.activation.Sigmoid", DenseActivation.Sigmoid)]
    [InlineData("torch.nn.modules.activation.SiLU", DenseActivation.SiLU)]
    [InlineData("torch.nn.modules.activation.LeakyReLU", DenseActivation.LeakyReLU)]
    [InlineData("torch.nn.modules.activation.ELU", DenseActivation.ELU)]
    public void Other_torch_activations_apply_pytorch_s_formula(string name, DenseActivation expected)
    {
        var spec = new DenseSpec("2_Dense", 16, 12, Bias: true, name, Seed: 3);
        DenseSpec.WriteFolder(_dir, spec.Files("safetensors"));
        var config = DenseModuleConfig.Read(_dir, "2_Dense");
        Assert.Equal(expected, config.Activation);
        var head = DenseHead.Load("acme/act", _dir, [config])!;

        var x = Enumerable.Range(0, 16).Select(i => (float)Math.Sin(i * 1.7) * 3).ToArray();
        var y = new float[12];
        head.Apply(x, y);
        var linear = new DenseSpec("2_Dense", 16, 12, Bias: true, DenseSpec.Identity, Seed: 3).Apply([.. x.Select(v => (double)v)]);
        for (var o = 0; o < 12; o++)
        {
            var z = linear[o];
            var want = expected switch
            {
                DenseActivation.ReLU => Math.Max(z, 0),
                DenseActivation.GELU => 0.5 * z * (1 + Erf(z / Math.Sqrt(2))),
                DenseActivation.Sigmoid => 1 / (1 + Math.Exp(-z)),
                DenseActivation.SiLU => z / (1 + Math.Exp(-z)),
                DenseActivation.LeakyReLU => z >= 0 ? z : 0.01 * z,
                DenseActivation.ELU => z > 0 ? z : Math.Exp(z) - 1,
                _ => throw new ArgumentException(name),
            };
            Assert.True(Math.Abs(want - y[o]) <= 1e-5, $"{name} at {o}: {y[o]} vs {want}");
        }
    }

    [Fact]
    public void Erf_matches_published_values()
    {
        // Abramowitz and Stegun, table 7.1.
        foreach (var (x, erf) in new[] { (0.0, 0.0), (0.5, 0.5204998778130465), (1.0, 0.8427007929497149), (2.0, 0.9953222650189527), (3.5, 0.9999992569016276) })
        {
            Assert.Equal(erf, DenseHead.Erf(x), 1e-12);
            Assert.Equal(-erf, DenseHead.Erf(-x), 1e-12);
        }
    }

    [Theory]
    [InlineData("torch.nn.modules.activation.Softmax", "torch.nn.modules.activation.Softmax")]
    [InlineData("my_package.activations.Swish", "my_package.activations.Swish")]
    public void An_activation_this_service_does_not_apply_is_refused_as_unsupported_naming_it_before_any_weights_are_read(string activation, string named)
    {
        var spec = new DenseSpec("2_Dense", 384, 256, Bias: true, activation, Seed: 5);
        var files = DenseSpec.MiniLmWithDense([spec], "safetensors");
        files.Remove("onnx/model.onnx"); // refused from the settings alone
        var dir = DenseSpec.WriteFolder(Path.Combine(_dir, "unsupported"), files);

        var error = Assert.Throws<ModelNotSupportedException>(() => ModelSupport.CheckSettings("acme/softmax", dir, WeightsFormat.Onnx));
        Assert.Contains(named, error.Message);
        Assert.Contains("2_Dense", error.Message);
        Assert.Contains("Tanh", error.Message); // and what is applied
        Assert.NotEmpty(SentenceTransformersConfig.Read(dir).DenseProblems);
    }

    [Theory]
    [InlineData("""{"in_features": 384, "activation_function": "torch.nn.modules.activation.Tanh"}""", "out_features")]
    [InlineData("""{"in_features": 384, "out_features": 256, "bias": "yes"}""", "bias")]
    [InlineData("""{"in_features": 384, "out_features": 256, "module_input_name": "token_embeddings"}""", "token_embeddings")]
    [InlineData("""[384, 256]""", "not an object")]
    [InlineData("""{"in_features": 384,""", "not JSON")]
    public void A_malformed_dense_config_is_refused_as_unsupported_naming_the_module(string config, string named)
    {
        var files = DenseSpec.MiniLmWithDense([new("2_Dense", 384, 256, Bias: true, DenseSpec.Tanh, Seed: 5)], "safetensors");
        files["2_Dense/config.json"] = Encoding.UTF8.GetBytes(config);
        files["onnx/model.onnx"] = [1, 2, 3]; // refused from the settings: the weights are never opened
        var dir = DenseSpec.WriteFolder(Path.Combine(_dir, "malformed"), files);

        var error = Assert.Throws<ModelNotSupportedException>(() => new ModelStore(_dir).Open("acme/malformed", dir));
        Assert.Contains("2_Dense", error.Message);
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void A_dense_module_after_normalize_or_before_pooling_is_an_order_this_service_does_not_apply()
    {
        var spec = new DenseSpec("3_Dense", 384, 256, Bias: true, DenseSpec.Tanh, Seed: 5);
        DenseSpec.WriteFolder(_dir, spec.Files("safetensors"));
        File.WriteAllText(Path.Combine(_dir, "modules.json"), """
            [
              {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
              {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
              {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
            ]
            """);
        Assert.Equal(["sentence_transformers.models.Dense (3_Dense) after Normalize"], SentenceTransformersConfig.Read(_dir).UnsupportedModules);

        File.WriteAllText(Path.Combine(_dir, "modules.json"), """
            [
              {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "3_Dense", "type": "sentence_transformers.models.Dense"},
              {"idx": 2, "name": "2", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
            ]
            """);
        Assert.Equal(["sentence_transformers.models.Dense (3_Dense) before Pooling"], SentenceTransformersConfig.Read(_dir).UnsupportedModules);
    }

    [Fact]
    public void Dense_modules_whose_sizes_do_not_chain_are_refused_naming_the_module()
    {
        DenseSpec[] head = [new("2_Dense", 384, 256, Bias: true, DenseSpec.Tanh, Seed: 5), new("3_Dense", 200, 128, Bias: true, DenseSpec.Tanh, Seed: 6)];
        var files = DenseSpec.MiniLmWithDense(head, "safetensors");
        files["onnx/model.onnx"] = [1, 2, 3];
        var dir = DenseSpec.WriteFolder(Path.Combine(_dir, "chain"), files);
        var error = Assert.Throws<ModelNotSupportedException>(() => new ModelStore(_dir).Open("acme/chain", dir));
        Assert.Contains("3_Dense takes 200 features where the Dense module before it (2_Dense) gives 256", error.Message);
    }

    [Fact]
    public void Weights_that_do_not_fit_the_config_or_the_pooling_are_a_model_error_naming_the_module()
    {
        // The config says 384 → 256; the weights are 128 × 384.
        var spec = new DenseSpec("2_Dense", 384, 128, Bias: true, DenseSpec.Tanh, Seed: 5);
        var files = DenseSpec.MiniLmWithDense([spec], "safetensors");
        files["2_Dense/config.json"] = Encoding.UTF8.GetBytes(new DenseSpec("2_Dense", 384, 256, true, DenseSpec.Tanh, 5).Config);
        var shape = Open("acme/shape", files, "shape");
        var error = Assert.Throws<InvalidModelException>(() => EmbeddingModel.Load(shape, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions));
        Assert.IsNotType<ModelUnreadableException>(error);
        Assert.Contains("Dense module 2_Dense", error.Message);
        Assert.Contains("linear.weight F32[128, 384]", error.Message);
        Assert.Contains("[256, 384]", error.Message);

        // Weights and config agree, but the pooled vector has 384 values, not 768.
        var wide = new DenseSpec("2_Dense", 768, 256, Bias: true, DenseSpec.Tanh, Seed: 5);
        var pooling = Open("acme/wide", DenseSpec.MiniLmWithDense([wide], "bin"), "wide");
        error = Assert.Throws<InvalidModelException>(() => EmbeddingModel.Load(pooling, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions));
        Assert.Contains("Dense module 2_Dense takes 768 features, but its pooling gives 384", error.Message);

        // No weights at all.
        files = DenseSpec.MiniLmWithDense([new DenseSpec("2_Dense", 384, 256, true, DenseSpec.Tanh, 5)], "safetensors");
        files.Remove("2_Dense/model.safetensors");
        var missing = Open("acme/missing", files, "missing");
        error = Assert.Throws<InvalidModelException>(() => EmbeddingModel.Load(missing, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions));
        Assert.Contains("Dense module 2_Dense has no weights", error.Message);
    }

    [Fact]
    public void The_download_plan_takes_each_module_s_weights_in_one_format_safetensors_first()
    {
        var files = new[]
        {
            "onnx/model.onnx", "model.safetensors", "vocab.txt", "modules.json", "1_Pooling/config.json",
            "2_Dense/config.json", "2_Dense/model.safetensors", "2_Dense/pytorch_model.bin", "3_Dense_v2/config.json", "3_Dense_v2/pytorch_model.bin",
        };
        var plan = DownloadPlan.For(files)!;
        Assert.Equal(["2_Dense/model.safetensors", "3_Dense_v2/pytorch_model.bin"], plan.ModuleWeights);
        Assert.Contains("3_Dense_v2/config.json", plan.Settings);
        Assert.Equal("onnx/model.onnx", plan.Weights);
    }

    private static void AssertClose(float[] pooled, IReadOnlyList<DenseSpec> head, bool normalize, float[] actual)
    {
        var dims = head[^1].Out;
        Assert.Equal(Texts.Length * dims, actual.Length);
        var worst = 0.0;
        for (var t = 0; t < Texts.Length; t++)
        {
            var expected = DenseSpec.Expected(pooled.AsSpan(t * 384, 384), head, normalize);
            for (var d = 0; d < dims; d++)
            {
                worst = Math.Max(worst, Math.Abs(expected[d] - actual[(t * dims) + d]));
            }
        }

        Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");
    }

    private ModelFolder Open(string name, Dictionary<string, byte[]> files, string? folder = null)
    {
        // The real ONNX file is linked, not copied.
        var onnx = files["onnx/model.onnx"];
        files.Remove("onnx/model.onnx");
        var dir = DenseSpec.WriteFolder(Path.Combine(_dir, folder ?? name.Replace('/', '_')), files);
        Assert.Equal(TestRepos.MiniLmOnnx.Length, onnx.Length);
        File.CreateSymbolicLink(Path.Combine(dir, "model.onnx"), minilm.Folder.Weights.OnnxPath!);
        return new ModelStore(_dir).Open(name, dir);
    }

    private static byte[] Bytes(float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static double Erf(double x)
    {
        // An independent erf: the continued fraction of erfc, good to ~1e-15, for the test's expected values.
        if (x < 0)
        {
            return -Erf(-x);
        }

        if (x < 2)
        {
            double sum = 0, term = x;
            for (var n = 0; n < 100; n++)
            {
                sum += term / ((2 * n) + 1);
                term *= -x * x / (n + 1);
            }

            return 2 / Math.Sqrt(Math.PI) * sum;
        }

        double f = 0;
        for (var k = 60; k >= 1; k--)
        {
            f = k / 2.0 / (x + f);
        }

        return 1 - (Math.Exp(-x * x) / Math.Sqrt(Math.PI) / (x + f));
    }
}
