using static OrleansGpu.Inference.Graphs.OnnxGraphWriter;

namespace OrleansGpu.Inference.Graphs.Families;

/// <summary>
/// MPNet (modeling_mpnet.py): RoBERTa's positions from the ids, no token types; one relative-position bias computed
/// once from plain positions <c>0 … L−1</c> and shared by every layer (l.332, 364–399); scores
/// <c>q·kᵀ/√d + bias[bucket(i − j), head] + (1 − mask)·float32.min</c>.
/// </summary>
internal sealed class MPNetFamily(EncoderGraph graph) : EncoderFamily(graph)
{
    private string? _positionBias;

    public override string Embeddings()
    {
        var words = W.Op("Gather", "word_embeddings", [G.WordEmbeddings, EncoderGraph.InputIds]);
        var positions = W.Op("Gather", "position_embeddings", [G.PositionEmbeddings, G.PositionsFromIds(Config.PadTokenId)]);
        return G.LayerNorm(G.ToFloat32(W.Op("Add", "embeddings_sum", [words, positions])), "embeddings.LayerNorm");
    }

    public override string Layer(int index, string hidden)
    {
        var p = $"encoder.layer.{index}";
        var h = G.Hidden;
        var (qkv, qkvBias) = G.PackedQkv(
            $"{p}.attention.attn.qkv",
            G.Read($"{p}.attention.attn.q.weight", h, h),
            G.Read($"{p}.attention.attn.k.weight", h, h),
            G.Read($"{p}.attention.attn.v.weight", h, h),
            G.Read($"{p}.attention.attn.q.bias", h),
            G.Read($"{p}.attention.attn.k.bias", h),
            G.Read($"{p}.attention.attn.v.bias", h));
        var x = G.Pack(hidden, h);
        var context = G.SelfAttention(x, qkv, qkvBias, MaskRule.Additive, scaleQueryFirst: false, PositionBias());
        var attention = G.LinearAddNorm(context, $"{p}.attention.attn.o", h, x, $"{p}.attention.LayerNorm");
        var intermediate = G.LinearGelu(attention, $"{p}.intermediate.dense", h, Config.IntermediateSize);
        return G.LinearAddNorm(intermediate, $"{p}.output.dense", Config.IntermediateSize, attention, $"{p}.output.LayerNorm", endsLayer: true);
    }

    /// <summary><c>[1, heads, L, L]</c>: <c>relative_attention_bias[bucket(i − j), head]</c>, built once per run.</summary>
    private string PositionBias()
    {
        if (_positionBias is not null)
        {
            return _positionBias;
        }

        var scope = W.Scope;
        W.Scope = "position_bias";
        var positions = G.Positions(G.LengthScalar);
        var distance = W.Op(
            "Sub",
            "distance",
            [W.Op("Unsqueeze", "query_positions", [positions, W.Int64s(1)]), W.Op("Unsqueeze", "key_positions", [positions, W.Int64s(0)])]);
        var buckets = RelativePositions.LookUp(G, distance, RelativePositions.MPNetBuckets(), "bucket");
        var table = G.Param("encoder.relative_attention_bias.weight", RelativePositions.MPNetBucketCount, G.Heads);
        var values = W.Op("Gather", "bias_values", [table, buckets]);
        _positionBias = W.Op(
            "Unsqueeze",
            "bias",
            [W.Op("Transpose", "bias_heads", [values], Attr("perm", [2L, 0, 1])), W.Int64s(0)]);
        W.Scope = scope;
        return _positionBias;
    }
}
