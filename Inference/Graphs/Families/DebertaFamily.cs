using static OrleansGpu.Inference.Graphs.OnnxGraphWriter;

namespace OrleansGpu.Inference.Graphs.Families;

/// <summary>
/// DeBERTa v1 (modeling_deberta.py) and v2/v3 (modeling_deberta_v2.py). Embeddings <c>LayerNorm(word [+ position]
/// [+ token_type[0]]) × mask</c>; disentangled attention with the 2-D mask and XSoftmax. The two versions differ in
/// the projections and in where the scale goes:
/// <list type="bullet">
/// <item>v1: one bias-free <c>in_proj</c> interleaved per head (rows <c>3dh … 3dh+d−1</c> are head h's query, then its
/// key, then its value), <c>q_bias</c>/<c>v_bias</c>; the query is divided by <c>√(d·(1+|pos_att_type|))</c> before
/// <c>q·kᵀ</c> and c2p; c2p uses <c>pos_proj</c> (no bias), p2c <c>pos_q_proj(R)/scale</c>.</item>
/// <item>v2: <c>query_proj</c>, <c>key_proj</c>, <c>value_proj</c> with biases, which also project the relative
/// embeddings when <c>share_att_key</c>; the relative table goes through <c>encoder.LayerNorm</c> when
/// <c>norm_rel_ebd</c> says so; log buckets; every term is divided by the scale after its product.</item>
/// </list>
/// c2p adds <c>q_i · K_rel[row(i − j)]</c> and p2c <c>k_j · Q_rel[row(i − j)]</c>, the same row for both
/// (<see cref="RelativePositions.DebertaRows"/>). The products are taken against the <c>2L</c> rows that distances
/// <c>L−1 … −L</c> use, gathered once per run, and lined up by a relative shift instead of a per-element gather.
/// </summary>
internal sealed class DebertaFamily(EncoderGraph graph) : EncoderFamily(graph)
{
    private (string Descending, string Ascending)? _relativeRows;

    private bool V2 => Config.ModelType == "deberta-v2";

    private bool C2P => Config.RelativeAttention && Config.PosAttType.Contains("c2p");

    private bool P2C => Config.RelativeAttention && Config.PosAttType.Contains("p2c");

    /// <summary><c>√(d · (1 + |pos_att_type|))</c>, as float32 (both versions count the types whether or not relative attention is on).</summary>
    private float Scale => MathF.Sqrt(G.HeadSize * (1f + Config.PosAttType.Count));

    public override string Embeddings()
    {
        var embeddings = W.Op("Gather", "word_embeddings", [G.WordEmbeddings, EncoderGraph.InputIds]);
        if (Config.PositionBiasedInput)
        {
            embeddings = W.Op("Add", "embeddings_position", [embeddings, G.LeadingRows(G.PositionEmbeddings)]);
        }

        if (Config.TypeVocabSize > 0)
        {
            embeddings = W.Op("Add", "token_type", [embeddings, G.TokenTypeZero]);
        }

        var normalised = G.LayerNorm(G.ToFloat32(embeddings), "embeddings.LayerNorm");
        return W.Op("Mul", "embeddings_masked", [normalised, W.Op("Unsqueeze", "mask_column", [G.MaskFloat, W.Int64s(2)])]);
    }

    public override string Layer(int index, string hidden)
    {
        var p = $"encoder.layer.{index}";
        var h = G.Hidden;
        var (qkv, qkvBias) = V2 ? PackedV2($"{p}.attention.self") : PackedV1($"{p}.attention.self");
        var x = G.Pack(hidden, h);
        var (q, k, v) = G.SplitQkv(G.ProjectQkv(x, qkv, qkvBias));

        // v1 scales the query before every product it enters; v2 scales each product.
        var query = V2 ? q : W.Op("Div", "query_scaled", [q, G.Scalar(Scale)]);
        var queryHeads = new Lazy<string>(() => G.SplitHeads(query));
        var keyHeads = new Lazy<string>(() => G.SplitHeads(k));
        var bias = RelativeBias($"{p}.attention.self", queryHeads, keyHeads, qkv, qkvBias);

        string context;
        if (G.Fused)
        {
            // The fused kernel masks keys only: a padded query row attends like any other instead of getting
            // XSoftmax's zeros. That changes the padding rows alone, which no result reads (the oracles agree).
            context = G.MultiHeadAttention(query, k, v, V2 ? 1f / Scale : 1f, bias);
        }
        else
        {
            var scores = W.Op("MatMul", "scores", [queryHeads.Value, W.Op("Transpose", "key_t", [keyHeads.Value], Attr("perm", [0L, 1, 3, 2]))]);
            if (V2)
            {
                scores = W.Op("Div", "scores_scaled", [scores, G.Scalar(Scale)]);
            }

            if (bias is not null)
            {
                scores = W.Op("Add", "scores_relative", [scores, bias]);
            }

            context = G.MergeHeads(G.AttendPlain(scores, G.SplitHeads(v), MaskRule.XSoftmax));
        }

        context = G.Pack(context, h);
        var attention = G.LinearAddNorm(context, $"{p}.attention.output.dense", h, x, $"{p}.attention.output.LayerNorm");
        var intermediate = G.LinearGelu(attention, $"{p}.intermediate.dense", h, Config.IntermediateSize);
        return G.LinearAddNorm(intermediate, $"{p}.output.dense", Config.IntermediateSize, attention, $"{p}.output.LayerNorm", endsLayer: true);
    }

    /// <summary>v1's <c>in_proj</c> (<c>[3H, H]</c>, per head: d query rows, d key rows, d value rows) as Q | K | V.</summary>
    private (string, string) PackedV1(string p)
    {
        int h = G.Hidden, d = G.HeadSize;
        var inProj = G.Read($"{p}.in_proj.weight", 3 * h, h);
        float[] q = new float[h * h], k = new float[h * h], v = new float[h * h];
        for (var head = 0; head < G.Heads; head++)
        {
            for (var e = 0; e < d; e++)
            {
                var row = (head * d) + e;
                var source = 3 * d * head;
                inProj.AsSpan((source + e) * h, h).CopyTo(q.AsSpan(row * h));
                inProj.AsSpan((source + d + e) * h, h).CopyTo(k.AsSpan(row * h));
                inProj.AsSpan((source + (2 * d) + e) * h, h).CopyTo(v.AsSpan(row * h));
            }
        }

        return G.PackedQkv($"{p}.qkv", q, k, v, G.Read($"{p}.q_bias", h), new float[h], G.Read($"{p}.v_bias", h));
    }

    private (string, string) PackedV2(string p)
    {
        var h = G.Hidden;
        return G.PackedQkv(
            $"{p}.qkv",
            G.Read($"{p}.query_proj.weight", h, h),
            G.Read($"{p}.key_proj.weight", h, h),
            G.Read($"{p}.value_proj.weight", h, h),
            G.Read($"{p}.query_proj.bias", h),
            G.Read($"{p}.key_proj.bias", h),
            G.Read($"{p}.value_proj.bias", h));
    }

    /// <summary>c2p + p2c as <c>[B, heads, L, L]</c> (already scaled), or null without relative attention.</summary>
    private string? RelativeBias(string p, Lazy<string> queryHeads, Lazy<string> keyHeads, string qkv, string qkvBias)
    {
        if (!C2P && !P2C)
        {
            return null;
        }

        var (descending, ascending) = RelativeRows();
        string? bias = null;
        if (C2P)
        {
            // Column k of the product is distance L−1−k: the shift lines up column L−1−i+j, distance i − j.
            var keys = V2
                ? (Config.ShareAttKey ? ProjectPacked(descending, qkv, qkvBias, 1) : G.Linear(descending, $"{p}.pos_key_proj", G.Hidden, G.Hidden))
                : G.Linear(descending, $"{p}.pos_proj", G.Hidden, G.Hidden, bias: false);
            var c2p = G.RelativeShift(W.Op("MatMul", "c2p_all", [queryHeads.Value, RelativeHeads(keys)]));
            bias = V2 ? W.Op("Div", "c2p", [c2p, G.Scalar(Scale)]) : c2p;
        }

        if (P2C)
        {
            // Column k is distance k−(L−1): shifting row j lines up distance i − j in column i; then transpose to [i, j].
            var queries = V2
                ? (Config.ShareAttKey ? ProjectPacked(ascending, qkv, qkvBias, 0) : G.Linear(ascending, $"{p}.pos_query_proj", G.Hidden, G.Hidden))
                : W.Op("Div", "pos_query_scaled", [G.Linear(ascending, $"{p}.pos_q_proj", G.Hidden, G.Hidden), G.Scalar(Scale)]);
            var shifted = G.RelativeShift(W.Op("MatMul", "p2c_all", [keyHeads.Value, RelativeHeads(queries)]));
            var p2c = W.Op("Transpose", "p2c_t", [shifted], Attr("perm", [0L, 1, 3, 2]));
            if (V2)
            {
                p2c = W.Op("Div", "p2c", [p2c, G.Scalar(Scale)]);
            }

            bias = bias is null ? p2c : W.Op("Add", "relative_bias", [bias, p2c]);
        }

        return bias;
    }

    /// <summary><c>[2L, H]</c> → <c>[heads, d, 2L]</c>, to multiply <c>[B, heads, L, d]</c> on the left.</summary>
    private string RelativeHeads(string x) => W.Op(
        "Transpose",
        "relative_heads",
        [W.Op("Reshape", "relative_split", [x, W.Int64s(-1, G.Heads, G.HeadSize)])],
        Attr("perm", [1L, 2, 0]));

    /// <summary>share_att_key: the relative rows through the layer's own query (part 0) or key (part 1) projection, bias included.</summary>
    private string ProjectPacked(string rows, string qkv, string qkvBias, int part)
    {
        var h = G.Hidden;
        var weight = W.Op("Slice", "shared_weight", [qkv, W.Int64s(part * h), W.Int64s((part + 1) * h), W.Int64s(1)]);
        var bias = W.Op("Slice", "shared_bias", [qkvBias, W.Int64s(part * h), W.Int64s((part + 1) * h), W.Int64s(0)]);
        return W.Op("Add", "shared_projection", [W.Op("MatMul", "shared_matmul", [rows, weight]), bias]);
    }

    /// <summary>
    /// The relative embedding rows for distances <c>L−1 … −L</c> (descending, for c2p) and <c>−(L−1) … L</c>
    /// (ascending, for p2c), <c>[2L, H]</c> each, after v2's LayerNorm of the table. Built once per run.
    /// </summary>
    private (string Descending, string Ascending) RelativeRows()
    {
        if (_relativeRows is { } rows)
        {
            return rows;
        }

        var scope = W.Scope;
        W.Scope = "relative";
        var tableName = "encoder.rel_embeddings.weight";
        var tableRows = RelativePositions.DebertaTableRows(Config);
        var table = V2 && Config.NormRelEbd == "layer_norm"
            ? G.ToCompute(G.LayerNorm(G.Param32(tableName, tableRows, G.Hidden), "encoder.LayerNorm"))
            : G.Param(tableName, tableRows, G.Hidden);

        var k = G.Positions(W.Op("Mul", "two_l", [G.LengthScalar, W.Int64Scalar(2)]), "columns");
        var last = W.Op("Sub", "last", [G.LengthScalar, W.Int64Scalar(1)]);
        var lookup = RelativePositions.DebertaRows(Config);
        var descending = RelativePositions.LookUp(G, W.Op("Sub", "descending", [last, k]), lookup, "rows_descending");
        var ascending = RelativePositions.LookUp(G, W.Op("Sub", "ascending", [k, last]), lookup, "rows_ascending");
        _relativeRows = (W.Op("Gather", "relative_descending", [table, descending]), W.Op("Gather", "relative_ascending", [table, ascending]));
        W.Scope = scope;
        return _relativeRows.Value;
    }
}
