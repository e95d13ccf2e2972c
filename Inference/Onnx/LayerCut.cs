using Google.Protobuf;
using Onnx;

namespace OrleansGpu.Inference.Onnx;

/// <summary>
/// Rewrites an encoder graph so that it ends at hidden layer L, as bert_score cuts the model
/// (<c>encoder.layer[:L]</c>): the tensor that ends layer L becomes the only output and everything after it is
/// dropped. Layer 0 is the embedding output.
/// </summary>
public static class LayerCut
{
    /// <summary>Counts the encoder layers of a Hugging Face export (<c>encoder.layer.N.*</c> weights).</summary>
    public static int CountLayers(ModelProto model)
    {
        var max = -1;
        foreach (var name in model.Graph.Initializer.Select(i => i.Name).Concat(model.Graph.Node.SelectMany(n => n.Input)))
        {
            if (TryLayerIndex(name, out var index))
            {
                max = Math.Max(max, index);
            }
        }

        return max + 1;
    }

    /// <summary>Returns the bytes of <paramref name="model"/> cut after layer <paramref name="layer"/>.</summary>
    public static byte[] Cut(byte[] model, int layer)
    {
        var proto = ModelProto.Parser.ParseFrom(model);
        CutInPlace(proto, layer);
        return proto.ToByteArray();
    }

    /// <summary>Cuts <paramref name="model"/> after layer <paramref name="layer"/>, in place.</summary>
    public static void CutInPlace(ModelProto model, int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        var graph = model.Graph;
        var layers = CountLayers(model);
        if (layers == 0)
        {
            throw new InvalidDataException("The graph has no encoder.layer.N weights, so its layers cannot be located.");
        }

        if (layer > layers)
        {
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"The model has {layers} layers.");
        }

        var tensor = FindLayerEnd(graph, layer);
        var original = graph.Output[0];
        var output = new ValueInfoProto { Name = tensor, Type = original.Type.Clone() };
        graph.Output.Clear();
        graph.Output.Add(output);
        Prune(graph, tensor);
    }

    /// <summary>
    /// The tensor that ends layer L: the output of the node that applies that layer's final LayerNorm bias
    /// (<c>encoder.layer.{L-1}.output.LayerNorm.bias</c>, or <c>embeddings.LayerNorm.bias</c> for L = 0), whether the
    /// LayerNorm is spelled out (Mul, Add) or fused (LayerNormalization, SkipLayerNormalization).
    /// </summary>
    internal static string FindLayerEnd(GraphProto graph, int layer)
    {
        var bias = FindBiasName(graph, layer);
        var consumer = graph.Node.FirstOrDefault(n => n.Input.Contains(bias))
            ?? throw new InvalidDataException($"No node uses {bias}.");
        return consumer.Output[0];
    }

    private static string FindBiasName(GraphProto graph, int layer)
    {
        var names = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var suffix = layer == 0 ? "embeddings.LayerNorm.bias" : $"encoder.layer.{layer - 1}.output.LayerNorm.bias";
        var found = names.FirstOrDefault(n => n == suffix || n.EndsWith("." + suffix, StringComparison.Ordinal));
        return found ?? throw new InvalidDataException(
            $"Cannot find the end of layer {layer}: the graph has no initializer named {suffix}. "
            + "Export the model with its parameter names kept (torch.onnx.export with do_constant_folding=False or the optimum exporter).");
    }

    /// <summary>Drops every node, initializer and value-info that <paramref name="output"/> does not depend on.</summary>
    private static void Prune(GraphProto graph, string output)
    {
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var o in node.Output)
            {
                producers[o] = node;
            }
        }

        var needed = new HashSet<string>(StringComparer.Ordinal);
        var keep = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<string>();
        stack.Push(output);
        while (stack.Count > 0)
        {
            var tensor = stack.Pop();
            if (!needed.Add(tensor))
            {
                continue;
            }

            if (producers.TryGetValue(tensor, out var node) && keep.Add(node))
            {
                foreach (var input in node.Input.Where(i => i.Length > 0))
                {
                    stack.Push(input);
                }

                // Subgraphs (If/Loop) may read outer tensors by name.
                foreach (var attr in node.Attribute.Where(a => a.G is not null))
                {
                    foreach (var inner in attr.G.Node.SelectMany(n => n.Input))
                    {
                        stack.Push(inner);
                    }
                }
            }
        }

        var kept = graph.Node.Where(keep.Contains).ToList();
        graph.Node.Clear();
        graph.Node.Add(kept);

        var initializers = graph.Initializer.Where(i => needed.Contains(i.Name)).ToList();
        graph.Initializer.Clear();
        graph.Initializer.Add(initializers);

        var valueInfo = graph.ValueInfo.Where(v => needed.Contains(v.Name)).ToList();
        graph.ValueInfo.Clear();
        graph.ValueInfo.Add(valueInfo);
    }

    private static bool TryLayerIndex(string name, out int index)
    {
        const string marker = "encoder.layer.";
        var at = name.IndexOf(marker, StringComparison.Ordinal);
        index = -1;
        if (at < 0)
        {
            return false;
        }

        var start = at + marker.Length;
        var end = start;
        while (end < name.Length && char.IsAsciiDigit(name[end]))
        {
            end++;
        }

        return end > start && int.TryParse(name.AsSpan(start, end - start), out index);
    }
}
