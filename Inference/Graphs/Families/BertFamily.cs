namespace OrleansGpu.Inference.Graphs.Families;

/// <summary>
/// BERT (MiniLM, bge, e5, …) and RoBERTa's family (roberta, xlm-roberta, camembert: the same graph). Embeddings:
/// <c>LayerNorm(word + token_type[0] + position)</c>, positions <c>0 … L−1</c> for BERT and from the ids for RoBERTa
/// (modeling_roberta.py l.1575–1588). Attention: <c>q·kᵀ/√d + (1 − mask)·float32.min</c>.
/// </summary>
internal sealed class BertFamily(EncoderGraph graph) : EncoderFamily(graph)
{
    private bool PositionsFromIds => Config.ModelType != "bert";

    public override string Embeddings()
    {
        var embeddings = W.Op("Gather", "word_embeddings", [G.WordEmbeddings, EncoderGraph.InputIds]);
        if (Config.TypeVocabSize > 0)
        {
            // token_type_ids default to zeros (modeling_bert.py l.223-229): row 0 for every token.
            embeddings = W.Op("Add", "token_type", [embeddings, G.TokenTypeZero]);
        }

        var table = G.PositionEmbeddings;
        var positions = PositionsFromIds
            ? W.Op("Gather", "position_embeddings", [table, G.PositionsFromIds(Config.PadTokenId)])
            : G.LeadingRows(table);
        embeddings = W.Op("Add", "embeddings_sum", [embeddings, positions]);
        return G.LayerNorm(G.ToFloat32(embeddings), "embeddings.LayerNorm");
    }

    public override string Layer(int index, string hidden)
    {
        var p = $"encoder.layer.{index}";
        var h = G.Hidden;
        var (qkv, qkvBias) = G.PackedQkv(
            $"{p}.attention.self.qkv",
            G.Read($"{p}.attention.self.query.weight", h, h),
            G.Read($"{p}.attention.self.key.weight", h, h),
            G.Read($"{p}.attention.self.value.weight", h, h),
            G.Read($"{p}.attention.self.query.bias", h),
            G.Read($"{p}.attention.self.key.bias", h),
            G.Read($"{p}.attention.self.value.bias", h));
        var x = G.Pack(hidden, h);
        var context = G.SelfAttention(x, qkv, qkvBias, MaskRule.Additive, scaleQueryFirst: false);
        var attention = G.LinearAddNorm(context, $"{p}.attention.output.dense", h, x, $"{p}.attention.output.LayerNorm");
        var intermediate = G.LinearGelu(attention, $"{p}.intermediate.dense", h, Config.IntermediateSize);
        return G.LinearAddNorm(intermediate, $"{p}.output.dense", Config.IntermediateSize, attention, $"{p}.output.LayerNorm", endsLayer: true);
    }
}
