using System.Diagnostics;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.Embeddings;

/// <summary>Per-call embedding settings.</summary>
public sealed record EmbedOptions
{
    /// <summary>
    /// L2-normalise each embedding: true or false as asked; null (the default) as the model's own modules say
    /// (normalised when they end with sentence-transformers' <c>Normalize</c>), as sentence-transformers encodes.
    /// </summary>
    public bool? Normalize { get; init; }

    /// <summary>Cut texts longer than the model's maximum; when false such a text is an error.</summary>
    public bool Truncate { get; init; } = true;

    /// <summary>Texts per forward pass.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>
    /// Padded tokens per forward pass (texts × longest text): long texts go in smaller batches, which bounds the
    /// attention buffers (they grow with the square of the length).
    /// </summary>
    public int MaxBatchTokens { get; init; } = 16_384;
}

/// <summary>
/// A sentence-embedding model as sentence-transformers runs it: tokenizer with truncation at <c>max_seq_length</c>,
/// transformer, the model's own pooling over the attention mask (mean unless its Pooling module says otherwise), its
/// <c>Dense</c> modules in order (<see cref="DenseHead"/>), and L2 normalisation when its modules include
/// <c>Normalize</c> or the caller asks for it.
/// </summary>
public sealed class EmbeddingModel : IDisposable
{
    private readonly OnnxEncoder _encoder;

    private readonly Lazy<EncoderBatcher> _batcher;

    private readonly bool _pooledInGraph;

    private readonly DenseHead? _head;

    /// <param name="pooledInGraph">Whether <paramref name="encoder"/> outputs pooled vectors (<see cref="PoolingGraph"/>) rather than hidden states.</param>
    /// <param name="pooling">The model's pooling (sentence-transformers' Pooling module).</param>
    /// <param name="normalizes">Whether the model's modules end with Normalize.</param>
    /// <param name="head">The model's Dense modules, applied after pooling and before normalisation.</param>
    public EmbeddingModel(
        string name, TextTokenizer tokenizer, OnnxEncoder encoder, int maxTokens, BatchLimits? limits = null, bool pooledInGraph = false,
        PoolingModes pooling = PoolingModes.Mean, bool normalizes = false, DenseHead? head = null)
    {
        _head = head;
        Name = name;
        _pooledInGraph = pooledInGraph;
        Pooling = pooling;
        Normalizes = normalizes;
        Tokenizer = tokenizer;
        _encoder = encoder;
        MaxTokens = maxTokens;
        _batcher = new(() => new EncoderBatcher(_encoder, Tokenizer.Special.Pad, limits ?? new BatchLimits(), InferenceMetrics.Tags(name, Task)));
    }

    /// <summary>The task the engine's measurements tag this model's work with.</summary>
    public const string Task = "embed";

    private IDisposable? _memory;

    public string Name { get; }

    public TextTokenizer Tokenizer { get; }

    /// <summary>Tokens kept per text, [CLS] and [SEP] included.</summary>
    public int MaxTokens { get; }

    /// <summary>The embedding size (the last Dense module's output when there are any); known once the graph declares it or the first batch ran.</summary>
    public int Dimensions => _head?.OutFeatures ?? PooledDimensions;

    /// <summary>The size of the pooled vector, before any Dense module.</summary>
    private int PooledDimensions => _pooledInGraph || _encoder.HiddenSize <= 0 ? _encoder.HiddenSize : _encoder.HiddenSize * Pooling.Count();

    /// <summary>How the hidden states become one vector per text.</summary>
    public PoolingModes Pooling { get; }

    /// <summary>Whether embeddings are L2-normalised when the caller does not say (the model's modules end with Normalize).</summary>
    public bool Normalizes { get; }

    public string Provider => _encoder.Provider;

    public bool OnGpu => _encoder.OnGpu;

    /// <param name="folder">The model.</param>
    /// <param name="graphs">Where its graph comes from: its ONNX export, or the one built from its checkpoint (all layers).</param>
    /// <param name="options">How to open its ONNX Runtime session.</param>
    /// <param name="limits">The forward passes of <see cref="EmbedAsync"/>, shared by all its callers.</param>
    public static EmbeddingModel Load(ModelFolder folder, ModelGraphs graphs, EncoderOptions options, BatchLimits? limits = null)
    {
        var started = Stopwatch.GetTimestamp();
        var modules = folder.SentenceTransformers;
        if (modules.UnsupportedModules.Count > 0)
        {
            throw new ModelNotSupportedException(
                folder.Name,
                $"its sentence-transformers modules include {string.Join(", ", modules.UnsupportedModules)}, which this service does not apply "
                + "(it applies Transformer, Pooling, Dense and Normalize, in that order), so its embeddings would differ from sentence-transformers'.");
        }

        if (modules.DenseProblems.Count > 0)
        {
            throw new ModelNotSupportedException(folder.Name, string.Join(" ", modules.DenseProblems));
        }

        var head = DenseHead.Load(folder.Name, folder.Directory, modules.Dense);

        var tokenizer = TokenizerLoader.Load(folder.Directory, folder.Config.DoLowerCase);
        limits ??= new BatchLimits();
        options = limits.ForSessions(options);

        // sentence-transformers pools the last layer's hidden states. Pool on the device when the graph allows it (it
        // has an attention mask); otherwise here, from the hidden states.
        var source = graphs.Get(folder);
        var graph = source.LoadModel();
        var pooledInGraph = PoolingGraph.CanPool(graph, modules.Pooling);
        OnnxEncoder encoder;
        if (pooledInGraph)
        {
            PoolingGraph.AppendInPlace(graph, modules.Pooling);
            encoder = source.Open(graph, options);
        }
        else
        {
            encoder = source.Open(options);
        }

        try
        {
            var model = new EmbeddingModel(folder.Name, tokenizer, encoder, folder.Config.EmbeddingLimit, limits, pooledInGraph, modules.Pooling, modules.Normalize, head);
            if (model.PooledDimensions <= 0)
            {
                using var warm = encoder.Run([tokenizer.Encode("warm up", model.MaxTokens)], tokenizer.Special.Pad);
            }

            if (head is not null && head.InFeatures != model.PooledDimensions)
            {
                throw new InvalidModelException(
                    folder.Name,
                    $"its sentence-transformers Dense module {modules.Dense[0].Path} takes {head.InFeatures} features, but its pooling gives {model.PooledDimensions}.");
            }

            InferenceMetrics.RecordLoad(folder.Name, Task, started);
            model._memory = InferenceMetrics.TrackLoaded(folder.Name, Task, source.WeightBytes);
            return model;
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Token ids of each text as this model sees them (truncated unless <paramref name="truncate"/> is false).</summary>
    public int[][] Tokenize(IReadOnlyList<string> texts, bool truncate = true)
    {
        var started = Stopwatch.GetTimestamp();
        var result = new int[texts.Count][];
        for (var i = 0; i < texts.Count; i++)
        {
            var ids = Tokenizer.Encode(texts[i], truncate ? MaxTokens : int.MaxValue);
            if (!truncate && ids.Length > MaxTokens)
            {
                throw new InputTooLongException(i, ids.Length, MaxTokens);
            }

            result[i] = ids;
        }

        InferenceMetrics.TokenizeSeconds.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, InferenceMetrics.Tags(Name, Task));
        return result;
    }

    /// <summary>
    /// Embeds <paramref name="texts"/>; returns <c>texts.Count × Dimensions</c> floats, row-major, in input order.
    /// <paramref name="onBatchDone"/> hears after each forward pass how far the work is.
    /// </summary>
    public float[] Embed(IReadOnlyList<string> texts, EmbedOptions? options = null, Action<BatchProgress>? onBatchDone = null, CancellationToken cancellationToken = default)
    {
        options ??= new EmbedOptions();
        var sequences = Tokenize(texts, options.Truncate);
        return Embed(sequences, options, onBatchDone, cancellationToken);
    }

    /// <summary>Embeds already tokenized sequences (see <see cref="Tokenize"/>).</summary>
    public float[] Embed(int[][] sequences, EmbedOptions options, Action<BatchProgress>? onBatchDone = null, CancellationToken cancellationToken = default)
    {
        var dims = Dimensions;
        var output = new float[sequences.Length * dims];
        if (sequences.Length == 0)
        {
            return output;
        }

        // Longest first, so each batch holds texts of similar length and little padding.
        var order = Enumerable.Range(0, sequences.Length).OrderByDescending(i => sequences[i].Length).ToArray();
        var sizes = new List<int>();
        for (var start = 0; start < order.Length; start += sizes[^1])
        {
            sizes.Add(Batching.Size(sequences[order[start]].Length, options.BatchSize, options.MaxBatchTokens, order.Length - start));
        }

        var done = 0;
        var batch = new List<int[]>(sizes[0]);
        for (var b = 0; b < sizes.Count; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var start = done;
            batch.Clear();
            for (var k = 0; k < sizes[b]; k++)
            {
                batch.Add(sequences[order[start + k]]);
            }

            var normalize = options.Normalize ?? Normalizes;
            PassSplitting.Run(
                _encoder,
                batch,
                Tokenizer.Special.Pad,
                (states, offset) =>
                {
                    for (var k = 0; k < states.Batch; k++)
                    {
                        Pool(states, k, batch[offset + k].Length, output.AsSpan(order[start + offset + k] * dims, dims), normalize);
                    }
                },
                (_, error) => throw error);

            done += sizes[b];
            onBatchDone?.Invoke(new BatchProgress(done, sequences.Length, b + 1, sizes.Count));
        }

        return output;
    }

    /// <summary>
    /// Embeds already tokenized sequences in forward passes shared with every other concurrent caller of this model
    /// (dynamic batching, see <see cref="EncoderBatcher"/>); equal to <see cref="Embed(int[][], EmbedOptions, Action{BatchProgress}?, CancellationToken)"/>.
    /// <paramref name="onProgress"/> hears how far this call is, in chunks of <paramref name="progressChunk"/> texts.
    /// </summary>
    public async Task<float[]> EmbedAsync(
        int[][] sequences, bool? normalize, int progressChunk = 32, Action<BatchProgress>? onProgress = null, CancellationToken cancellationToken = default)
    {
        var dims = Dimensions;
        var normalized = normalize ?? Normalizes;
        var output = new float[sequences.Length * dims];
        await _batcher.Value.RunAsync(
            sequences,
            (states, row, index) => Pool(states, row, sequences[index].Length, output.AsSpan(index * dims, dims), normalized),
            progressChunk,
            onProgress,
            cancellationToken);
        return output;
    }

    private void Pool(HiddenStates states, int row, int length, Span<float> destination, bool normalize)
    {
        if (_head is null)
        {
            PoolOnly(states, row, length, destination, normalize);
            return;
        }

        // Pooled vector → Dense modules → Normalize, in sentence-transformers' module order.
        var pooled = System.Buffers.ArrayPool<float>.Shared.Rent(_head.InFeatures);
        try
        {
            PoolOnly(states, row, length, pooled.AsSpan(0, _head.InFeatures), normalize: false);
            _head.Apply(pooled.AsSpan(0, _head.InFeatures), destination);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(pooled);
        }

        if (normalize)
        {
            Embeddings.Pooling.L2Normalize(destination, 1e-12f);
        }
    }

    private void PoolOnly(HiddenStates states, int row, int length, Span<float> destination, bool normalize)
    {
        if (!_pooledInGraph)
        {
            Embeddings.Pooling.Pool(states, row, length, Pooling, destination, normalize);
            return;
        }

        states.Token(row, 0).CopyTo(destination);
        if (normalize)
        {
            Embeddings.Pooling.L2Normalize(destination, 1e-12f);
        }
    }

    /// <summary>Whether the pooling runs inside the graph, on the model's device.</summary>
    public bool PoolsInGraph => _pooledInGraph;

    /// <summary>What <see cref="EmbedAsync"/> has run so far.</summary>
    public BatchingTotals BatchingTotals => _batcher.IsValueCreated ? _batcher.Value.Totals : default;

    public void Dispose()
    {
        if (_batcher.IsValueCreated)
        {
            _batcher.Value.Dispose();
        }

        _encoder.Dispose();
        _memory?.Dispose();
    }
}

/// <summary>How far an embedding call is: texts done of all, and the chunk (forward pass, or progress chunk) reached of all.</summary>
public readonly record struct BatchProgress(int Done, int Total, int Batch, int Batches);

/// <summary>A text is longer than the model accepts and truncation was turned off.</summary>
public sealed class InputTooLongException(int index, int tokens, int maxTokens)
    : Exception($"Text {index} has {tokens} tokens; the model accepts at most {maxTokens}. Shorten it or allow truncation.")
{
    public int Index { get; } = index;

    public int Tokens { get; } = tokens;

    public int MaxTokens { get; } = maxTokens;
}
