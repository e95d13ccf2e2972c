namespace OrleansGpu.Inference.Graphs.Families;

/// <summary>
/// One encoder architecture: its embeddings and one layer, written with <see cref="EncoderGraph"/>'s blocks. Each
/// family keeps every rule of its architecture (weight names, positions, mask, attention arithmetic) in its own class.
/// </summary>
internal abstract class EncoderFamily(EncoderGraph graph)
{
    protected EncoderGraph G { get; } = graph;

    protected OnnxGraphWriter W => G.W;

    protected ModelArchitectureConfig Config => G.Config;

    /// <summary>The embedding output, <c>[batch, L, hidden]</c> (hidden state 0).</summary>
    public abstract string Embeddings();

    /// <summary>Encoder layer <paramref name="index"/> (0-based) applied to <paramref name="hidden"/>.</summary>
    public abstract string Layer(int index, string hidden);

    public static EncoderFamily For(EncoderGraph graph) => graph.Config.ModelType switch
    {
        "bert" or "roberta" or "xlm-roberta" or "camembert" => new BertFamily(graph),
        "distilbert" => new DistilBertFamily(graph),
        "deberta" or "deberta-v2" => new DebertaFamily(graph),
        "mpnet" => new MPNetFamily(graph),
        var other => throw new GraphBuildException(
            $"model_type '{other}' cannot be built natively; the supported model types are {string.Join(", ", ModelArchitectureConfig.SupportedModelTypes)}."),
    };
}
