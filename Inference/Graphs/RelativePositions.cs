namespace OrleansGpu.Inference.Graphs;

/// <summary>
/// Relative-position rules as lookup tables over the distance <c>r = i − j</c>: computed here once, in float32 as
/// transformers computes them, and looked up in the graph with distances computed there from the sequence length,
/// so one graph serves every length. Each table spans <c>−Radius … Radius</c>; the rule is constant beyond that, so
/// a distance is clamped into the span before the lookup.
/// </summary>
internal static class RelativePositions
{
    /// <summary>MPNet's <c>relative_attention_num_buckets</c> as modeling_mpnet.py hard-codes it (l.383).</summary>
    public const int MPNetBucketCount = 32;

    private const int MPNetMaxDistance = 128;

    public sealed record Table(int Radius, long[] Values);

    /// <summary>
    /// MPNet's <c>relative_position_bucket</c> (l.383–399) for <c>n = i − j</c>: 16 more when <c>n &lt; 0</c>;
    /// <c>|n| &lt; 8 → |n|</c>, else <c>min(15, 8 + trunc(log(|n|/8)/log(16)·8))</c> in float32.
    /// </summary>
    public static long MPNetBucket(long n)
    {
        const int half = MPNetBucketCount / 2;
        const int exact = half / 2;
        var ret = n < 0 ? half : 0;
        var magnitude = Math.Abs(n);
        if (magnitude < exact)
        {
            return ret + magnitude;
        }

        var large = exact + (long)(MathF.Log(magnitude / (float)exact) / (float)Math.Log(MPNetMaxDistance / (double)exact) * (half - exact));
        return ret + Math.Min(large, half - 1);
    }

    public static Table MPNetBuckets() => Build(MPNetMaxDistance, MPNetBucket, MPNetBucket(-MPNetMaxDistance), MPNetBucket(MPNetMaxDistance));

    /// <summary>
    /// DeBERTa v2's <c>make_log_bucket_position</c> (modeling_deberta_v2.py l.555–567), float32 as there:
    /// <c>|r| ≤ mid → r</c>, else <c>sign(r)·(ceil(log(|r|/mid)/log((P−1)/mid)·(mid−1)) + mid)</c>.
    /// </summary>
    public static long LogBucket(long r, int buckets, int maxPosition)
    {
        var mid = buckets / 2;
        var magnitude = r < mid && r > -mid ? mid - 1 : Math.Abs(r);
        if (magnitude <= mid)
        {
            return r;
        }

        var log = MathF.Ceiling(MathF.Log(magnitude / (float)mid) / MathF.Log((float)((maxPosition - 1) / (double)mid)) * (mid - 1)) + mid;
        return (long)log * Math.Sign(r);
    }

    /// <summary>
    /// The row of DeBERTa's relative embedding table that distance r uses, for c2p and p2c alike:
    /// <c>clamp(b(r) + span, 0, 2·span − 1)</c>, with <c>b</c> the log bucket when <c>position_buckets</c> &gt; 0 (span =
    /// buckets) and the identity otherwise (span = <c>max_relative_positions</c>). For v1 this is what the code's
    /// <c>att_span</c> slice and clamp reduce to whatever the padded length (modeling_deberta.py l.702–737).
    /// </summary>
    public static Table DebertaRows(ModelArchitectureConfig config)
    {
        var buckets = config.ModelType == "deberta-v2" && config.PositionBuckets > 0 ? config.PositionBuckets : 0;
        var span = buckets > 0 ? buckets : config.RelativeSpan;
        var maxPosition = config.RelativeSpan;
        long Row(long r) => Math.Clamp((buckets > 0 ? LogBucket(r, buckets, maxPosition) : r) + span, 0, (2 * span) - 1);
        return Build(buckets > 0 ? maxPosition : span, Row, 0, (2 * span) - 1);
    }

    /// <summary>The number of rows <see cref="DebertaRows"/> indexes: the length the relative embedding table must have.</summary>
    public static int DebertaTableRows(ModelArchitectureConfig config) =>
        2 * (config.ModelType == "deberta-v2" && config.PositionBuckets > 0 ? config.PositionBuckets : config.RelativeSpan);

    /// <summary><c>table[clamp(distance, −R, R) + R]</c> for an int64 tensor of distances of any shape.</summary>
    public static string LookUp(EncoderGraph g, string distances, Table table, string hint)
    {
        var w = g.W;
        var name = w.Int64Table(w.Name(hint + "_table"), table.Values);
        var clamped = w.Op("Clip", hint + "_clamped", [distances, w.Int64Scalar(-table.Radius), w.Int64Scalar(table.Radius)]);
        return w.Op("Gather", hint, [name, w.Op("Add", hint + "_index", [clamped, w.Int64Scalar(table.Radius)])]);
    }

    private static Table Build(int radius, Func<long, long> rule, long atMinus, long atPlus)
    {
        var values = new long[(2 * radius) + 1];
        for (var r = -radius; r <= radius; r++)
        {
            values[r + radius] = rule(r);
        }

        // The lookup clamps distances into the table, which is right only if the rule has stopped changing there.
        if (values[0] != atMinus || values[^1] != atPlus || rule(-radius - 1) != atMinus || rule(radius + 1) != atPlus)
        {
            throw new InvalidOperationException($"The relative-position rule does not saturate at ±{radius}.");
        }

        return new Table(radius, values);
    }
}
