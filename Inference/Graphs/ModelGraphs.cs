using System.Diagnostics;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onnx;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Inference.Graphs;

/// <summary>
/// The one place that decides which ONNX graph a model is served with. A model folder with an ONNX export is served
/// from it (cut at the layer asked for, in memory, as <see cref="LayerCut"/> cuts it). Any other is served from a
/// graph the native builder makes from its checkpoint (safetensors or PyTorch, <see cref="ModelWeights"/>) with
/// exactly the layers asked for, kept in <see cref="CacheDirectory"/>: a restart, and every other process of the
/// machine that shares the folder, opens it without building it again, and two that ask at once build it once.
/// </summary>
public sealed class ModelGraphs(string cacheDirectory, ILogger? logger = null, NativeGraphOptions? options = null)
{
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly NativeGraphOptions _options = options ?? new NativeGraphOptions();

    // The built graphs handed out per model folder, so that a model that then fails to open can have them set aside.
    // Shared with the instances of other precisions (WithPrecision), so that discarding a damaged model's graphs takes all of them.
    private System.Collections.Concurrent.ConcurrentDictionary<string, System.Collections.Concurrent.ConcurrentDictionary<string, byte>> _handedOut = new(StringComparer.Ordinal);

    /// <summary>Where built graphs are kept (<c>GRAPHS_DIR</c>; default <see cref="CacheFolders.Graphs"/>).</summary>
    public string CacheDirectory { get; } = Path.GetFullPath(cacheDirectory);

    /// <summary>The precision of the graphs this instance gives: fp32 (the default, what the oracles check) or fp16.</summary>
    public GraphPrecision Precision => _options.Precision;

    /// <summary>
    /// The same cache, giving graphs of <paramref name="precision"/>. The precision is part of every built graph's
    /// cache key, so fp16 and fp32 graphs of one model are separate folders and separate sessions.
    /// </summary>
    public ModelGraphs WithPrecision(GraphPrecision precision) =>
        precision == _options.Precision ? this : new ModelGraphs(CacheDirectory, _logger, _options with { Precision = precision }) { _handedOut = _handedOut };

    /// <summary>The model's number of layers: its hidden states are 0 (the embeddings) to this.</summary>
    public int LayerCount(ModelFolder folder)
    {
        if (folder.Weights.OnnxPath is { } onnx)
        {
            // Parsing an export costs seconds and gigabytes for the large models, so only when config.json is silent.
            return folder.Config.NumHiddenLayers ?? LayerCut.CountLayers(ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx)));
        }

        return ModelSupport.Architecture(folder.Name, folder.Directory).NumHiddenLayers;
    }

    /// <summary>
    /// The graph whose output is the hidden state of <paramref name="layer"/> (null: the last layer): the export, or
    /// the native graph of that many layers, built now when the cache does not hold it. Throws the model's client
    /// errors: <see cref="ModelNotSupportedException"/> (an architecture or setting the builder does not build),
    /// <see cref="ModelUnreadableException"/> (weights that cannot be read), <see cref="InvalidModelException"/>
    /// (weights that do not fit the config). For fp16 (<see cref="Precision"/>) a model served from an ONNX export is
    /// converted: the native fp16 graph is built from the export's own weights (<see cref="OnnxExportCheckpoint"/>);
    /// an export that cannot be converted throws <see cref="PrecisionUnavailableException"/>.
    /// </summary>
    public LayerGraph Get(ModelFolder folder, int? layer = null)
    {
        if (folder.Weights.OnnxPath is { } onnx)
        {
            if (_options.Precision != GraphPrecision.Fp32)
            {
                return FromExport(folder, onnx, layer);
            }

            var total = LayerCount(folder);
            return new LayerGraph(onnx, layer ?? total, total);
        }

        return Native(folder, layer);
    }

    /// <summary>The native graph of <paramref name="layer"/> built from the weights inside an export (another precision than the export's).</summary>
    private LayerGraph FromExport(ModelFolder folder, string onnx, int? layer)
    {
        try
        {
            var config = ModelSupport.Architecture(folder.Name, folder.Directory);
            var at = layer ?? config.NumHiddenLayers;
            using var checkpoint = OnnxExportCheckpoint.Open(onnx);
            var graph = NativeEncoderGraphs.GetOrBuildGraph(folder.Directory, checkpoint, config, at, CacheDirectory, _options, _logger);
            _logger.LogInformation(
                "{Action} the {Precision} graph of {Model} from its ONNX export's weights (layer {Layer} of {Layers}): {Graph}",
                graph.Built ? "Built" : "Using the cached", _options.Precision, folder.Name, at, config.NumHiddenLayers, graph.Folder);
            _handedOut.GetOrAdd(folder.Directory, _ => new(StringComparer.Ordinal))[graph.Folder] = 0;
            return new LayerGraph(graph.OnnxPath, at, at);
        }
        catch (Exception ex) when (ex is ModelNotSupportedException or InvalidModelException or CheckpointException or GraphBuildException or InvalidDataException)
        {
            _logger.LogWarning("The ONNX export of {Model} cannot be converted to {Precision}: {Reason}", folder.Name, _options.Precision, ex.Message);
            throw new PrecisionUnavailableException(folder.Name, _options.Precision, ex.Message, ex);
        }
    }

    /// <summary>
    /// Deletes the built graphs of <paramref name="folder"/> this process used (a model that failed to open may have a
    /// damaged one: a disk error, a copy cut short), so that the next load builds them again. Deleting is always safe.
    /// Returns the folders deleted.
    /// </summary>
    public IReadOnlyList<string> Discard(ModelFolder folder)
    {
        if (!_handedOut.TryRemove(folder.Directory, out var graphs))
        {
            return [];
        }

        var deleted = new List<string>();
        foreach (var graph in graphs.Keys.Where(g => g.StartsWith(CacheDirectory, StringComparison.Ordinal)))
        {
            try
            {
                Directory.Delete(graph, recursive: true);
                deleted.Add(graph);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning("Could not delete the graph {Graph}: {Reason}", graph, ex.Message);
            }
        }

        return deleted;
    }

    private LayerGraph Native(ModelFolder folder, int? layer)
    {
        var config = ModelSupport.Architecture(folder.Name, folder.Directory);
        var at = layer ?? config.NumHiddenLayers;
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var checkpoint = ModelWeights.Open(folder.Directory);
            var graph = NativeEncoderGraphs.GetOrBuildGraph(folder.Directory, checkpoint, config, at, CacheDirectory, _options, _logger);
            _handedOut.GetOrAdd(folder.Directory, _ => new(StringComparer.Ordinal))[graph.Folder] = 0;
            if (graph.Built)
            {
                _logger.LogInformation(
                    "Built the native graph of {Model} ({ModelType}, layer {Layer} of {Layers}, {Variant}) in {Seconds:0.0} s: {Graph}",
                    folder.Name, config.ModelType, at, config.NumHiddenLayers, _options.Variant, Stopwatch.GetElapsedTime(started).TotalSeconds, graph.Folder);
            }
            else
            {
                _logger.LogInformation("Using the cached native graph of {Model} (layer {Layer} of {Layers}): {Graph}", folder.Name, at, config.NumHiddenLayers, graph.Folder);
            }

            return new LayerGraph(graph.OnnxPath, at, at);
        }
        catch (CheckpointException ex)
        {
            _logger.LogError(ex, "The weights of {Model} in {Directory} cannot be read", folder.Name, folder.Directory);
            throw new ModelUnreadableException(
                folder.Name,
                $"this host's copy of its weights cannot be read ({ex.Message.Replace(folder.Directory, "the model's folder", StringComparison.Ordinal)}). "
                + "The file may be damaged or cut short: delete it from the host's cache and fetch the model again (Silo.Gpu fetch).",
                ex);
        }
        catch (GraphBuildException ex)
        {
            _logger.LogWarning("The native graph of {Model} cannot be built: {Reason}", folder.Name, ex.Message);
            throw new InvalidModelException(folder.Name, $"its checkpoint does not fit its config.json: {ex.Message}");
        }
    }
}

/// <summary>
/// A graph whose output is the hidden states of layer <paramref name="Layer"/>, ready to open: the file
/// <paramref name="OnnxPath"/> holds <paramref name="LayersInFile"/> layers and is cut at <paramref name="Layer"/> in
/// memory when it holds more (an export holds every layer; a native graph just those asked for). External weights
/// lie beside the file.
/// </summary>
public sealed record LayerGraph(string OnnxPath, int Layer, int LayersInFile)
{
    /// <summary>Whether the file holds layers past <see cref="Layer"/>, cut away when it is opened.</summary>
    public bool Cut => Layer < LayersInFile;

    /// <summary>The folder ONNX Runtime reads the graph's external weights from, when it is opened from bytes.</summary>
    public string WeightsFolder => Path.GetDirectoryName(OnnxPath)!;

    /// <summary>The weights this graph loads, in bytes: the file's, or about the share of them a cut keeps.</summary>
    public long WeightBytes
    {
        get
        {
            var bytes = Diagnostics.InferenceMetrics.WeightBytes(OnnxPath);
            return Cut && LayersInFile > 0 ? bytes * Layer / LayersInFile : bytes;
        }
    }

    /// <summary>The graph as a protobuf, cut when it must be (weights stay outside when they are external), for appending to it.</summary>
    public ModelProto LoadModel()
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(OnnxPath));
        if (Cut)
        {
            LayerCut.CutInPlace(model, Layer);
        }

        return model;
    }

    /// <summary>Opens an encoder session over the graph.</summary>
    public OnnxEncoder Open(EncoderOptions options) =>
        Cut ? OnnxEncoder.Open(LoadModel().ToByteArray(), WeightsFolder, options) : OnnxEncoder.Open(OnnxPath, options);

    /// <summary>Opens an encoder session over <paramref name="model"/>, this graph changed (pooling appended).</summary>
    public OnnxEncoder Open(ModelProto model, EncoderOptions options) => OnnxEncoder.Open(model.ToByteArray(), WeightsFolder, options);
}

/// <summary>
/// The model cannot be served in <paramref name="precision"/> here: an ONNX export whose weights the native builder
/// cannot take (an architecture it does not build, weights stored outside the protobuf, a graph it cannot name the
/// weights of). Not a client error: the host answers with the export in fp32 and says so.
/// </summary>
public sealed class PrecisionUnavailableException(string model, GraphPrecision precision, string reason, Exception? inner = null)
    : Exception($"Model '{model}' cannot be served in {precision.ToString().ToLowerInvariant()}: {reason}", inner)
{
    public string Model { get; } = model;

    public GraphPrecision Precision { get; } = precision;
}
