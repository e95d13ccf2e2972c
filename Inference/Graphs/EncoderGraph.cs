using Onnx;
using OrleansGpu.Inference.Checkpoints;
using static OrleansGpu.Inference.Graphs.OnnxGraphWriter;

namespace OrleansGpu.Inference.Graphs;

/// <summary>How the attention scores of padding are removed (transformers 4.30's rule for each family).</summary>
internal enum MaskRule
{
    /// <summary>BERT, RoBERTa, MPNet: <c>scores + (1 − mask_j) · float32.min</c>.</summary>
    Additive,

    /// <summary>DistilBERT: <c>masked_fill(mask_j == 0, float32.min)</c>.</summary>
    KeyFill,

    /// <summary>DeBERTa's XSoftmax: the 2-D mask <c>m_i · m_j</c> fills with float32.min, and the masked probabilities become exactly 0.</summary>
    XSoftmax,
}

/// <summary>
/// The building blocks every encoder family shares, over one graph: weights read from the checkpoint (checked
/// against the config's sizes and written in the layout and precision the graph wants), the inputs and the masks
/// derived from them once, linear layers, LayerNorm, GELU, attention. The options decide three things:
/// <list type="bullet">
/// <item><see cref="Fused"/>: ONNX Runtime's fused <c>com.microsoft</c> kernels (SkipLayerNormalization, BiasGelu,
/// Attention, MultiHeadAttention) over plain ONNX ops; the arithmetic is the same.</item>
/// <item><see cref="Packed"/>: inside each layer, every per-token step (projections, feed-forward, LayerNorm) runs on
/// the real tokens only, gathered as <c>[tokens, C]</c> by the attention mask; only the attention product sees the
/// padded <c>[batch, L]</c> layout it needs. Between layers the hidden states stay padded <c>[batch, L, H]</c>, so
/// every layer's output is where an unpacked graph has it (layer cuts and pooling read it unchanged).</item>
/// <item><see cref="Fp16"/>: weights and matrix products in float16, while the residual stream, every LayerNorm and
/// every softmax stay in float32 (the products are cast up before their residual sum, the scores before the mask).
/// Hidden states between layers, and so the outputs, are float32.</item>
/// </list>
/// </summary>
internal sealed class EncoderGraph(OnnxGraphWriter writer, ICheckpoint checkpoint, ModelArchitectureConfig config, NativeGraphOptions options)
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";

    private string? _shape;
    private string? _length;
    private string? _lengthScalar;
    private string? _additiveMask;
    private string? _keyMask;
    private string? _pairMask;
    private string? _maskInt32;
    private string? _maskFloat;
    private string? _maskBool;
    private string? _tokenIndex;
    private string? _unpackIndex;
    private readonly Dictionary<string, (string Name, bool Fp16)> _written = new(StringComparer.Ordinal);

    public OnnxGraphWriter W { get; } = writer;

    public ModelArchitectureConfig Config { get; } = config;

    public bool Fused { get; } = options.Variant == GraphVariant.Fused;

    public bool Packed { get; } = options.Packed;

    public bool Fp16 { get; } = options.Precision == GraphPrecision.Fp16;

    public int Hidden => Config.HiddenSize;

    public int Heads => Config.NumAttentionHeads;

    public int HeadSize => Config.HeadSize;

    /// <summary>
    /// What the fused attention kernels fill masked scores with: float32.min as transformers does, or float16's most
    /// negative finite value in float16, where float32.min would be −∞ (and a row of −∞ a NaN).
    /// </summary>
    public float MaskFillValue => Fp16 ? (float)System.Half.MinValue : float.MinValue;

    // ---- Weights ----------------------------------------------------------------------------------------------

    /// <summary>Reads a tensor as float32 after checking that its shape is <paramref name="shape"/>.</summary>
    public float[] Read(string name, params long[] shape)
    {
        if (checkpoint is ISyntheticCheckpoint synthetic)
        {
            return synthetic.Make(name, shape);
        }

        if (!checkpoint.Contains(name))
        {
            throw new GraphBuildException($"The checkpoint has no tensor {name}, which a {Config.ModelType} model needs.");
        }

        var info = checkpoint.Info(name);
        if (!info.Shape.SequenceEqual(shape))
        {
            throw new GraphBuildException(
                $"{name} has shape [{string.Join(", ", info.Shape)}]; config.json implies [{string.Join(", ", shape)}].");
        }

        return checkpoint.ReadFloat32(name);
    }

    /// <summary>A checkpoint tensor as it is, in the precision of the products (embeddings, projection biases).</summary>
    public string Param(string name, params long[] shape) => Once(name, Fp16, () => Weight(name, Read(name, shape), Fp16, shape));

    /// <summary>A checkpoint tensor as it is, in float32 whatever the precision: LayerNorm parameters and what the residual sum adds.</summary>
    public string Param32(string name, params long[] shape) => Once(name, false, () => Weight(name, Read(name, shape), false, shape));

    /// <summary><c>embeddings.word_embeddings.weight</c>, <c>[vocab_size, H]</c>.</summary>
    public string WordEmbeddings => Param("embeddings.word_embeddings.weight", Config.VocabSize, Hidden);

    /// <summary><c>embeddings.position_embeddings.weight</c>, <c>[max_position_embeddings, H]</c>.</summary>
    public string PositionEmbeddings => Param("embeddings.position_embeddings.weight", Config.MaxPositionEmbeddings, Hidden);

    /// <summary>Token type 0's embedding, <c>[H]</c>: the type of every token when no token_type_ids are given.</summary>
    public string TokenTypeZero => TableRow("embeddings.token_type_embeddings.weight", 0, Config.TypeVocabSize, Hidden);

    /// <summary>Row <paramref name="row"/> of a <c>[rows, columns]</c> table, as a vector (BERT's token type 0).</summary>
    public string TableRow(string name, int row, int rows, int columns)
    {
        var rowName = $"{name}[{row}]";
        return Once(rowName, Fp16, () =>
        {
            if (row >= rows)
            {
                throw new GraphBuildException($"{name} has {rows} rows; row {row} is needed.");
            }

            return Weight(rowName, Read(name, rows, columns).AsSpan(row * columns, columns), Fp16, columns);
        });
    }

    /// <summary>A linear layer's <c>[out, in]</c> weight, written transposed for <c>MatMul(x, W)</c>.</summary>
    public string LinearWeight(string name, int outFeatures, int inFeatures) => Once(name, Fp16, () =>
        Weight(name, Transpose(Read(name, outFeatures, inFeatures), outFeatures, inFeatures), Fp16, inFeatures, outFeatures));

    private string Once(string name, bool fp16, Func<string> write)
    {
        if (_written.TryGetValue(name, out var written))
        {
            // One initializer per name: a tensor wanted in both precisions would be a builder bug.
            return written.Fp16 == fp16
                ? written.Name
                : throw new InvalidOperationException($"{name} is wanted in float16 and in float32.");
        }

        _written[name] = (write(), fp16);
        return _written[name].Name;
    }

    /// <summary>Writes a weight in float32, or rounded to float16 (refused if a value is beyond float16's range).</summary>
    private string Weight(string name, ReadOnlySpan<float> data, bool fp16, params long[] dims)
    {
        if (!fp16)
        {
            return W.Weight(name, data, dims);
        }

        var half = new Half[data.Length];
        for (var i = 0; i < data.Length; i++)
        {
            half[i] = (Half)data[i];
            if (System.Half.IsInfinity(half[i]) && !float.IsInfinity(data[i]))
            {
                throw new GraphBuildException($"{name} holds {data[i]}, beyond float16's range (±65504): this model cannot be built in fp16.");
            }
        }

        return W.Weight(name, half, dims);
    }

    /// <summary>
    /// Q, K and V projections packed as one <c>[in, 3·H]</c> matrix (columns Q | K | V) and one bias, so one product
    /// makes all three; the per-column dot products are the ones the three separate layers compute.
    /// </summary>
    public (string Weight, string Bias) PackedQkv(string name, float[] q, float[] k, float[] v, float[] qBias, float[] kBias, float[] vBias)
    {
        var h = Hidden;
        var packed = new float[h * 3 * h];
        float[][] parts = [q, k, v];
        for (var p = 0; p < 3; p++)
        {
            var source = parts[p];
            for (var o = 0; o < h; o++)
            {
                for (var i = 0; i < h; i++)
                {
                    packed[(i * 3 * h) + (p * h) + o] = source[(o * h) + i];
                }
            }
        }

        var weight = Once(name + ".weight", Fp16, () => Weight(name + ".weight", packed, Fp16, h, 3 * h));
        var bias = Once(name + ".bias", Fp16, () => Weight(name + ".bias", [.. qBias, .. kBias, .. vBias], Fp16, 3 * h));
        return (weight, bias);
    }

    public static float[] Transpose(float[] source, int rows, int columns)
    {
        var result = new float[source.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                result[(c * rows) + r] = source[(r * columns) + c];
            }
        }

        return result;
    }

    // ---- Inputs and what is derived from them once per run -----------------------------------------------------

    /// <summary><c>[batch, sequence]</c> as a 1-D int64 tensor.</summary>
    public string InputShape => _shape ??= W.Op("Shape", "input_shape", [InputIds]);

    /// <summary>The sequence length as a 1-D int64 tensor of one element.</summary>
    public string Length => _length ??= W.Op("Slice", "length", [InputShape, W.Int64s(1), W.Int64s(2)]);

    /// <summary>The sequence length as a 0-D int64 tensor.</summary>
    public string LengthScalar => _lengthScalar ??= W.Op("Squeeze", "length_scalar", [Length, W.Int64s(0)]);

    /// <summary><c>0 … L−1</c> (int64).</summary>
    public string Positions(string lengthScalar, string hint = "positions") =>
        W.Op("Range", hint, [W.Int64Scalar(0), lengthScalar, W.Int64Scalar(1)]);

    /// <summary><c>[batch, 1, 1, L]</c>: <c>(1 − mask) · float32.min</c>, as BertModel's extended attention mask.</summary>
    public string AdditiveMask => _additiveMask ??= W.Op(
        "Unsqueeze",
        "additive_mask",
        [W.Op("Mul", "mask_min", [W.Op("Sub", "mask_inverted", [W.Float(1f), MaskFloat]), W.Float(float.MinValue)]), W.Int64s(1, 2)]);

    /// <summary>The attention mask as float32 <c>[batch, L]</c>.</summary>
    public string MaskFloat => _maskFloat ??= W.Op("Cast", "mask_float", [AttentionMask], Attr("to", (long)TensorProto.Types.DataType.Float));

    /// <summary><c>[batch, 1, 1, L]</c> boolean: which keys are real tokens.</summary>
    public string KeyMask => _keyMask ??= W.Op("Unsqueeze", "key_mask", [MaskBool, W.Int64s(1, 2)]);

    /// <summary><c>[batch, 1, L, L]</c> boolean: <c>m_i · m_j</c>, DeBERTa's 2-D mask.</summary>
    public string PairMask => _pairMask ??= W.Op(
        "And", "pair_mask", [KeyMask, W.Op("Unsqueeze", "query_mask", [MaskBool, W.Int64s(1, 3)])]);

    /// <summary>The attention mask as int32 <c>[batch, L]</c>, the form ONNX Runtime's fused attention takes.</summary>
    public string MaskInt32 => _maskInt32 ??= W.Op("Cast", "mask_int32", [AttentionMask], Attr("to", (long)TensorProto.Types.DataType.Int32));

    private string MaskBool => _maskBool ??= W.Op("Cast", "mask_bool", [AttentionMask], Attr("to", (long)TensorProto.Types.DataType.Bool));

    /// <summary><c>[tokens]</c>: where the real tokens are in the flattened <c>[batch · L]</c> mask, in order.</summary>
    public string TokenIndex => _tokenIndex ??= W.Op(
        "Reshape",
        "token_index",
        [W.Op("NonZero", "real_tokens", [W.Op("Reshape", "mask_flat", [AttentionMask, W.Int64s(-1)])]), W.Int64s(-1)]);

    /// <summary>
    /// <c>[batch, L]</c>: for each padded position, its row among the packed tokens (the running count of real tokens,
    /// minus one). A padding position gets its sequence's last real token (or, before any, the last token of all):
    /// a finite row whose attention scores the mask removes and whose output no one reads.
    /// </summary>
    public string UnpackIndex => _unpackIndex ??= W.Op(
        "Reshape",
        "unpack_index",
        [W.Op("Sub", "token_row", [W.Op("CumSum", "token_count", [W.Op("Reshape", "mask_flat", [AttentionMask, W.Int64s(-1)]), W.Int64Scalar(0)]), W.Int64Scalar(1)]), InputShape]);

    /// <summary>Packed graphs: <c>[batch, L, C]</c> → <c>[tokens, C]</c>, the real tokens only. Unpacked: <paramref name="x"/> as it is.</summary>
    public string Pack(string x, int width) =>
        Packed ? W.Op("Gather", "pack", [W.Op("Reshape", "pack_rows", [x, W.Int64s(-1, width)]), TokenIndex], Attr("axis", 0L)) : x;

    /// <summary>Packed graphs: <c>[tokens, C]</c> → <c>[batch, L, C]</c> (padding positions hold a finite stand-in, see <see cref="UnpackIndex"/>).</summary>
    public string Unpack(string x) => Packed ? W.Op("Gather", "unpack", [x, UnpackIndex], Attr("axis", 0L)) : x;

    // ---- Precision ----------------------------------------------------------------------------------------------

    /// <summary>A float32 tensor in the precision of the products (a Cast in fp16 graphs).</summary>
    public string ToCompute(string x) =>
        Fp16 ? W.Op("Cast", "to_fp16", [x], Attr("to", (long)TensorProto.Types.DataType.Float16)) : x;

    /// <summary>A tensor in the precision of the products, in float32 (a Cast in fp16 graphs).</summary>
    public string ToFloat32(string x) =>
        Fp16 ? W.Op("Cast", "to_fp32", [x], Attr("to", (long)TensorProto.Types.DataType.Float)) : x;

    /// <summary>A scalar constant in the precision of the products, for arithmetic on them.</summary>
    public string Scalar(float value) => Fp16 ? W.Float16(value) : W.Float(value);

    /// <summary>
    /// RoBERTa's and MPNet's positions, from the ids (not the attention mask): <c>cumsum(ids ≠ pad) · (ids ≠ pad) + pad</c>,
    /// so the first token is <c>pad + 1</c> and padding is <c>pad</c>.
    /// </summary>
    public string PositionsFromIds(int padId)
    {
        var notPad = W.Op("Cast", "not_pad", [W.Op("Not", "is_not_pad", [W.Op("Equal", "is_pad", [InputIds, W.Int64Scalar(padId)])])], Attr("to", (long)TensorProto.Types.DataType.Int64));
        var counted = W.Op("CumSum", "position_count", [notPad, W.Int64Scalar(1)]);
        return W.Op("Add", "position_ids", [W.Op("Mul", "position_masked", [counted, notPad]), W.Int64Scalar(padId)]);
    }

    /// <summary>The rows <c>0 … L−1</c> of a position table (BERT, DistilBERT): <c>[L, H]</c>, broadcast over the batch.</summary>
    public string LeadingRows(string table) => W.Op("Slice", "position_rows", [table, W.Int64s(0), Length, W.Int64s(0)]);

    // ---- Blocks -------------------------------------------------------------------------------------------------

    /// <summary>LayerNorm over the last axis of a float32 tensor with the checkpoint's <c>weight</c>/<c>bias</c>, in float32.</summary>
    public string LayerNorm(string x, string prefix, double? eps = null) => W.Op(
        "LayerNormalization",
        "layer_norm",
        [x, Param32(prefix + ".weight", Hidden), Param32(prefix + ".bias", Hidden)],
        Attr("axis", -1L),
        Attr("epsilon", (float)(eps ?? Config.LayerNormEps)),
        Attr("stash_type", 1L));

    /// <summary><c>x·Wᵀ + b</c> from <c>prefix.weight</c> (<c>[out, in]</c>) and, when present, <c>prefix.bias</c>, in the precision of the products.</summary>
    public string Linear(string x, string prefix, int inFeatures, int outFeatures, bool bias = true)
    {
        var product = W.Op("MatMul", "matmul", [x, LinearWeight(prefix + ".weight", outFeatures, inFeatures)]);
        return bias ? W.Op("Add", "add_bias", [product, Param(prefix + ".bias", outFeatures)]) : product;
    }

    /// <summary>The feed-forward's first half: <c>gelu(x·Wᵀ + b)</c> with the exact erf GELU, from a float32 <paramref name="x"/>.</summary>
    public string LinearGelu(string x, string prefix, int inFeatures, int outFeatures)
    {
        x = ToCompute(x);
        if (Fused)
        {
            var product = W.Op("MatMul", "matmul", [x, LinearWeight(prefix + ".weight", outFeatures, inFeatures)]);
            return W.MsOp("BiasGelu", "bias_gelu", [product, Param(prefix + ".bias", outFeatures)]);
        }

        return Gelu(Linear(x, prefix, inFeatures, outFeatures));
    }

    /// <summary><c>x · ½ · (1 + erf(x / √2))</c>.</summary>
    public string Gelu(string x)
    {
        var erf = W.Op("Erf", "gelu_erf", [W.Op("Div", "gelu_scaled", [x, Scalar(MathF.Sqrt(2f))])]);
        var product = W.Op("Mul", "gelu_product", [x, W.Op("Add", "gelu_one_plus", [erf, Scalar(1f)])]);
        return W.Op("Mul", "gelu", [product, Scalar(0.5f)]);
    }

    /// <summary>
    /// A dense layer, its residual and a LayerNorm: <c>LayerNorm(x·Wᵀ + b + residual)</c>, as the attention output and
    /// the feed-forward output of every post-LN encoder compute it (SkipLayerNormalization when fused). The product is
    /// cast to float32 before the sum: <paramref name="residual"/> and the result are float32.
    /// </summary>
    /// <param name="endsLayer">The result is the layer's hidden state: in packed graphs, the sum is unpacked to <c>[batch, L, H]</c> before the LayerNorm.</param>
    public string LinearAddNorm(string x, string prefix, int inFeatures, string residual, string normPrefix, bool endsLayer = false)
    {
        var product = ToFloat32(W.Op("MatMul", "matmul", [x, LinearWeight(prefix + ".weight", Hidden, inFeatures)]));
        var bias = Param32(prefix + ".bias", Hidden);
        var unpack = endsLayer && Packed;
        if (Fused && !unpack)
        {
            return W.MsOp(
                "SkipLayerNormalization",
                "skip_layer_norm",
                [product, residual, Param32(normPrefix + ".weight", Hidden), Param32(normPrefix + ".bias", Hidden), bias],
                Attr("epsilon", (float)Config.LayerNormEps));
        }

        var sum = W.Op("Add", "residual", [W.Op("Add", "add_bias", [product, bias]), residual]);
        return LayerNorm(unpack ? Unpack(sum) : sum, normPrefix);
    }

    /// <summary><c>[B, L, H]</c> → <c>[B, heads, L, d]</c>, or <c>[B, heads, d, L]</c> when <paramref name="transposed"/>.</summary>
    public string SplitHeads(string x, bool transposed = false) => W.Op(
        "Transpose",
        transposed ? "heads_t" : "heads",
        [W.Op("Reshape", "split_heads", [x, W.Int64s(0, 0, Heads, HeadSize)])],
        Attr("perm", transposed ? [0L, 2, 3, 1] : [0L, 2, 1, 3]));

    /// <summary><c>[B, heads, L, d]</c> → <c>[B, L, H]</c>.</summary>
    public string MergeHeads(string x) => W.Op(
        "Reshape",
        "merge_heads",
        [W.Op("Transpose", "heads_back", [x], Attr("perm", [0L, 2, 1, 3])), W.Int64s(0, 0, Hidden)]);

    /// <summary>Splits a packed <c>[B, L, 3·H]</c> projection into Q, K and V.</summary>
    public (string Q, string K, string V) SplitQkv(string packed)
    {
        var parts = W.Op("Split", "qkv", [packed, W.Int64s(Hidden, Hidden, Hidden)], 3, "", Attr("axis", -1L));
        return (parts[0], parts[1], parts[2]);
    }

    /// <summary>
    /// The packed QKV projection of a layer's float32 input <paramref name="x"/> (<c>[B, L, H]</c>, or <c>[tokens, H]</c>
    /// when packed), in the precision of the products, as <c>[B, L, 3·H]</c>: the projection runs on the real tokens
    /// only, and is unpacked for the attention product.
    /// </summary>
    public string ProjectQkv(string x, string qkvWeight, string qkvBias) =>
        Unpack(W.Op("Add", "qkv_bias", [W.Op("MatMul", "qkv", [ToCompute(x), qkvWeight]), qkvBias]));

    /// <summary>
    /// Self-attention of BERT's shape over a packed QKV projection: <c>softmax(q·kᵀ·scale + bias + mask)·v</c>, before
    /// the output projection, in the layout of <paramref name="x"/> and the precision of the products. Plain: MatMul,
    /// Softmax and the family's mask rule; fused: ONNX Runtime's Attention kernel (MultiHeadAttention over the unpacked
    /// projection when packed), whose padding mask fills with <see cref="MaskFillValue"/>.
    /// </summary>
    /// <param name="x">The layer's float32 input, <c>[B, L, H]</c> or, packed, <c>[tokens, H]</c>.</param>
    /// <param name="scaleQueryFirst">DistilBERT divides q by √d before the product; BERT divides the product.</param>
    /// <param name="bias">An additive <c>[1 or B, heads, L, L]</c> score bias (MPNet's relative positions).</param>
    public string SelfAttention(string x, string qkvWeight, string qkvBias, MaskRule rule, bool scaleQueryFirst, string? bias = null)
    {
        var scale = MathF.Sqrt(HeadSize);
        if (Fused && !Packed)
        {
            return W.MsOp(
                "Attention",
                "attention",
                bias is null ? [ToCompute(x), qkvWeight, qkvBias, MaskInt32] : [ToCompute(x), qkvWeight, qkvBias, MaskInt32, "", bias],
                Attr("num_heads", (long)Heads),
                Attr("scale", 1f / scale),
                Attr("mask_filter_value", MaskFillValue));
        }

        var (q, k, v) = SplitQkv(ProjectQkv(x, qkvWeight, qkvBias));
        if (Fused)
        {
            return Pack(MultiHeadAttention(q, k, v, 1f / scale, bias), Hidden);
        }

        var queries = SplitHeads(q);
        if (scaleQueryFirst)
        {
            queries = W.Op("Div", "query_scaled", [queries, Scalar(scale)]);
        }

        var scores = W.Op("MatMul", "scores", [queries, SplitHeads(k, transposed: true)]);
        if (!scaleQueryFirst)
        {
            scores = W.Op("Div", "scores_scaled", [scores, Scalar(scale)]);
        }

        if (bias is not null)
        {
            scores = W.Op("Add", "scores_biased", [scores, bias]);
        }

        return Pack(MergeHeads(AttendPlain(scores, SplitHeads(v), rule)), Hidden);
    }

    /// <summary>
    /// ONNX Runtime's MultiHeadAttention over <c>[B, L, H]</c> queries, keys and values: the padding keys masked (filled
    /// with <see cref="MaskFillValue"/>), an optional <c>[1 or B, heads, L, L]</c> score bias; <c>[B, L, H]</c>.
    /// </summary>
    public string MultiHeadAttention(string q, string k, string v, float scale, string? bias = null) => W.MsOp(
        "MultiHeadAttention",
        "attention",
        bias is null ? [q, k, v, "", MaskInt32] : [q, k, v, "", MaskInt32, bias],
        Attr("num_heads", (long)Heads),
        Attr("scale", scale),
        Attr("mask_filter_value", MaskFillValue));

    /// <summary>
    /// Masks the scores by <paramref name="rule"/>, softmaxes them and weighs the values: <c>[B, heads, L, d]</c>. The
    /// mask and the softmax run in float32 whatever the precision of the products.
    /// </summary>
    public string AttendPlain(string scores, string valueHeads, MaskRule rule)
    {
        scores = ToFloat32(scores);
        var masked = rule switch
        {
            MaskRule.Additive => W.Op("Add", "scores_masked", [scores, AdditiveMask]),
            MaskRule.KeyFill => W.Op("Where", "scores_masked", [KeyMask, scores, W.Float(float.MinValue)]),
            _ => W.Op("Where", "scores_masked", [PairMask, scores, W.Float(float.MinValue)]),
        };
        var probabilities = W.Op("Softmax", "probabilities", [masked], Attr("axis", -1L));
        if (rule == MaskRule.XSoftmax)
        {
            probabilities = W.Op("Where", "probabilities_masked", [PairMask, probabilities, W.Float(0f)]);
        }

        return W.Op("MatMul", "context", [ToCompute(probabilities), valueHeads]);
    }

    /// <summary>
    /// Relative shift: from <c>X[…, i, k]</c> (<c>[B, heads, L, 2L]</c>) to <c>Y[…, i, j] = X[…, i, L − 1 − i + j]</c>
    /// (<c>[B, heads, L, L]</c>), by reading the rows as one strip and re-cutting it with a stride one shorter, as
    /// Transformer-XL does. It moves data only: with X's columns holding the scores of relative positions in
    /// descending order, Y holds each (i, j) pair's score for its own distance, with no per-element index tensor.
    /// </summary>
    public string RelativeShift(string x)
    {
        var strip = W.Op("Reshape", "shift_strip", [x, W.Int64s(0, 0, -1)]);
        var start = W.Op("Sub", "shift_start", [Length, W.Int64s(1)]);
        var rowLength = W.Op("Sub", "shift_row", [W.Op("Mul", "shift_2l", [Length, W.Int64s(2)]), W.Int64s(1)]);
        var end = W.Op("Add", "shift_end", [start, W.Op("Mul", "shift_span", [Length, rowLength])]);
        var cut = W.Op("Slice", "shift_cut", [strip, start, end, W.Int64s(2)]);
        var rows = W.Op("Reshape", "shift_rows", [cut, W.Op("Concat", "shift_shape", [W.Int64s(0, 0), Length, rowLength], Attr("axis", 0L))]);
        return W.Op("Slice", "shift", [rows, W.Int64s(0), Length, W.Int64s(3)]);
    }
}
