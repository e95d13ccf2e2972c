using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onnx;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Files;
using OrleansGpu.Inference.Graphs.Families;

namespace OrleansGpu.Inference.Graphs;

/// <summary>Which operators a native graph is written with.</summary>
public enum GraphVariant
{
    /// <summary>Standard ONNX operators only (opset 17): the reference, and the fallback.</summary>
    Plain,

    /// <summary>ONNX Runtime's fused <c>com.microsoft</c> kernels (Attention, MultiHeadAttention, SkipLayerNormalization, BiasGelu).</summary>
    Fused,
}

/// <summary>The precision a native graph computes in.</summary>
public enum GraphPrecision
{
    /// <summary>float32 throughout: the results the oracles check, and the default.</summary>
    Fp32,

    /// <summary>
    /// float16 weights and matrix products (attention included), with the residual stream, LayerNorm and softmax in
    /// float32; outputs float32. For CUDA, where float16 products run on tensor cores.
    /// </summary>
    Fp16,
}

/// <summary>How a native graph is built.</summary>
public sealed record NativeGraphOptions
{
    public GraphVariant Variant { get; init; } = NativeEncoderGraphs.DefaultVariant;

    /// <summary>
    /// Run each layer's per-token work (projections, feed-forward, LayerNorm) on the real tokens only, gathered by the
    /// attention mask, instead of on every padded position; inputs and outputs keep their padded shapes.
    /// </summary>
    public bool Packed { get; init; } = NativeEncoderGraphs.DefaultPacked;

    public GraphPrecision Precision { get; init; } = GraphPrecision.Fp32;

    /// <summary>
    /// Also output every hidden state up to the one asked for, as <c>hidden_states.K</c> (K = 0 is the embedding
    /// output), after the main output. For checking a graph layer by layer.
    /// </summary>
    public bool ExposeAllLayers { get; init; }
}

/// <summary>A built graph: the <c>.onnx</c> file, with its weights file beside it.</summary>
/// <param name="OnnxPath">Open a session from this path; ONNX Runtime reads the external weights from its folder.</param>
/// <param name="Built">Whether this call built it (false: it came from the cache).</param>
public sealed record NativeGraph(string OnnxPath, bool Built)
{
    /// <summary>The folder of the graph and its weights: where ONNX Runtime must look for external data when the graph is opened from bytes.</summary>
    public string Folder => Path.GetDirectoryName(OnnxPath)!;
}

/// <summary>
/// Builds an encoder's ONNX graph from its <c>config.json</c> and its weights (<see cref="ICheckpoint"/>, base-model
/// names), for BERT, RoBERTa / XLM-RoBERTa / CamemBERT, DistilBERT, DeBERTa v1, DeBERTa v2/v3 and MPNet, with the
/// forward pass of transformers 4.30 in float32. Inputs <c>input_ids</c> and <c>attention_mask</c> (int64,
/// <c>[batch, sequence]</c>, right-padded); output <see cref="OutputName"/>, the hidden states
/// <c>[batch, sequence, hidden]</c> of the layer asked for (0 = embedding output), and only the layers up to it are
/// built. Weights are written beside the graph in the layout it uses, never into the protobuf; built graphs are cached.
/// </summary>
public static class NativeEncoderGraphs
{
    /// <summary>Bump whenever a graph built from the same inputs would change: it keys the cache.</summary>
    public const string BuilderVersion = "2";

    public const string OutputName = "last_hidden_state";

    public const string ModelFileName = "model.onnx";

    public const string WeightsFileName = "model.onnx.data";

    /// <summary>Written last, before the folder is renamed into place: a folder without it (or with files of other sizes) is not used.</summary>
    public const string ManifestFileName = "build.json";

    private const string BuildingPrefix = ".building-";

    private static readonly ConcurrentDictionary<string, Lock> KeyLocks = new(StringComparer.Ordinal);

    /// <summary>The variant used when none is asked for: fused, whose results equal the plain graph's within the oracles' 1e-5.</summary>
    public static GraphVariant DefaultVariant => GraphVariant.Fused;

    /// <summary>
    /// Whether graphs pack their tokens when not told: yes, since a pass then costs its real tokens and the results
    /// equal the padded graph's within the oracles' 1e-5 (docs/PERFORMANCE.md has the CPU figures).
    /// </summary>
    public static bool DefaultPacked => true;

    /// <summary>Returns the cached graph for these inputs, building it first when there is none; see <see cref="GetOrBuildGraph"/>.</summary>
    public static string GetOrBuild(
        string modelDirectory, ICheckpoint checkpoint, ModelArchitectureConfig config, int? layers, string cacheDirectory, NativeGraphOptions? options = null) =>
        GetOrBuildGraph(modelDirectory, checkpoint, config, layers, cacheDirectory, options).OnnxPath;

    /// <summary>
    /// The graph for these inputs from <paramref name="cacheDirectory"/>, built there first if it is not yet: in a
    /// folder named by <see cref="CacheKey"/>. The folder is written under a temporary name and renamed when complete,
    /// so a crash never leaves a folder that would be used. One build per graph on the machine: the processes that
    /// share the cache (the silos of a machine, <c>Silo.Gpu fetch</c>) take a lock file per graph
    /// (<see cref="LockPath"/>), so one builds while the others wait, then open what it built.
    /// </summary>
    /// <param name="layers">The hidden state to output (0 = embeddings); null for the last layer.</param>
    /// <param name="logger">Hears when this call waits for another process's build of the same graph.</param>
    public static NativeGraph GetOrBuildGraph(
        string modelDirectory,
        ICheckpoint checkpoint,
        ModelArchitectureConfig config,
        int? layers,
        string cacheDirectory,
        NativeGraphOptions? options = null,
        ILogger? logger = null)
    {
        options ??= new NativeGraphOptions();
        var layer = ResolveLayers(config, layers);
        var key = CacheKey(modelDirectory, checkpoint, config, layer, options);
        Directory.CreateDirectory(cacheDirectory);
        var final = Path.Combine(cacheDirectory, key);
        var onnx = Path.Combine(final, ModelFileName);
        if (IsComplete(final))
        {
            return new NativeGraph(onnx, Built: false);
        }

        lock (KeyLocks.GetOrAdd(key, _ => new Lock()))
        {
            using var machineLock = FileLock.Acquire(
                LockPath(cacheDirectory, key), logger ?? NullLogger.Instance, $"another process's build of the {config.ModelType} graph {key} ({layer} layers)");
            if (IsComplete(final))
            {
                return new NativeGraph(onnx, Built: false);
            }

            RemoveLeftovers(cacheDirectory, key, final);
            var temporary = Path.Combine(cacheDirectory, $"{BuildingPrefix}{key}-{Guid.NewGuid():N}");
            try
            {
                Build(checkpoint, config, layer, temporary, options);
                Directory.Move(temporary, final);
            }
            catch (IOException) when (IsComplete(final))
            {
                // A builder that took no lock renamed the same graph into place first; theirs is as good.
                TryDelete(temporary);
                return new NativeGraph(onnx, Built: false);
            }
            catch
            {
                TryDelete(temporary);
                throw;
            }

            return new NativeGraph(onnx, Built: true);
        }
    }

    /// <summary>The lock file a build of the graph <paramref name="key"/> holds: beside its folder, <c>{key}.lock</c>.</summary>
    public static string LockPath(string cacheDirectory, string key) => Path.Combine(cacheDirectory, key + ".lock");

    /// <summary>
    /// Builds the graph into <paramref name="outputDirectory"/> (created; it must not hold a graph already) and
    /// returns the <c>.onnx</c> path. No cache: <see cref="GetOrBuildGraph"/> is the one to call when serving.
    /// </summary>
    public static string Build(ICheckpoint checkpoint, ModelArchitectureConfig config, int? layers, string outputDirectory, NativeGraphOptions? options = null)
    {
        options ??= new NativeGraphOptions();
        var layer = ResolveLayers(config, layers);
        Directory.CreateDirectory(outputDirectory);
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "OrleansGpu.NativeEncoderGraphs",
            ProducerVersion = BuilderVersion,
            OpsetImport =
            {
                new OperatorSetIdProto { Domain = "", Version = 17 },
                new OperatorSetIdProto { Domain = OnnxGraphWriter.MicrosoftDomain, Version = 1 },
            },
            Graph = new GraphProto { Name = $"{config.ModelType}_layer_{layer}_{Describe(options)}" },
        };

        var graph = model.Graph;
        graph.Input.Add(OnnxGraphWriter.Tensor(EncoderGraph.InputIds, TensorProto.Types.DataType.Int64, "batch", "sequence"));
        graph.Input.Add(OnnxGraphWriter.Tensor(EncoderGraph.AttentionMask, TensorProto.Types.DataType.Int64, "batch", "sequence"));

        using (var weights = new ExternalWeightsFile(outputDirectory, WeightsFileName))
        {
            var writer = new OnnxGraphWriter(graph, weights);
            var encoder = new EncoderGraph(writer, checkpoint, config, options);
            var family = EncoderFamily.For(encoder);

            writer.Scope = "embeddings";
            var states = new List<string> { family.Embeddings() };
            for (var i = 0; i < layer; i++)
            {
                writer.Scope = $"layer.{i}";
                states.Add(family.Layer(i, states[^1]));
            }

            writer.Scope = "";
            AddOutput(graph, states[^1], OutputName, config.HiddenSize);
            if (options.ExposeAllLayers)
            {
                for (var k = 0; k < states.Count; k++)
                {
                    AddOutput(graph, states[k], $"hidden_states.{k}", config.HiddenSize);
                }
            }

            weights.Flush();
        }

        var onnx = Path.Combine(outputDirectory, ModelFileName);
        using (var stream = new FileStream(onnx, FileMode.CreateNew, FileAccess.Write))
        {
            model.WriteTo(stream);
            stream.Flush(flushToDisk: true);
        }

        WriteManifest(outputDirectory, config, layer, options);
        return onnx;
    }

    /// <summary>
    /// The cache folder's name for these inputs (a SHA-256, hex): the builder version, the config, the layer count,
    /// the options, the checkpoint's tensor list and the identity of the weight files in
    /// <paramref name="modelDirectory"/> (see <see cref="WeightFileIdentities"/>), which is the same on every machine
    /// that holds the same files, so a cache copied with the models is used there as it is.
    /// </summary>
    public static string CacheKey(string modelDirectory, ICheckpoint checkpoint, ModelArchitectureConfig config, int layers, NativeGraphOptions options)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"builder {BuilderVersion}\nconfig {config.ModelType} {config.Fingerprint}\nlayers {layers}\n");
        text.Append(CultureInfo.InvariantCulture, $"variant {options.Variant}\npacked {options.Packed}\nprecision {options.Precision}\nall layers {options.ExposeAllLayers}\n");
        foreach (var file in WeightFileIdentities(modelDirectory))
        {
            text.Append("file ").Append(file).Append('\n');
        }

        text.Append(CultureInfo.InvariantCulture, $"checkpoint {checkpoint.GetType().FullName}\n");
        foreach (var name in checkpoint.Names.Order(StringComparer.Ordinal))
        {
            text.Append(checkpoint.Info(name)).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>The options as a short label: <c>fused_packed_fp32</c>.</summary>
    public static string Describe(NativeGraphOptions options) =>
        $"{options.Variant.ToString().ToLowerInvariant()}_{(options.Packed ? "packed" : "padded")}_{options.Precision.ToString().ToLowerInvariant()}";

    private static int ResolveLayers(ModelArchitectureConfig config, int? layers)
    {
        var layer = layers ?? config.NumHiddenLayers;
        if (layer < 0 || layer > config.NumHiddenLayers)
        {
            throw new ArgumentOutOfRangeException(
                nameof(layers),
                layer,
                $"This {config.ModelType} model has {config.NumHiddenLayers} layers: ask for a hidden state from 0 (the embedding output) to {config.NumHiddenLayers}.");
        }

        return layer;
    }

    private static void AddOutput(GraphProto graph, string tensor, string name, int hidden)
    {
        graph.Node.Add(new NodeProto { OpType = "Identity", Name = name, Input = { tensor }, Output = { name } });
        graph.Output.Add(OnnxGraphWriter.Tensor(name, TensorProto.Types.DataType.Float, "batch", "sequence", hidden));
    }

    /// <summary>
    /// The files a checkpoint may be read from (safetensors, PyTorch pickles, shard indexes, ONNX exports), each as its name and
    /// what identifies its content: in the Hugging Face cache, where the file is a link to a blob named by its content's
    /// sha256 (or git sha1), that name; elsewhere its size and modification time, which copies that keep times
    /// (<c>cp -a</c>, <c>rsync -a</c>) keep. Not the path: the same files under another folder are the same graph.
    /// </summary>
    private static IEnumerable<string> WeightFileIdentities(string modelDirectory)
    {
        if (!Directory.Exists(modelDirectory))
        {
            yield break;
        }

        // An export counts too: a graph of another precision may be built from the weights inside it.
        string[] patterns = ["*.safetensors", "*.bin", "*.pt", "*.pth", "*.index.json", "*.onnx"];
        foreach (var path in patterns.SelectMany(p => Directory.EnumerateFiles(modelDirectory, p)).Distinct().Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(path);
            var target = info.LinkTarget is null ? null : info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
            var name = Path.GetFileName(path);
            yield return target is not null && IsContentHash(target.Name)
                ? $"{name} blob {target.Name}"
                : string.Create(CultureInfo.InvariantCulture, $"{name} {(target ?? info).Length} {(target ?? info).LastWriteTimeUtc.Ticks}");
        }
    }

    /// <summary>A sha256 (LFS files) or git sha1 (small files) in hex: how the Hugging Face cache names its blobs.</summary>
    private static bool IsContentHash(string name) => name.Length is 64 or 40 && name.All(char.IsAsciiHexDigitLower);

    private static void WriteManifest(string directory, ModelArchitectureConfig config, int layers, NativeGraphOptions options)
    {
        var manifest = new Manifest(
            BuilderVersion,
            config.ModelType,
            layers,
            options.Variant.ToString().ToLowerInvariant(),
            options.Packed,
            options.Precision.ToString().ToLowerInvariant(),
            options.ExposeAllLayers,
            new FileInfo(Path.Combine(directory, ModelFileName)).Length,
            new FileInfo(Path.Combine(directory, WeightsFileName)).Length,
            DateTimeOffset.UtcNow);
        using var stream = new FileStream(Path.Combine(directory, ManifestFileName), FileMode.CreateNew, FileAccess.Write);
        JsonSerializer.Serialize(stream, manifest, ManifestJson);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Whether <paramref name="directory"/> holds a finished build: a manifest that reads, and both files at the sizes it records.</summary>
    private static bool IsComplete(string directory)
    {
        try
        {
            var manifestPath = Path.Combine(directory, ManifestFileName);
            if (!File.Exists(manifestPath))
            {
                return false;
            }

            var manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllBytes(manifestPath), ManifestJson);
            var onnx = new FileInfo(Path.Combine(directory, ModelFileName));
            var weights = new FileInfo(Path.Combine(directory, WeightsFileName));
            return manifest is not null && manifest.BuilderVersion == BuilderVersion
                && onnx.Exists && onnx.Length == manifest.OnnxBytes
                && weights.Exists && weights.Length == manifest.WeightBytes;
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Removes what a failed or crashed build of this key left: the final folder if it is incomplete, and its
    /// temporary folders. Called with the key's lock held, so no build can still be writing them.
    /// </summary>
    private static void RemoveLeftovers(string cacheDirectory, string key, string final)
    {
        if (Directory.Exists(final))
        {
            TryDelete(final);
        }

        foreach (var stale in Directory.EnumerateDirectories(cacheDirectory, $"{BuildingPrefix}{key}-*"))
        {
            TryDelete(stale);
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Left for the next build of this key to remove.
        }
    }

    private static readonly JsonSerializerOptions ManifestJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    private sealed record Manifest(
        string BuilderVersion,
        string ModelType,
        int Layers,
        string Variant,
        bool Packed,
        string Precision,
        bool ExposeAllLayers,
        long OnnxBytes,
        long WeightBytes,
        DateTimeOffset BuiltAt);
}
