namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// Opens a model folder's weights: the first of <see cref="FileNames"/> that is there (safetensors before
/// PyTorch, one file before an index of shards, as transformers prefers them), seen with the base model's names.
/// </summary>
public static class ModelWeights
{
    /// <summary>The weight files read, in the order they are looked for.</summary>
    public static IReadOnlyList<string> FileNames { get; } =
        ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    // Weights other frameworks save; named in the error so that a user knows why they are not used.
    private static readonly string[] UnreadFiles = ["tf_model.h5", "flax_model.msgpack", "model.ckpt.index", "rust_model.ot"];

    /// <summary>The weight file <see cref="Open"/> would read in <paramref name="directory"/>, or null.</summary>
    public static string? Find(string directory) =>
        FileNames.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists);

    /// <summary>
    /// The weights in <paramref name="directory"/> with the base model's names (see <see cref="BaseModelCheckpoint"/>);
    /// a <see cref="CheckpointException"/> when there are none or they cannot be read.
    /// </summary>
    public static BaseModelCheckpoint Open(string directory)
    {
        var path = Find(directory);
        if (path is null)
        {
            var others = UnreadFiles.Where(f => File.Exists(Path.Combine(directory, f))).ToList();
            var note = others.Count > 0 ? $" It has {string.Join(", ", others)}, which this service does not read." : "";
            throw new CheckpointException($"{directory} holds no model weights: none of {string.Join(", ", FileNames)}.{note}");
        }

        return new BaseModelCheckpoint(OpenFile(path));
    }

    /// <summary>
    /// One weight file with its names as stored: an index of shards (<c>*.index.json</c>), or a single file in any
    /// format read here (told by its content, not its name: safetensors, PyTorch zip, PyTorch legacy).
    /// </summary>
    public static ICheckpoint OpenFile(string path) =>
        path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)
            ? ShardedCheckpoint.Open(path, OpenSingleFile)
            : OpenSingleFile(path);

    private static ICheckpoint OpenSingleFile(string path)
    {
        Span<byte> start = stackalloc byte[32];
        int read;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            read = stream.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
        }

        start = start[..read];
        if (ZipDirectory.LooksLikeZip(start) || PyTorchCheckpoint.IsLegacy(start))
        {
            return PyTorchCheckpoint.Open(path);
        }

        // safetensors has no magic number: its header is JSON after an 8-byte length.
        if (read > 8 && start[8] == (byte)'{' || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return SafetensorsCheckpoint.Open(path);
        }

        throw new CheckpointException($"{Path.GetFileName(path)} is not a checkpoint format read here (safetensors, PyTorch zip, PyTorch legacy).");
    }
}
