using System.Runtime.InteropServices;
using System.Text;
using OrleansGpu.Tests.Inference.Checkpoints;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// sentence-transformers <c>Dense</c> modules with seeded random weights, written as sentence-transformers saves them
/// (<c>config.json</c> and <c>model.safetensors</c> or <c>pytorch_model.bin</c> with <c>linear.weight</c> [out, in] and
/// <c>linear.bias</c> [out]), and the arithmetic they stand for, in double, independent of the service's.
/// </summary>
public sealed record DenseSpec(string Path, int In, int Out, bool Bias, string Activation, int Seed)
{
    public const string Tanh = "torch.nn.modules.activation.Tanh";

    public const string Identity = "torch.nn.modules.linear.Identity";

    /// <summary>Row-major [Out, In], scaled by 1/√In so that tanh is not saturated.</summary>
    public float[] Weight { get; } = Random(Seed, Out * In, 1 / Math.Sqrt(In));

    public float[] BiasValues { get; } = Random(Seed + 1000, Out, 0.1);

    public string Config => $$"""{"in_features": {{In}}, "out_features": {{Out}}, "bias": {{(Bias ? "true" : "false")}}, "activation_function": "{{Activation}}"}""";

    /// <summary>The module's files, keyed by their path in the model's folder; weights in <paramref name="format"/> ("safetensors", "bin" for a torch.save zip, or "legacy").</summary>
    public Dictionary<string, byte[]> Files(string format)
    {
        var files = new Dictionary<string, byte[]> { [$"{Path}/config.json"] = Encoding.UTF8.GetBytes(Config) };
        var temp = System.IO.Path.GetTempFileName();
        try
        {
            var tensors = new List<(string Name, long[] Shape, float[] Values)> { ("linear.weight", [Out, In], Weight) };
            if (Bias)
            {
                tensors.Add(("linear.bias", [Out], BiasValues));
            }

            if (format == "safetensors")
            {
                SafetensorsFiles.Write(temp, tensors.Select(t => new SafetensorsFiles.Tensor(t.Name, "F32", t.Shape, Bytes(t.Values))));
                files[$"{Path}/model.safetensors"] = File.ReadAllBytes(temp);
            }
            else
            {
                // torch.save of the module's state dict: one float storage per tensor, as nn.Parameters; "legacy" is
                // the pre-1.6 stream older sentence-transformers models (distiluse's era) were saved in.
                var torch = tensors.Select((t, i) => TorchTensor.Contiguous(t.Name, "FloatStorage", i.ToString(), t.Shape) with { Parameter = true }).ToList();
                var storages = tensors.Select((t, i) => (Key: i.ToString(), Data: Bytes(t.Values))).ToList();
                if (format == "legacy")
                {
                    TorchFiles.WriteLegacy(temp, TorchFiles.StateDictPickle(torch, legacy: true), [.. storages.Select((s, i) => (s.Key, (long)tensors[i].Values.Length, s.Data))]);
                }
                else
                {
                    TorchFiles.WriteZip(temp, TorchFiles.StateDictPickle(torch), storages.ToDictionary(s => s.Key, s => s.Data), stem: "pytorch_model");
                }

                files[$"{Path}/pytorch_model.bin"] = File.ReadAllBytes(temp);
            }
        }
        finally
        {
            File.Delete(temp);
        }

        return files;
    }

    /// <summary>activation(W·x + b), in double.</summary>
    public double[] Apply(IReadOnlyList<double> x)
    {
        var y = new double[Out];
        for (var o = 0; o < Out; o++)
        {
            var sum = Bias ? BiasValues[o] : 0.0;
            for (var i = 0; i < In; i++)
            {
                sum += (double)Weight[(o * In) + i] * x[i];
            }

            y[o] = Activation switch
            {
                Tanh => Math.Tanh(sum),
                Identity => sum,
                _ => throw new ArgumentException(Activation),
            };
        }

        return y;
    }

    /// <summary>What sentence-transformers makes of a pooled vector: each module in order, then L2 normalisation when asked.</summary>
    public static double[] Expected(ReadOnlySpan<float> pooled, IEnumerable<DenseSpec> modules, bool normalize)
    {
        IReadOnlyList<double> x = [.. pooled.ToArray().Select(v => (double)v)];
        foreach (var module in modules)
        {
            x = module.Apply(x);
        }

        var result = x.ToArray();
        if (normalize)
        {
            var norm = Math.Max(Math.Sqrt(result.Sum(v => v * v)), 1e-12);
            for (var d = 0; d < result.Length; d++)
            {
                result[d] /= norm;
            }
        }

        return result;
    }

    /// <summary>A modules.json: Transformer, Pooling, the Dense modules in order, then Normalize when asked.</summary>
    public static string ModulesJson(IEnumerable<DenseSpec> dense, bool normalize)
    {
        var modules = new List<(string Path, string Type)> { ("", "Transformer"), ("1_Pooling", "Pooling") };
        modules.AddRange(dense.Select(d => (d.Path, "Dense")));
        if (normalize)
        {
            modules.Add(($"{modules.Count}_Normalize", "Normalize"));
        }

        return "[" + string.Join(
            ",\n",
            modules.Select((m, i) => $$"""{"idx": {{i}}, "name": "{{i}}", "path": "{{m.Path}}", "type": "sentence_transformers.models.{{m.Type}}"}""")) + "]";
    }

    /// <summary>
    /// all-MiniLM-L6-v2's files (the real ONNX export and tokenizer, its mean Pooling) with <paramref name="dense"/>
    /// written in <paramref name="format"/> and Normalize after them when <paramref name="normalize"/>.
    /// </summary>
    public static Dictionary<string, byte[]> MiniLmWithDense(IReadOnlyList<DenseSpec> dense, string format, bool normalize = true)
    {
        var files = TestRepos.MiniLmSentenceTransformers();
        foreach (var decoy in TestRepos.Decoys)
        {
            files.Remove(decoy);
        }

        files["modules.json"] = Encoding.UTF8.GetBytes(ModulesJson(dense, normalize));
        foreach (var module in dense)
        {
            foreach (var (path, bytes) in module.Files(format))
            {
                files[path] = bytes;
            }
        }

        return files;
    }

    /// <summary>Writes <paramref name="files"/> under <paramref name="directory"/>.</summary>
    public static string WriteFolder(string directory, IReadOnlyDictionary<string, byte[]> files)
    {
        foreach (var (path, bytes) in files)
        {
            var target = System.IO.Path.Combine(directory, path);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
            File.WriteAllBytes(target, bytes);
        }

        return directory;
    }

    private static float[] Random(int seed, int count, double scale)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(((random.NextDouble() * 2) - 1) * scale))];
    }

    private static byte[] Bytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
