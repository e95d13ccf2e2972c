using Google.Protobuf;
using Onnx;
using OrleansGpu.Inference.Embeddings;

namespace OrleansGpu.Inference.Onnx;

/// <summary>
/// Appends sentence-transformers' pooling to an encoder graph, so that the device pools and only one vector per text
/// comes back to the host instead of one per token (for 200-token texts, 200 times less to copy). Each mode computes
/// what sentence-transformers' <c>Pooling</c> module computes, in float32, padding left out exactly:
/// <list type="bullet">
/// <item>mean: <c>sum(hidden × mask) / max(sum(mask), 1e-9)</c>; mean_sqrt_len_tokens divides by the square root instead;</item>
/// <item>max: padded tokens set to -1e9 first (as <c>hidden × mask + (mask − 1) × 1e9</c>, exact for both), then the maximum;</item>
/// <item>cls: the first token;</item>
/// <item>weightedmean: weights 1, 2, 3, ... on the real tokens (the running sum of the mask, which equals
/// sentence-transformers' <c>arange(1, T + 1)</c> under right padding);</item>
/// <item>lasttoken: the token where the running sum of the mask reaches its total, i.e. the last real one.</item>
/// </list>
/// Several modes are concatenated in sentence-transformers' order. The pooled tensor <c>[batch, modes × hidden]</c>
/// becomes the graph's only output.
/// </summary>
public static class PoolingGraph
{
    public const string OutputName = "orleansgpu_pooled";

    private const string Prefix = "orleansgpu_pool_";

    /// <summary>The first opset with CumSum and float Equal, which weighted-mean and last-token pooling use.</summary>
    private const long PositionalOpset = 11;

    /// <summary>
    /// Whether <paramref name="model"/> can pool <paramref name="modes"/> in its graph: it needs an <c>attention_mask</c>
    /// input, and weighted-mean and last-token pooling need opset 11 or later.
    /// </summary>
    public static bool CanPool(ModelProto model, PoolingModes modes = PoolingModes.Mean) =>
        model.Graph.Input.Any(i => i.Name == "attention_mask")
        && (Opset(model) >= PositionalOpset || (modes & (PoolingModes.WeightedMean | PoolingModes.LastToken)) == 0);

    /// <summary>Returns the bytes of <paramref name="model"/> with the pooling as its output.</summary>
    public static byte[] Append(byte[] model, PoolingModes modes = PoolingModes.Mean)
    {
        var proto = ModelProto.Parser.ParseFrom(model);
        AppendInPlace(proto, modes);
        return proto.ToByteArray();
    }

    public static void AppendInPlace(ModelProto model, PoolingModes modes = PoolingModes.Mean)
    {
        if (modes == PoolingModes.None)
        {
            throw new ArgumentException("No pooling mode is on.", nameof(modes));
        }

        if (!model.Graph.Input.Any(i => i.Name == "attention_mask"))
        {
            throw new InvalidDataException("The graph has no attention_mask input, so padding cannot be left out of the pooling.");
        }

        if (!CanPool(model, modes))
        {
            throw new InvalidDataException($"Pooling '{modes.Describe()}' in the graph needs opset {PositionalOpset} or later; the graph has opset {Opset(model)}.");
        }

        var builder = new Builder(model);
        builder.Commit([.. modes.InOrder().Select(builder.Pool)]);
    }

    private static long Opset(ModelProto model) =>
        model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(1).Max();

    /// <summary>Adds nodes after the encoder's first output; the tensors shared by several modes are made once.</summary>
    private sealed class Builder
    {
        private readonly GraphProto _graph;
        private readonly long _opset;
        private readonly List<NodeProto> _nodes = [];
        private readonly ValueInfoProto _hidden;
        private readonly Dictionary<string, string> _made = [];

        public Builder(ModelProto model)
        {
            _graph = model.Graph;
            _opset = Opset(model);
            _hidden = _graph.Output[0];
        }

        /// <summary>The encoder's hidden states as float32, <c>[batch, tokens, hidden]</c>.</summary>
        private string States => Once("states", () => _hidden.Type.TensorType.ElemType == (int)TensorProto.Types.DataType.Float
            ? _hidden.Name
            : Cast(_hidden.Name, "states"));

        /// <summary>The attention mask as float32, <c>[batch, tokens]</c>.</summary>
        private string Mask => Once("mask", () => Cast("attention_mask", "mask"));

        /// <summary>The mask as <c>[batch, tokens, 1]</c>, to multiply the hidden states with.</summary>
        private string Mask3 => Once("mask3", () => Axes("Unsqueeze", Mask, "mask3", 2, null, _opset >= 13));

        /// <summary>Real tokens per text, <c>[batch, 1]</c>.</summary>
        private string Count => Once("count", () => Axes("ReduceSum", Mask3, "count", 1, 0, _opset >= 13));

        /// <summary>The sum of the real tokens' vectors, <c>[batch, hidden]</c>.</summary>
        private string Sum => Once("sum", () => Axes("ReduceSum", Add("Mul", "masked", States, Mask3), "sum", 1, 0, _opset >= 13));

        private string FlooredCount => Once("floored", () => Add("Max", "floored", Count, Constant("floor", 1e-9f)));

        /// <summary>1, 2, 3, ... on real tokens, then the count again on padding (the running sum of the mask), <c>[batch, tokens]</c>.</summary>
        private string Positions => Once("positions", () => Add("CumSum", "positions", Mask, Int64Constant("positions_axis", 1)));

        public string Pool(PoolingModes mode) => mode switch
        {
            PoolingModes.Mean => Add("Div", "mean", Sum, FlooredCount),
            PoolingModes.MeanSqrtLen => Add("Div", "mean_sqrt_len", Sum, Add("Sqrt", "sqrt_count", FlooredCount)),
            PoolingModes.Max => MaxPool(),
            PoolingModes.Cls => Node("Gather", "cls", [States, Int64Scalar("first", 0)], ("axis", 1)),
            PoolingModes.WeightedMean => WeightedMean(),
            PoolingModes.LastToken => LastToken(),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Not one pooling mode."),
        };

        private string MaxPool()
        {
            // hidden × mask + (mask − 1) × 1e9: the hidden value itself on real tokens, exactly -1e9 on padding.
            var penalty = Add("Mul", "max_penalty", Add("Sub", "mask_minus_one", Mask3, Constant("one", 1f)), Constant("big", 1e9f));
            var filled = Add("Add", "max_filled", Add("Mul", "masked", States, Mask3), penalty);
            return Axes("ReduceMax", filled, "max", 1, 0, _opset >= 18);
        }

        private string WeightedMean()
        {
            var weights = Add("Mul", "weights", Positions, Mask);
            var weights3 = Axes("Unsqueeze", weights, "weights3", 2, null, _opset >= 13);
            var sum = Axes("ReduceSum", Add("Mul", "weighted", States, weights3), "weighted_sum", 1, 0, _opset >= 13);
            var total = Axes("ReduceSum", weights3, "weights_total", 1, 0, _opset >= 13);
            return Add("Div", "weightedmean", sum, Add("Max", "weights_floored", total, Constant("floor", 1e-9f)));
        }

        private string LastToken()
        {
            // One on the last real token, zero elsewhere: where the running sum reaches the count, on a real token.
            var isLast = Add("Equal", "at_count", Positions, Count);
            var last = Add("Mul", "last_weight", Cast(isLast, "at_count_float"), Mask);
            var last3 = Axes("Unsqueeze", last, "last3", 2, null, _opset >= 13);
            return Axes("ReduceSum", Add("Mul", "last_masked", States, last3), "lasttoken", 1, 0, _opset >= 13);
        }

        /// <summary>Concatenates the pooled vectors, appends the nodes and makes the result the graph's only output.</summary>
        public void Commit(IReadOnlyList<string> pooled)
        {
            var concat = new NodeProto { OpType = "Concat", Name = OutputName, Output = { OutputName } };
            concat.Input.Add(pooled);
            concat.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            _nodes.Add(concat);
            _graph.Node.Add(_nodes);
            var modes = pooled.Count;
            var dims = _hidden.Type.TensorType.Shape?.Dim;
            var width = dims is { Count: 3 } && dims[2].HasDimValue
                ? new TensorShapeProto.Types.Dimension { DimValue = dims[2].DimValue * modes }
                : new TensorShapeProto.Types.Dimension { DimParam = "pooled" };
            _graph.Output.Clear();
            _graph.Output.Add(new ValueInfoProto
            {
                Name = OutputName,
                Type = new TypeProto
                {
                    TensorType = new TypeProto.Types.Tensor
                    {
                        ElemType = (int)TensorProto.Types.DataType.Float,
                        Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = "batch" }, width } },
                    },
                },
            });
        }

        private string Once(string key, Func<string> make)
        {
            if (!_made.TryGetValue(key, out var name))
            {
                name = make();
                _made[key] = name;
            }

            return name;
        }

        private string Add(string op, string name, params string[] inputs) => Node(op, name, inputs, null);

        private string Node(string op, string name, string[] inputs, (string Name, long Value)? attribute)
        {
            var output = Prefix + name;
            if (_nodes.Any(n => n.Output.Contains(output)))
            {
                return output; // made already for another mode
            }

            var node = new NodeProto { OpType = op, Name = output, Output = { output } };
            node.Input.Add(inputs);
            if (attribute is { } a)
            {
                node.Attribute.Add(new AttributeProto { Name = a.Name, Type = AttributeProto.Types.AttributeType.Int, I = a.Value });
            }

            _nodes.Add(node);
            return output;
        }

        private string Cast(string input, string name)
        {
            var output = Prefix + name;
            _nodes.Add(new NodeProto
            {
                OpType = "Cast",
                Name = output,
                Input = { input },
                Output = { output },
                Attribute = { new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Float } },
            });
            return output;
        }

        private string Constant(string name, float value) => Once("const_" + name, () =>
        {
            _graph.Initializer.Add(new TensorProto { Name = Prefix + name, DataType = (int)TensorProto.Types.DataType.Float, FloatData = { value } });
            return Prefix + name;
        });

        private string Int64Scalar(string name, long value) => Once("const_" + name, () =>
        {
            _graph.Initializer.Add(new TensorProto { Name = Prefix + name, DataType = (int)TensorProto.Types.DataType.Int64, Int64Data = { value } });
            return Prefix + name;
        });

        private string Int64Constant(string name, long value) => Once("const_" + name, () =>
        {
            _graph.Initializer.Add(new TensorProto { Name = Prefix + name, DataType = (int)TensorProto.Types.DataType.Int64, Dims = { 1 }, Int64Data = { value } });
            return Prefix + name;
        });

        /// <summary>An op over one axis, which takes its axes as an input from <paramref name="axesAsInput"/>'s opset on and as an attribute before.</summary>
        private string Axes(string op, string input, string name, long axis, long? keepDims, bool axesAsInput)
        {
            var output = Prefix + name;
            if (_nodes.Any(n => n.Output.Contains(output)))
            {
                return output;
            }

            var node = new NodeProto { OpType = op, Name = output, Input = { input }, Output = { output } };
            if (axesAsInput)
            {
                node.Input.Add(Int64Constant($"axes_{axis}", axis));
            }
            else
            {
                node.Attribute.Add(new AttributeProto { Name = "axes", Type = AttributeProto.Types.AttributeType.Ints, Ints = { axis } });
            }

            if (keepDims is { } keep)
            {
                node.Attribute.Add(new AttributeProto { Name = "keepdims", Type = AttributeProto.Types.AttributeType.Int, I = keep });
            }

            _nodes.Add(node);
            return output;
        }
    }
}
