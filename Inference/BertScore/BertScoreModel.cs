using System.Collections.Concurrent;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.BertScore;

/// <summary>
/// BERTScore exactly as bert_score 0.3.13 computes it: texts stripped, tokenised with the model's special tokens
/// (a prefix space for RoBERTa/GPT-2 tokenizers), hidden states of layer L of the model cut there, each token
/// vector L2-normalised, greedy cosine matching in which [CLS]/[SEP] weigh 0 but remain match targets, idf from the
/// references of the call, per-metric maximum over several references, optional baseline rescaling.
/// </summary>
public sealed class BertScoreModel : IDisposable
{
    /// <summary>The bert_score release whose numbers we reproduce, as its hash reports it (0.3.13 prints 0.3.12).</summary>
    public const string CompatibleVersion = "version=0.3.12(hug_trans=5.17.0)";

    private readonly ModelFolder _folder;
    private readonly EncoderOptions _encoderOptions;
    private readonly ConcurrentDictionary<int, Lazy<OnnxEncoder>> _encoders = new();

    public BertScoreModel(ModelFolder folder, EncoderOptions encoderOptions)
    {
        _folder = folder;
        _encoderOptions = encoderOptions;
        var tokenizer = TokenizerLoader.Load(folder.Directory, folder.Config.DoLowerCase);
        Tokenizer = tokenizer is ByteLevelBpeTokenizer bpe
            ? bpe.WithPrefixSpace(BertScoreDefaults.AddsPrefixSpace(folder.Config.ModelType))
            : tokenizer;
        // Parsing the graph costs seconds and gigabytes for the large models, so only when config.json is silent.
        TotalLayers = folder.Config.NumHiddenLayers
            ?? LayerCut.CountLayers(global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(folder.OnnxPath)));
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

    /// <summary>Opens the graph cut at <paramref name="layer"/> now rather than on first use.</summary>
    public string Warm(int? layer = null) => EncoderFor(layer ?? DefaultLayer).Provider;

    /// <summary>Layers whose cut graph is open.</summary>
    public IReadOnlyCollection<int> OpenLayers => [.. _encoders.Where(e => e.Value.IsValueCreated).Select(e => e.Key)];

    /// <summary>Scores the request; <paramref name="onBatchDone"/> hears (batches done, batches in all) after each forward pass.</summary>
    public BertScoreResult Score(BertScoreRequest request, CancellationToken cancellationToken = default, Action<int, int>? onBatchDone = null)
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

        var encoder = EncoderFor(layer);
        var tokens = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var text in pairCandidates.Concat(pairReferences))
        {
            if (!tokens.ContainsKey(text))
            {
                tokens[text] = Encode(text);
            }
        }

        var weights = request.Idf
            ? TokenWeights.InverseDocumentFrequency(pairReferences.Select(r => tokens[r]))
            : TokenWeights.Uniform(Tokenizer.Special);
        var embeddings = EmbedTokens(encoder, tokens, request.BatchSize, request.MaxBatchTokens, onBatchDone, cancellationToken);

        var pairs = GreedyMatcher.ScorePairs(
            pairCandidates.Select(c => embeddings[c]).ToList(),
            pairReferences.Select(r => embeddings[r]).ToList(),
            pairCandidates.Select(c => tokens[c]).ToList(),
            pairReferences.Select(r => tokens[r]).ToList(),
            weights,
            Math.Max(1, request.BatchSize));

        var n = request.Candidates.Count;
        float[] p = new float[n], r2 = new float[n], f = new float[n];
        for (var i = 0; i < n; i++)
        {
            var (start, count) = groups[i];
            p[i] = MaxPropagatingNaN(pairs.P, start, count);
            r2[i] = MaxPropagatingNaN(pairs.R, start, count);
            f[i] = MaxPropagatingNaN(pairs.F, start, count);
            if (baseline is not null)
            {
                (p[i], r2[i], f[i]) = baseline.Rescale(p[i], r2[i], f[i]);
            }
        }

        return new BertScoreResult(p, r2, f, layer, Hash(Name, layer, request.Idf, request.RescaleWithBaseline, request.Baseline is not null));
    }

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

    private Dictionary<string, TokenEmbeddings> EmbedTokens(
        OnnxEncoder encoder, Dictionary<string, int[]> tokens, int batchSize, int maxBatchTokens, Action<int, int>? onBatchDone, CancellationToken cancellationToken)
    {
        var texts = tokens.Keys.OrderByDescending(t => tokens[t].Length).ToList();
        var result = new Dictionary<string, TokenEmbeddings>(texts.Count, StringComparer.Ordinal);
        var batchesDone = 0;
        var batches = 0;
        for (var start = 0; start < texts.Count; start += Batching.Size(tokens[texts[start]].Length, batchSize, maxBatchTokens, texts.Count - start))
        {
            batches++;
        }

        var done = 0;
        for (var start = 0; start < texts.Count; start += done)
        {
            cancellationToken.ThrowIfCancellationRequested();
            done = Batching.Size(tokens[texts[start]].Length, batchSize, maxBatchTokens, texts.Count - start);
            var chunk = texts.GetRange(start, done);
            using var states = encoder.Run([.. chunk.Select(t => tokens[t])], Tokenizer.Special.Pad);
            for (var k = 0; k < chunk.Count; k++)
            {
                result[chunk[k]] = TokenEmbeddings.FromStates(states, k, tokens[chunk[k]].Length);
            }

            onBatchDone?.Invoke(++batchesDone, batches);
        }

        return result;
    }

    private OnnxEncoder EncoderFor(int layer) =>
        _encoders.GetOrAdd(layer, l => new Lazy<OnnxEncoder>(() => OpenLayer(l), LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    private OnnxEncoder OpenLayer(int layer)
    {
        if (layer == TotalLayers)
        {
            return OnnxEncoder.Open(_folder.OnnxPath, _encoderOptions);
        }

        var cut = LayerCut.Cut(File.ReadAllBytes(_folder.OnnxPath), layer);
        return OnnxEncoder.Open(cut, Path.GetDirectoryName(_folder.OnnxPath), _encoderOptions);
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
}
