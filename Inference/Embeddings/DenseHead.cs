using System.Numerics.Tensors;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Inference.Embeddings;

/// <summary>
/// A model's sentence-transformers <c>Dense</c> modules, applied in order to each pooled vector, on the host, in
/// float32 as PyTorch's <c>nn.Linear</c> computes them: <c>y = x·Wᵀ + b</c> (float32 dot products), then the
/// activation. It runs in float32 whatever precision the encoder runs in (an fp16 encoder included): the head is a
/// few matrix-vector products per text, and float32 keeps it sentence-transformers' arithmetic.
/// </summary>
public sealed class DenseHead
{
    private readonly Layer[] _layers;

    private DenseHead(Layer[] layers) => _layers = layers;

    /// <summary>The size of the vectors the head takes (the pooled embedding).</summary>
    public int InFeatures => _layers[0].In;

    /// <summary>The size of the vectors it gives (the model's embedding size).</summary>
    public int OutFeatures => _layers[^1].Out;

    /// <summary>The widest vector along the chain, for scratch space.</summary>
    private int Widest => _layers.Max(l => Math.Max(l.In, l.Out));

    /// <summary>
    /// Reads the weights of <paramref name="modules"/> from their folders under <paramref name="directory"/>: a
    /// <see cref="ModelUnreadableException"/> when a file cannot be read, an <see cref="InvalidModelException"/> naming
    /// the module when its weights are missing or do not fit its config.
    /// </summary>
    public static DenseHead? Load(string model, string directory, IReadOnlyList<DenseModuleConfig> modules)
    {
        if (modules.Count == 0)
        {
            return null;
        }

        var layers = new Layer[modules.Count];
        for (var i = 0; i < modules.Count; i++)
        {
            layers[i] = ReadLayer(model, directory, modules[i]);
        }

        return new DenseHead(layers);
    }

    /// <summary>Applies every module to <paramref name="input"/> (<see cref="InFeatures"/> values) into <paramref name="output"/> (<see cref="OutFeatures"/>).</summary>
    public void Apply(ReadOnlySpan<float> input, Span<float> output)
    {
        if (_layers.Length == 1)
        {
            _layers[0].Apply(input, output);
            return;
        }

        var widest = Widest;
        var scratch = System.Buffers.ArrayPool<float>.Shared.Rent(2 * widest);
        try
        {
            var current = input;
            for (var i = 0; i < _layers.Length; i++)
            {
                var target = i == _layers.Length - 1 ? output : scratch.AsSpan((i % 2) * widest, _layers[i].Out);
                _layers[i].Apply(current, target);
                current = target;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(scratch);
        }
    }

    private static Layer ReadLayer(string model, string directory, DenseModuleConfig module)
    {
        var file = module.WeightsIn(directory)
            ?? throw new InvalidModelException(
                model, $"its sentence-transformers Dense module {module.Path} has no weights ({string.Join(" or ", DenseModuleConfig.WeightFileNames)}).");
        try
        {
            using var checkpoint = ModelWeights.OpenFile(file);
            var weight = Read(model, module, checkpoint, "linear.weight", [module.OutFeatures, module.InFeatures]);
            var bias = module.Bias ? Read(model, module, checkpoint, "linear.bias", [module.OutFeatures]) : null;
            if (!module.Bias && checkpoint.Contains("linear.bias"))
            {
                throw Mismatch(model, module, "has linear.bias where its config.json says bias: false");
            }

            var residual = module.UseResidual && module.InFeatures != module.OutFeatures
                ? Read(model, module, checkpoint, "residual.weight", [module.OutFeatures, module.InFeatures])
                : null;
            return new Layer(module.InFeatures, module.OutFeatures, weight, bias, module.Activation, module.UseResidual, residual);
        }
        catch (CheckpointException ex)
        {
            throw new ModelUnreadableException(
                model,
                $"the weights of its sentence-transformers Dense module {module.Path} cannot be read "
                + $"({ex.Message.Replace(directory, "the model's folder", StringComparison.Ordinal)}).",
                ex);
        }
    }

    private static float[] Read(string model, DenseModuleConfig module, ICheckpoint checkpoint, string name, long[] shape)
    {
        if (!checkpoint.Contains(name))
        {
            throw Mismatch(model, module, $"has no {name} in its weights");
        }

        var info = checkpoint.Info(name);
        if (!info.IsFloatingPoint || !info.Shape.SequenceEqual(shape))
        {
            throw Mismatch(model, module, $"has {info} where its config.json ({module.InFeatures} → {module.OutFeatures}) needs {name} [{string.Join(", ", shape)}]");
        }

        return checkpoint.ReadFloat32(name);
    }

    private static InvalidModelException Mismatch(string model, DenseModuleConfig module, string problem) =>
        new(model, $"its sentence-transformers Dense module {module.Path} {problem}.");

    /// <summary>One Dense module: <c>Out × In</c> weights, row-major as PyTorch stores them.</summary>
    private sealed record Layer(int In, int Out, float[] Weight, float[]? Bias, DenseActivation Activation, bool UseResidual, float[]? Residual)
    {
        public void Apply(ReadOnlySpan<float> x, Span<float> y)
        {
            x = x[..In];
            var w = Weight.AsSpan();
            for (var o = 0; o < Out; o++)
            {
                var sum = TensorPrimitives.Dot(w.Slice(o * In, In), x);
                y[o] = Activate(Bias is null ? sum : sum + Bias[o]);
            }

            if (UseResidual)
            {
                if (Residual is null)
                {
                    TensorPrimitives.Add(y[..Out], x, y[..Out]);
                }
                else
                {
                    var r = Residual.AsSpan();
                    for (var o = 0; o < Out; o++)
                    {
                        y[o] += TensorPrimitives.Dot(r.Slice(o * In, In), x);
                    }
                }
            }
        }

        /// <summary>The activation of one float32 value, as torch.nn's module computes it (in double, rounded once).</summary>
        private float Activate(float v) => Activation switch
        {
            DenseActivation.Identity => v,
            DenseActivation.Tanh => MathF.Tanh(v),
            DenseActivation.Sigmoid => (float)(1 / (1 + Math.Exp(-(double)v))),
            DenseActivation.ReLU => v > 0 ? v : 0f,
            DenseActivation.GELU => (float)(0.5 * v * (1 + Erf(v / Math.Sqrt(2)))),
            DenseActivation.SiLU => (float)(v / (1 + Math.Exp(-(double)v))),
            DenseActivation.LeakyReLU => v >= 0 ? v : 0.01f * v,
            DenseActivation.ELU => v > 0 ? v : (float)double.ExpM1(v),
            _ => throw new InvalidOperationException($"Activation {Activation} has no arithmetic."),
        };
    }

    /// <summary>
    /// The error function in double: its Maclaurin series up to |x| = 4 (the alternating terms cancel to about 1e-11
    /// there), beyond that ±1, which differs from erf by under 2e-8, below float32's resolution next to 1.
    /// </summary>
    internal static double Erf(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }

        var a = Math.Abs(x);
        if (a >= 4)
        {
            return Math.Sign(x);
        }

        // erf(x) = 2/√π · Σ (-1)ⁿ x^(2n+1) / (n! (2n+1))
        var x2 = x * x;
        var term = x; // (-1)ⁿ x^(2n+1) / n!
        var sum = x;
        for (var n = 1; n < 200; n++)
        {
            term *= -x2 / n;
            var next = term / ((2 * n) + 1);
            sum += next;
            if (Math.Abs(next) < 1e-17 * Math.Abs(sum))
            {
                break;
            }
        }

        return sum * 2 / Math.Sqrt(Math.PI);
    }
}
