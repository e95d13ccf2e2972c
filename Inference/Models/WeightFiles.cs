using System.Text.Json;

namespace OrleansGpu.Inference.Models;

/// <summary>The form a model's weights take in its folder.</summary>
public enum WeightsFormat
{
    /// <summary>An ONNX export (<c>onnx/model.onnx</c> or <c>model.onnx</c>), opened by ONNX Runtime as it is.</summary>
    Onnx,

    /// <summary><c>model.safetensors</c>, or shards listed by <c>model.safetensors.index.json</c>.</summary>
    Safetensors,

    /// <summary><c>pytorch_model.bin</c> (zip or pre-1.6 legacy format), or shards listed by <c>pytorch_model.bin.index.json</c>.</summary>
    PyTorch,
}

/// <summary>
/// The weights a model folder holds, in the one format we load: an ONNX export when there is one, else a native
/// checkpoint (safetensors before PyTorch), possibly sharded. <see cref="Files"/> are full paths; for a sharded
/// checkpoint they are the shards named by <see cref="Index"/>, in the index's order.
/// </summary>
public sealed record WeightFiles(WeightsFormat Format, IReadOnlyList<string> Files, string? Index = null)
{
    /// <summary>The ONNX file, when the weights are an ONNX export.</summary>
    public string? OnnxPath => Format == WeightsFormat.Onnx ? Files[0] : null;

    /// <summary>The relative paths, in order of preference, of the files that make each format: what a folder is searched for and what a download picks.</summary>
    internal static readonly (WeightsFormat Format, string Path, bool IsIndex)[] Candidates =
    [
        (WeightsFormat.Onnx, "onnx/model.onnx", false),
        (WeightsFormat.Onnx, "model.onnx", false),
        (WeightsFormat.Safetensors, "model.safetensors", false),
        (WeightsFormat.Safetensors, "model.safetensors.index.json", true),
        (WeightsFormat.PyTorch, "pytorch_model.bin", false),
        (WeightsFormat.PyTorch, "pytorch_model.bin.index.json", true),
    ];

    /// <summary>
    /// The weights in <paramref name="directory"/>, or null when it holds none. A sharded checkpoint whose index names a
    /// shard that is missing counts as none: a download still running, or a copy cut short.
    /// </summary>
    public static WeightFiles? Find(string directory)
    {
        foreach (var (format, relative, isIndex) in Candidates)
        {
            var path = Path.Combine(directory, relative);
            if (!File.Exists(path))
            {
                continue;
            }

            if (!isIndex)
            {
                return new WeightFiles(format, [path]);
            }

            var shards = ShardNames(path).Select(s => Path.Combine(directory, s)).ToList();
            if (shards.Count > 0 && shards.All(File.Exists))
            {
                return new WeightFiles(format, shards, path);
            }
        }

        return null;
    }

    /// <summary>The distinct shard files a <c>*.index.json</c> maps tensors to (its <c>weight_map</c> values), in first-use order.</summary>
    public static IReadOnlyList<string> ShardNames(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            return ShardNames(doc.RootElement);
        }
        catch (JsonException)
        {
            return [];
        }
    }

    internal static IReadOnlyList<string> ShardNames(JsonElement index)
    {
        if (index.ValueKind != JsonValueKind.Object
            || !index.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
        {
            return [];
        }

        var names = new List<string>();
        foreach (var entry in map.EnumerateObject())
        {
            // Shards sit beside the index; a name that climbs out of the folder is not one of them.
            if (entry.Value.GetString() is { Length: > 0 } name && !name.Contains('/') && !name.Contains('\\') && name is not ("." or "..")
                && !names.Contains(name))
            {
                names.Add(name);
            }
        }

        return names;
    }
}
