using System.Globalization;
using Onnx;

namespace OrleansGpu.Inference.Graphs;

/// <summary>
/// Appends nodes and initializers to an ONNX graph under generated, readable names (<c>scope/hint_N</c>). Small
/// constants live in the protobuf; weights go to the <see cref="ExternalWeightsFile"/>.
/// </summary>
internal sealed class OnnxGraphWriter(GraphProto graph, ExternalWeightsFile weights)
{
    public const string MicrosoftDomain = "com.microsoft";

    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private int _next;

    public GraphProto Graph { get; } = graph;

    /// <summary>Prefix of the names made while it is set (for instance <c>layer.3/attention</c>).</summary>
    public string Scope { get; set; } = "";

    public string Name(string hint) => $"{(Scope.Length > 0 ? Scope + "/" : "")}{hint}_{_next++}";

    /// <summary>Adds a node with one output and returns the output's name.</summary>
    public string Op(string opType, string hint, IEnumerable<string> inputs, params AttributeProto[] attributes) =>
        Op(opType, hint, inputs, 1, "", attributes)[0];

    /// <summary>Adds a node of the <c>com.microsoft</c> domain with one output.</summary>
    public string MsOp(string opType, string hint, IEnumerable<string> inputs, params AttributeProto[] attributes) =>
        Op(opType, hint, inputs, 1, MicrosoftDomain, attributes)[0];

    public string[] Op(string opType, string hint, IEnumerable<string> inputs, int outputs, string domain, params AttributeProto[] attributes)
    {
        var name = Name(hint);
        var node = new NodeProto { OpType = opType, Name = name, Domain = domain };
        node.Input.Add(inputs);
        var names = outputs == 1 ? [name] : Enumerable.Range(0, outputs).Select(i => $"{name}.{i}").ToArray();
        node.Output.Add(names);
        node.Attribute.Add(attributes);
        Graph.Node.Add(node);
        return names;
    }

    /// <summary>A float32 weight in the external file.</summary>
    public string Weight(string name, ReadOnlySpan<float> data, params long[] dims)
    {
        Graph.Initializer.Add(weights.Write(name, data, dims));
        return name;
    }

    /// <summary>A float16 weight in the external file.</summary>
    public string Weight(string name, ReadOnlySpan<Half> data, params long[] dims)
    {
        Graph.Initializer.Add(weights.Write(name, data, dims));
        return name;
    }

    /// <summary>A 1-D int64 constant.</summary>
    public string Int64s(params long[] values) => Constant($"i64[{string.Join(',', values)}]", () =>
    {
        var t = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64, Dims = { values.Length } };
        t.Int64Data.Add(values);
        return t;
    });

    /// <summary>A 0-D int64 constant.</summary>
    public string Int64Scalar(long value) => Constant($"i64:{value}", () =>
        new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64, Int64Data = { value } });

    /// <summary>A 0-D float32 constant.</summary>
    public string Float(float value) => Constant($"f32:{BitConverter.SingleToInt32Bits(value).ToString(CultureInfo.InvariantCulture)}", () =>
        new TensorProto { DataType = (int)TensorProto.Types.DataType.Float, FloatData = { value } });

    /// <summary>A 0-D float16 constant (the value rounded to the nearest float16).</summary>
    public string Float16(float value)
    {
        var bits = BitConverter.HalfToUInt16Bits((Half)value);
        return Constant($"f16:{bits.ToString(CultureInfo.InvariantCulture)}", () =>
            new TensorProto { DataType = (int)TensorProto.Types.DataType.Float16, Int32Data = { bits } });
    }

    /// <summary>A 1-D int64 table too long to spell in a name (a relative-position lookup).</summary>
    public string Int64Table(string name, long[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, Dims = { values.Length } };
        t.Int64Data.Add(values);
        Graph.Initializer.Add(t);
        return name;
    }

    private string Constant(string key, Func<TensorProto> make)
    {
        if (!_constants.TryGetValue(key, out var name))
        {
            name = $"const/{key}";
            var tensor = make();
            tensor.Name = name;
            Graph.Initializer.Add(tensor);
            _constants[key] = name;
        }

        return name;
    }

    public static AttributeProto Attr(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Attr(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attr(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.Add(values);
        return a;
    }

    public static ValueInfoProto Tensor(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                string p => new TensorShapeProto.Types.Dimension { DimParam = p },
                int v => new TensorShapeProto.Types.Dimension { DimValue = v },
                long v => new TensorShapeProto.Types.Dimension { DimValue = v },
                _ => throw new ArgumentException($"dimension {d}", nameof(dims)),
            });
        }

        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }
}
