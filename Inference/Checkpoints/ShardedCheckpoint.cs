using System.Text.Json;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// Weights split over several files, as large hub models store them: an index (<c>model.safetensors.index.json</c>
/// or <c>pytorch_model.bin.index.json</c>) whose <c>weight_map</c> names the shard holding each tensor. The shards
/// are opened together (each is a mapping, so this costs no memory) and disposed together; tensors a shard holds
/// that the map does not list are served too, as transformers loads every tensor of every shard.
/// </summary>
public sealed class ShardedCheckpoint : ICheckpoint
{
    private readonly ICheckpoint[] _shards;
    private readonly Dictionary<string, ICheckpoint> _owners;

    private ShardedCheckpoint(ICheckpoint[] shards, Dictionary<string, ICheckpoint> owners)
    {
        _shards = shards;
        _owners = owners;
    }

    public IReadOnlyCollection<string> Names => _owners.Keys;

    /// <summary>The shard files, in the order the index first names them.</summary>
    public IReadOnlyList<string> ShardFiles { get; private init; } = [];

    /// <summary>Opens the index at <paramref name="indexPath"/> and every shard it names (each with <paramref name="openShard"/>).</summary>
    public static ShardedCheckpoint Open(string indexPath, Func<string, ICheckpoint> openShard)
    {
        var indexName = Path.GetFileName(indexPath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var weightMap = ReadWeightMap(indexPath, indexName);
        var files = weightMap.Values.Distinct(StringComparer.Ordinal).ToList();
        var opened = new Dictionary<string, ICheckpoint>(StringComparer.Ordinal);
        try
        {
            foreach (var file in files)
            {
                opened[file] = openShard(ShardPath(directory, indexName, file));
            }

            var owners = new Dictionary<string, ICheckpoint>(StringComparer.Ordinal);
            foreach (var (name, file) in weightMap)
            {
                owners[name] = opened[file].Contains(name)
                    ? opened[file]
                    : throw new CheckpointException($"{indexName} places {name} in {file}, which has no such tensor.");
            }

            foreach (var shard in opened.Values)
            {
                foreach (var name in shard.Names)
                {
                    owners.TryAdd(name, shard);
                }
            }

            return new ShardedCheckpoint([.. opened.Values], owners) { ShardFiles = files };
        }
        catch
        {
            foreach (var shard in opened.Values)
            {
                shard.Dispose();
            }

            throw;
        }
    }

    public bool Contains(string name) => _owners.ContainsKey(name);

    public TensorInfo Info(string name) => Owner(name).Info(name);

    public float[] ReadFloat32(string name) => Owner(name).ReadFloat32(name);

    public byte[] ReadBytes(string name) => Owner(name).ReadBytes(name);

    public bool TryGetFloat32Memory(string name, out ReadOnlyMemory<float> data) => Owner(name).TryGetFloat32Memory(name, out data);

    public void Dispose()
    {
        foreach (var shard in _shards)
        {
            shard.Dispose();
        }
    }

    private ICheckpoint Owner(string name) =>
        _owners.TryGetValue(name, out var shard) ? shard : throw new CheckpointException($"The sharded checkpoint has no tensor named {name}.");

    private static Dictionary<string, string> ReadWeightMap(string indexPath, string indexName)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{indexName} has no weight_map object.");
            }

            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                weightMap[entry.Name] = entry.Value.ValueKind == JsonValueKind.String
                    ? entry.Value.GetString()!
                    : throw new CheckpointException($"{indexName} maps {entry.Name} to {entry.Value.ValueKind}, not a file name.");
            }

            return weightMap.Count > 0 ? weightMap : throw new CheckpointException($"{indexName} has an empty weight_map.");
        }
        catch (JsonException ex)
        {
            throw new CheckpointException($"{indexName} is not valid JSON: {ex.Message}", ex);
        }
    }

    /// <summary>A shard's path beside the index; a name that would leave the model's folder is refused.</summary>
    private static string ShardPath(string directory, string indexName, string file)
    {
        var path = Path.GetFullPath(Path.Combine(directory, file));
        if (Path.IsPathRooted(file) || file.Split('/', '\\').Contains("..") || !path.StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new CheckpointException($"{indexName} names the shard '{StateDictUnpickler.Sanitize(file)}', which is not a file in the model's folder.");
        }

        return File.Exists(path)
            ? path
            : throw new CheckpointException($"{indexName} names the shard {StateDictUnpickler.Sanitize(file)}, which is missing from the model's folder.");
    }
}
