namespace OrleansGpu.Api.Scatter;

/// <summary>Items <see cref="Start"/> to <see cref="Start"/> + <see cref="Count"/> − 1 of a request: one part.</summary>
public readonly record struct PartRange(int Start, int Count)
{
    public IReadOnlyList<T> Of<T>(IReadOnlyList<T> items) => [.. items.Skip(Start).Take(Count)];
}

/// <summary>Where a request is cut into parts.</summary>
public static class SplitPlan
{
    /// <summary>
    /// The parts of a request of <paramref name="count"/> items, in order: one per host, but none smaller than
    /// <paramref name="minItems"/> (so the whole request when it holds fewer than twice that, when there is one host,
    /// or when <paramref name="minItems"/> is 0). The parts are as equal as <paramref name="canCut"/> allows: a cut
    /// goes before item <c>i</c> only where it returns true, at the allowed place nearest to the even split.
    /// </summary>
    public static IReadOnlyList<PartRange> Parts(int count, int hosts, int minItems, Func<int, bool>? canCut = null)
    {
        var parts = minItems <= 0 ? 1 : Math.Min(hosts, count / minItems);
        if (parts < 2)
        {
            return [new PartRange(0, count)];
        }

        var cuts = new List<int> { 0 };
        for (var i = 1; i < parts; i++)
        {
            var target = (int)((long)count * i / parts);
            if (Nearest(target, cuts[^1] + 1, count - 1, canCut) is { } cut)
            {
                cuts.Add(cut);
            }
        }

        cuts.Add(count);
        return [.. cuts.Zip(cuts.Skip(1), (start, end) => new PartRange(start, end - start))];
    }

    private static int? Nearest(int target, int low, int high, Func<int, bool>? canCut)
    {
        bool Allowed(int at) => at >= low && at <= high && (canCut is null || canCut(at));

        for (var distance = 0; target - distance >= low || target + distance <= high; distance++)
        {
            if (Allowed(target - distance))
            {
                return target - distance;
            }

            if (Allowed(target + distance))
            {
                return target + distance;
            }
        }

        return null;
    }
}
