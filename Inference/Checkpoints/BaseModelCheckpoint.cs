namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// A checkpoint seen with the base model's names (<c>BertModel</c>, <c>RobertaModel</c>, <c>DebertaModel</c>, ...),
/// whatever task model saved it, as transformers maps them when it loads a base model:
/// <list type="bullet">
/// <item>the task model's prefix (<c>bert.</c>, <c>roberta.</c> – also XLM-RoBERTa's and CamemBERT's –,
/// <c>distilbert.</c>, <c>deberta.</c> for v1 and v2, <c>mpnet.</c>, ...) is stripped. It is read from the keys –
/// the prefix of <c>embeddings.word_embeddings.weight</c> – not from <c>config.json</c>'s <c>architectures</c>,
/// which does not say how the weights were saved (all-mpnet-base-v2 names <c>MPNetForMaskedLM</c> yet stores
/// MPNetModel's keys without a prefix);</item>
/// <item>LayerNorm parameters of old checkpoints, <c>gamma</c> and <c>beta</c>, become <c>weight</c> and <c>bias</c>;</item>
/// <item>head weights are not shown: with a prefix, nothing outside it (<c>cls.*</c>, <c>lm_head.*</c>,
/// <c>classifier.*</c>, DeBERTa's <c>pooler.*</c>, <c>vocab_*</c>, <c>lm_predictions.*</c>,
/// <c>mask_predictions.*</c>); without one, the known head modules. A base model's own <c>pooler.*</c> stays, as in
/// the base model's state dict.</item>
/// </list>
/// Disposing it disposes the checkpoint it wraps.
/// </summary>
public sealed class BaseModelCheckpoint : ICheckpoint
{
    private const string WordEmbeddings = "embeddings.word_embeddings.weight";

    // Task-model prefixes, used only to settle a checkpoint where several prefixes hold word embeddings.
    private static readonly string[] KnownPrefixes = ["bert.", "roberta.", "distilbert.", "deberta.", "mpnet.", "electra.", "albert."];

    // Heads of task models whose base weights have no prefix (the same head names transformers' task classes use).
    private static readonly HashSet<string> HeadModules =
    [
        "cls", "lm_head", "classifier", "pre_classifier", "qa_outputs", "vocab_transform", "vocab_layer_norm",
        "vocab_projector", "lm_predictions", "mask_predictions",
    ];

    private readonly ICheckpoint _stored;
    private readonly Dictionary<string, string> _storedNames;

    /// <summary>Wraps <paramref name="stored"/> (and takes ownership of it).</summary>
    public BaseModelCheckpoint(ICheckpoint stored)
    {
        _stored = stored;
        Prefix = DetectPrefix(stored.Names);
        _storedNames = MapNames(stored.Names, Prefix);
    }

    /// <summary>The task-model prefix found in the keys (<c>""</c> when the base model's keys were stored as they are).</summary>
    public string Prefix { get; }

    /// <summary>The checkpoint with its names as stored.</summary>
    public ICheckpoint Stored => _stored;

    public IReadOnlyCollection<string> Names => _storedNames.Keys;

    /// <summary>The name under which the base model's tensor <paramref name="name"/> is stored.</summary>
    public string StoredName(string name) =>
        _storedNames.TryGetValue(name, out var stored) ? stored : throw new CheckpointException($"The checkpoint has no tensor named {name} (prefix '{Prefix}').");

    public bool Contains(string name) => _storedNames.ContainsKey(name);

    public TensorInfo Info(string name) => _stored.Info(StoredName(name)) with { Name = name };

    public float[] ReadFloat32(string name) => _stored.ReadFloat32(StoredName(name));

    public byte[] ReadBytes(string name) => _stored.ReadBytes(StoredName(name));

    public bool TryGetFloat32Memory(string name, out ReadOnlyMemory<float> data) => _stored.TryGetFloat32Memory(StoredName(name), out data);

    public void Dispose() => _stored.Dispose();

    private static string DetectPrefix(IEnumerable<string> names)
    {
        var candidates = names
            .Where(n => n.EndsWith(WordEmbeddings, StringComparison.Ordinal) && (n.Length == WordEmbeddings.Length || n[^(WordEmbeddings.Length + 1)] == '.'))
            .Select(n => n[..^WordEmbeddings.Length])
            .Distinct()
            .ToList();
        if (candidates.Count == 0 || candidates.Contains(""))
        {
            return "";
        }

        if (candidates.Count == 1)
        {
            return candidates[0];
        }

        var known = candidates.Where(KnownPrefixes.Contains).ToList();
        return known.Count == 1
            ? known[0]
            : throw new CheckpointException($"The checkpoint holds word embeddings under several prefixes ({string.Join(", ", candidates.Select(c => $"'{c}'"))}); which one is the encoder is unclear.");
    }

    private static Dictionary<string, string> MapNames(IEnumerable<string> names, string prefix)
    {
        var mapped = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var stored in names)
        {
            if (!stored.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var name = stored[prefix.Length..];
            if (prefix.Length == 0 && HeadModules.Contains(name.Split('.')[0]))
            {
                continue;
            }

            name = RenameLayerNorm(name);
            if (!mapped.TryAdd(name, stored))
            {
                throw new CheckpointException($"The checkpoint holds both {mapped[name]} and {stored}, which are the same tensor {name} of the base model.");
            }
        }

        return mapped;
    }

    /// <summary>Old LayerNorm names: <c>gamma</c> → <c>weight</c>, <c>beta</c> → <c>bias</c> (the last name part only).</summary>
    private static string RenameLayerNorm(string name)
    {
        var dot = name.LastIndexOf('.');
        return name[(dot + 1)..] switch
        {
            "gamma" => name[..(dot + 1)] + "weight",
            "beta" => name[..(dot + 1)] + "bias",
            _ => name,
        };
    }
}
