namespace OrleansGpu.Inference.Graphs.Families;

/// <summary>
/// DistilBERT (modeling_distilbert.py): <c>LayerNorm(word + position[0 … L−1])</c>, no token types; every LayerNorm
/// has eps 1e-12 whatever the config; q is divided by √d before <c>q·kᵀ</c> and padding keys are
/// <c>masked_fill(float32.min)</c>.
/// </summary>
internal sealed class DistilBertFamily(EncoderGraph graph) : EncoderFamily(graph)
{
    public override string Embeddings()
    {
        var words = W.Op("Gather", "word_embeddings", [G.WordEmbeddings, EncoderGraph.InputIds]);
        var sum = W.Op("Add", "embeddings_sum", [words, G.LeadingRows(G.PositionEmbeddings)]);
        return G.LayerNorm(G.ToFloat32(sum), "embeddings.LayerNorm");
    }

    public override string Layer(int index, string hidden)
    {
        var p = $"transformer.layer.{index}";
        var h = G.Hidden;
        var (qkv, qkvBias) = G.PackedQkv(
            $"{p}.attention.qkv",
            G.Read($"{p}.attention.q_lin.weight", h, h),
            G.Read($"{p}.attention.k_lin.weight", h, h),
            G.Read($"{p}.attention.v_lin.weight", h, h),
            G.Read($"{p}.attention.q_lin.bias", h),
            G.Read($"{p}.attention.k_lin.bias", h),
            G.Read($"{p}.attention.v_lin.bias", h));
        var x = G.Pack(hidden, h);
        var context = G.SelfAttention(x, qkv, qkvBias, MaskRule.KeyFill, scaleQueryFirst: true);
        var attention = G.LinearAddNorm(context, $"{p}.attention.out_lin", h, x, $"{p}.sa_layer_norm");
        var intermediate = G.LinearGelu(attention, $"{p}.ffn.lin1", h, Config.IntermediateSize);
        return G.LinearAddNorm(intermediate, $"{p}.ffn.lin2", Config.IntermediateSize, attention, $"{p}.output_layer_norm", endsLayer: true);
    }
}
