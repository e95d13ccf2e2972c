using System.Collections.Concurrent;
using System.Diagnostics;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.BertScore;

/// <summary>
/// BERTScore exactly as bert_score 0.3.13 computes it: texts stripped, tokenised with the model's special tokens
/// (a prefix space for RoBERTa/GPT-2 tokenizers), hidden states of layer L of the model cut there (an export cut at
/// L, or a graph built with L layers), each token
/// vector L2-normalised, greedy cosine matching in which [CLS]/[SEP] weigh 0 but remain match targets, idf from the
/// references of the call, per-metric maximum over several references, optional baseline rescaling.
/// </summary>
public sealed class BertScoreModel : IDisposable
{
    /// <summary>The bert_score release whose numbers we reproduce, as its hash reports it (0.3.13 prints 0.3.12).</summary>
    public const string CompatibleVersion = "version=0.3.12(hug_trans=5.17.0)";

    private readonly ModelFolder _folder;
    private readonly ModelGraphs _graphs;
    private readonly EncoderOptions _encoderOptions;
    private readonly BatchLimits _limits;
    private readonly ConcurrentDictionary<int, Lazy<LayerEncoder>> _encoders = new();

    /// <param name="folder">The model.</param>
    /// <param name="graphs">
    /// Where the graph of each layer used comes from: its ONNX export cut at the layer, or a graph built from its
    /// checkpoint with exactly that many layers.
    /// </param>
    /// <param name="encoderOptions">How to open its ONNX Runtime sessions (one per layer used).</param>
    /// <param name="limits">The forward passes of <see cref="ScoreAsync"/>, shared by all its callers.</param>
    public BertScoreModel(ModelFolder folder, ModelGraphs graphs, EncoderOptions encoderOptions, BatchLimits? limits = null)
    {
        _folder = folder;
        _graphs = graphs;
        _limits = limits ?? new BatchLimits();
        _encoderOptions = _limits.ForSessions(encoderOptions);
        var tokenizer = TokenizerLoader.Load(folder.Directory, folder.Config.DoLowerCase);
        Tokenizer = tokenizer is ByteLevelBpeTokenizer bpe
            ? bpe.WithPrefixSpace(BertScoreDefaults.AddsPrefixSpace(folder.Config.ModelType))
            : tokenizer;
        TotalLayers = graphs.LayerCount(folder);
        DefaultLayer = BertScoreDefaults.DefaultLayer(folder.Name) ?? TotalLayers;
        MaxTokens = folder.Config.TokenizerLimit;
    }

    public string Name => _folder.Name;

    public TextTokenizer Tokenizer { get; }

    public int TotalLayers { get; }

    /// <summary>bert_score's default layer for this model (its <c>model2layers</c>), else the last layer.</summary>
    public int DefaultLayer { get; }

    /// <summary>Tokens kept per text, specials included (the tokenizer's <c>model_max_length</c>).</summary>
    public int MaxTokens { get; }

    /// <summary>Opens the graph of <paramref name="layer"/> now rather than on first use (building it first when it must be).</summary>
    public string Warm(int? layer = null) => EncoderFor(layer ?? DefaultLayer).Encoder.Provider;

    /// <summary>Layers whose graph is open.</summary>
    public IReadOnlyCollection<int> OpenLayers => [.. _encoders.Where(e => e.Value.IsValueCreated).Select(e => e.Key)];

    /// <summary>Scores the request, waiting for it (see <see cref="ScoreAsync"/>).</summary>
    public BertScoreResult Score(BertScoreRequest request, CancellationToken cancellationToken = default) =>
        ScoreAsync(request, cancellationToken: cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Scores the request with its forward passes shared with every other concurrent caller of the same layer
    /// (dynamic batching, see <see cref="EncoderBatcher"/>). The matching keeps
    /// bert_score's chunks of <see cref="BertScoreRequest.BatchSize"/> pairs, which its numbers depend on.
    /// <paramref name="onProgress"/> hears how far the forward passes are, in chunks of that many texts.
    /// </summary>
    public async Task<BertScoreResult> ScoreAsync(
        BertScoreRequest request, Action<BatchProgress>? onProgress = null, CancellationToken cancellationToken = default)
    {
        var call = Prepare(request);
        var texts = call.Tokens.Keys.ToArray();
        var sequences = texts.Select(t => call.Tokens[t]).ToArray();
        var vectors = new TokenEmbeddings[texts.Length];
        await EncoderFor(call.Layer).Batcher.RunAsync(
            sequences,
            (states, row, index) => vectors[index] = TokenEmbeddings.FromStates(states, row, sequences[index].Length),
            request.BatchSize,
            onProgress,
            cancellationToken);
        var embeddings = new Dictionary<string, TokenEmbeddings>(texts.Length, StringComparer.Ordinal);
        for (var i = 0; i < texts.Length; i++)
        {
            embeddings[texts[i]] = vectors[i];
        }

        return Finish(call, embeddings);
    }

    /// <summary>Checks the request and works out everything but the hidden states: layer, pairs, tokens, weights.</summary>
    private PreparedCall Prepare(BertScoreRequest request)
    {
        if (request.Candidates.Count != request.References.Count)
        {
            throw new ArgumentException(
                $"There are {request.Candidates.Count} candidates and {request.References.Count} references; the counts must be equal.");
        }

        var layer = request.NumLayers ?? DefaultLayer;
        if (layer < 0 || layer > TotalLayers)
        {
            throw new ArgumentOutOfRangeException(nameof(request), $"num_layers must be between 0 and {TotalLayers} for {Name}; got {layer}.");
        }

        var baseline = request.RescaleWithBaseline
            ? request.Baseline ?? Baseline.ForModel(request.Lang, Name, layer)
            : null;

        // Flatten several references per candidate into pairs, remembering each candidate's group.
        var pairCandidates = new List<string>();
        var pairReferences = new List<string>();
        var groups = new List<(int Start, int Count)>(request.Candidates.Count);
        for (var i = 0; i < request.Candidates.Count; i++)
        {
            var refs = request.References[i];
            if (refs.Count == 0)
            {
                throw new ArgumentException($"Candidate {i} has no reference.");
            }

            groups.Add((pairCandidates.Count, refs.Count));
            foreach (var r in refs)
            {
                pairCandidates.Add(request.Candidates[i]);
                pairReferences.Add(r);
            }
        }

        var tokens = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var text in pairCandidates.Concat(pairReferences))
        {
            if (!tokens.ContainsKey(text))
            {
                tokens[text] = Encode(text);
            }
        }

        if (request.IdfWeights is not null && !request.Idf)
        {
            throw new ArgumentException("Idf weights were given for a call without idf.");
        }

        var weights = request.Idf
            ? request.IdfWeights ?? TokenWeights.InverseDocumentFrequency(pairReferences.Select(r => tokens[r]))
            : TokenWeights.Uniform(Tokenizer.Special);
        return new PreparedCall(request, layer, baseline, pairCandidates, pairReferences, groups, tokens, weights);
    }

    /// <summary>Greedy matching, the maximum over each candidate's references, rescaling, and the hash.</summary>
    private BertScoreResult Finish(PreparedCall call, Dictionary<string, TokenEmbeddings> embeddings)
    {
        var request = call.Request;
        var pairs = GreedyMatcher.ScorePairs(
            call.PairCandidates.Select(c => embeddings[c]).ToList(),
            call.PairReferences.Select(r => embeddings[r]).ToList(),
            call.PairCandidates.Select(c => call.Tokens[c]).ToList(),
            call.PairReferences.Select(r => call.Tokens[r]).ToList(),
            call.Weights,
            Math.Max(1, request.BatchSize));

        var n = request.Candidates.Count;
        float[] p = new float[n], r2 = new float[n], f = new float[n];
        for (var i = 0; i < n; i++)
        {
            var (start, count) = call.Groups[i];
            p[i] = MaxPropagatingNaN(pairs.P, start, count);
            r2[i] = MaxPropagatingNaN(pairs.R, start, count);
            f[i] = MaxPropagatingNaN(pairs.F, start, count);
            if (call.Baseline is { } baseline)
            {
                (p[i], r2[i], f[i]) = baseline.Rescale(p[i], r2[i], f[i]);
            }
        }

        return new BertScoreResult(p, r2, f, call.Layer, Hash(Name, call.Layer, request.Idf, request.RescaleWithBaseline, request.Baseline is not null));
    }

    /// <summary>
    /// The idf weights a call with these references computes (bert_score's <c>get_idf_dict</c> over each candidate's
    /// references in order, a reference given twice counting twice), for <see cref="BertScoreRequest.IdfWeights"/>.
    /// </summary>
    public TokenWeights InverseDocumentFrequency(IReadOnlyList<IReadOnlyList<string>> references) =>
        TokenWeights.InverseDocumentFrequency(references.SelectMany(r => r).Select(Encode));

    /// <summary>bert_score's <c>get_hash</c> string, reporting the bert_score version whose numbers we reproduce.</summary>
    public static string Hash(string model, int layer, bool idf, bool rescaled, bool customBaseline)
    {
        var hash = $"{model}_L{layer}{(idf ? "_idf" : "_no-idf")}_{CompatibleVersion}";
        if (rescaled)
        {
            hash += customBaseline ? "-custom-rescaled" : "-rescaled";
        }

        return hash;
    }

    /// <summary>bert_score's <c>sent_encode</c>: strip, then [CLS] + content + [SEP] within the model's maximum.</summary>
    public int[] Encode(string text)
    {
        var stripped = UnicodeRules.PythonStrip(text);
        return stripped.Length == 0
            ? [Tokenizer.Special.Start, Tokenizer.Special.End]
            : Tokenizer.Encode(stripped, MaxTokens);
    }

    private LayerEncoder EncoderFor(int layer)
    {
        var encoder = _encoders.GetOrAdd(layer, l => new Lazy<LayerEncoder>(() => OpenLayer(l), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return encoder.Value;
        }
        catch
        {
            // A Lazy keeps its exception; the next caller tries again (the files may have been repaired meanwhile).
            _encoders.TryRemove(new KeyValuePair<int, Lazy<LayerEncoder>>(layer, encoder));
            throw;
        }
    }

    /// <summary>The task the engine's measurements tag this model's work with.</summary>
    public const string Task = "bertscore";

    private LayerEncoder OpenLayer(int layer)
    {
        var started = Stopwatch.GetTimestamp();
        var graph = _graphs.Get(_folder, layer);
        var encoder = graph.Open(_encoderOptions);
        InferenceMetrics.RecordLoad(Name, Task, started);
        var memory = InferenceMetrics.TrackLoaded(Name, Task, graph.WeightBytes);
        var batcher = new Lazy<EncoderBatcher>(() => new EncoderBatcher(encoder, Tokenizer.Special.Pad, _limits, InferenceMetrics.Tags(Name, Task)));
        return new LayerEncoder(encoder, batcher, memory);
    }

    private static float MaxPropagatingNaN(float[] values, int start, int count)
    {
        var max = float.NegativeInfinity;
        for (var k = start; k < start + count; k++)
        {
            if (float.IsNaN(values[k]))
            {
                return float.NaN;
            }

            max = Math.Max(max, values[k]);
        }

        return max;
    }

    public void Dispose()
    {
        foreach (var encoder in _encoders.Values.Where(e => e.IsValueCreated))
        {
            encoder.Value.Dispose();
        }
    }

    /// <summary>The graph cut at one layer, and the batcher that shares its forward passes between callers.</summary>
    private sealed record LayerEncoder(OnnxEncoder Encoder, Lazy<EncoderBatcher> LazyBatcher, IDisposable Memory) : IDisposable
    {
        public EncoderBatcher Batcher => LazyBatcher.Value;

        public void Dispose()
        {
            if (LazyBatcher.IsValueCreated)
            {
                LazyBatcher.Value.Dispose();
            }

            Encoder.Dispose();
            Memory.Dispose();
        }
    }

    /// <summary>A checked request with its pairs, token ids and weights: all but the hidden states.</summary>
    private sealed record PreparedCall(
        BertScoreRequest Request,
        int Layer,
        Baseline? Baseline,
        List<string> PairCandidates,
        List<string> PairReferences,
        List<(int Start, int Count)> Groups,
        Dictionary<string, int[]> Tokens,
        TokenWeights Weights);
}
