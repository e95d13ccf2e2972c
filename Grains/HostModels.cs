using System.Collections.Concurrent;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// The models of this host (a singleton of its silo, so it outlives any one host-grain activation): the canonical
/// name of each requested name, found before any model grain is activated, the models loaded now, and, for the
/// fronts' routing (<see cref="Describe"/>), what each is ready for or being loaded for in each precision and how long
/// its load took.
/// <c>all-MiniLM-L6-v2</c> and <c>sentence-transformers/all-MiniLM-L6-v2</c> are one model, loaded once. A name that
/// resolves to nothing leaves nothing behind: no grain, no entry (issue 10: made-up names must not accumulate state).
/// </summary>
public sealed class HostModels(ModelSources sources)
{
    /// <summary>Requested spellings remembered at most; past it the memory starts again (it only saves a lookup).</summary>
    private const int MaxRemembered = 4096;

    private readonly ConcurrentDictionary<string, string> _canonical = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _loaded = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Readiness> _readiness = new(StringComparer.Ordinal);

    /// <summary>The models loaded on this host now, by canonical name.</summary>
    public IReadOnlyCollection<string> Loaded => [.. _loaded.Keys];

    /// <summary>
    /// Runs <paramref name="load"/>, the model grain's load of <paramref name="name"/> for <paramref name="use"/> in the
    /// precision <paramref name="precision"/> says it runs in here, and records it: while a first load runs the model
    /// shows as loading in that precision, after it as ready with the load's duration. A model already ready for the use
    /// in that precision is only passed through (its grain answers at once). The precision is asked again once the load
    /// is done: a model that turned out to have no fp16 graph was loaded in fp32.
    /// </summary>
    public async Task<T> TrackLoadAsync<T>(string name, ModelUse use, Func<string> precision, Func<Task<T>> load)
    {
        var readiness = _readiness.GetOrAdd(name, _ => new Readiness());
        var wanted = precision();
        if (readiness.IsReady(use, wanted))
        {
            return await load();
        }

        readiness.Begin(use, wanted);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var result = await load();
            readiness.Complete(use, precision(), watch.Elapsed);
            return result;
        }
        finally
        {
            readiness.End(use, wanted);
            if (readiness.IsEmpty)
            {
                // A load that failed leaves no entry behind (a made-up name must not accumulate state).
                _readiness.TryRemove(new KeyValuePair<string, Readiness>(name, readiness));
            }
        }
    }

    /// <summary>
    /// The models ready or loading on this host, with the spellings requests used for them and, per precision, what is
    /// ready or loading: what the fronts route by. <paramref name="runsIn"/> tells, for a model and a requested precision
    /// (null: none), the precision it runs in here (null while unknown).
    /// </summary>
    public IReadOnlyList<HostModel> Describe(Func<string, string?, string?> runsIn)
    {
        if (_readiness.IsEmpty)
        {
            return [];
        }

        var aliases = _canonical.Where(c => c.Key != c.Value).ToLookup(c => c.Value, c => c.Key, StringComparer.Ordinal);
        return [.. _readiness
            .Select(r => r.Value.Describe(r.Key, [.. aliases[r.Key].Order(StringComparer.Ordinal)]))
            .OfType<HostModel>()
            .Select(m => m with { DefaultPrecision = runsIn(m.Name, null), Fp16Precision = runsIn(m.Name, Precisions.Fp16) })
            .OrderBy(m => m.Name, StringComparer.Ordinal)];
    }

    /// <summary>
    /// The canonical name of <paramref name="requested"/>: the model found in the models folder or the Hugging Face
    /// cache, or the repo the hub has (when it may be downloaded). Throws the client's error (unknown, not allowed,
    /// offline, hub unreachable) without activating anything.
    /// </summary>
    public async Task<string> CanonicalAsync(string requested, CancellationToken cancellationToken)
    {
        if (_canonical.TryGetValue(requested, out var known))
        {
            return known;
        }

        var name = await EngineErrors.TranslateAsync(() => sources.NameAsync(requested, cancellationToken));
        if (_canonical.Count >= MaxRemembered)
        {
            _canonical.Clear();
        }

        _canonical[requested] = name;
        return name;
    }

    /// <summary>The spellings requests used for the model <paramref name="canonical"/> on this host, other than its own name.</summary>
    public IReadOnlyList<string> AliasesOf(string canonical) =>
        [.. _canonical.Where(c => c.Value == canonical && c.Key != canonical).Select(c => c.Key).Order(StringComparer.Ordinal)];

    public void MarkLoaded(string name) => _loaded.TryAdd(name, 0);

    public void MarkUnloaded(string name)
    {
        _loaded.TryRemove(name, out _);
        _readiness.TryRemove(name, out _);
    }

    /// <summary>
    /// What one model is ready for and being loaded for, per precision (fp32 and fp16 are sessions of their own); its
    /// loads counted per use and precision, since several callers may wait on the same first load.
    /// </summary>
    private sealed class Readiness
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<string, InPrecision> _precisions = new(StringComparer.Ordinal);

        public bool IsEmpty
        {
            get
            {
                lock (_lock)
                {
                    return _precisions.Values.All(p => p.Ready == ModelUses.None && p.EmbeddingLoads == 0 && p.BertScoreLoads == 0);
                }
            }
        }

        public bool IsReady(ModelUse use, string precision)
        {
            lock (_lock)
            {
                return _precisions.TryGetValue(precision, out var p) && (p.Ready & use.AsFlag()) != 0;
            }
        }

        public void Begin(ModelUse use, string precision) => Count(use, precision, +1);

        public void End(ModelUse use, string precision) => Count(use, precision, -1);

        public void Complete(ModelUse use, string precision, TimeSpan took)
        {
            lock (_lock)
            {
                var p = Of(precision);

                // The first caller's wait is the load's duration; later callers of the same load waited less.
                if ((p.Ready & use.AsFlag()) == 0)
                {
                    p.LoadSeconds = Math.Max(p.LoadSeconds, took.TotalSeconds);
                }

                p.Ready |= use.AsFlag();
            }
        }

        /// <summary>The model's entry (<see cref="HostModel"/>): per precision, and over all precisions for fronts that read no precisions.</summary>
        public HostModel? Describe(string name, IReadOnlyList<string> aliases)
        {
            lock (_lock)
            {
                var precisions = _precisions
                    .Select(e => new ModelPrecisionLoad(e.Key, e.Value.Ready, e.Value.Loading & ~e.Value.Ready, Math.Round(e.Value.LoadSeconds, 3)))
                    .Where(p => p.Ready != ModelUses.None || p.Loading != ModelUses.None)
                    .OrderBy(p => p.Precision, StringComparer.Ordinal)
                    .ToList();
                if (precisions.Count == 0)
                {
                    return null;
                }

                var ready = precisions.Aggregate(ModelUses.None, (all, p) => all | p.Ready);
                var loading = precisions.Aggregate(ModelUses.None, (all, p) => all | p.Loading) & ~ready;
                return new HostModel(name, aliases, ready, loading, precisions.Max(p => p.LoadSeconds), precisions);
            }
        }

        private InPrecision Of(string precision)
        {
            if (!_precisions.TryGetValue(precision, out var p))
            {
                p = new InPrecision();
                _precisions[precision] = p;
            }

            return p;
        }

        private void Count(ModelUse use, string precision, int delta)
        {
            lock (_lock)
            {
                var p = Of(precision);
                if (use == ModelUse.Embedding)
                {
                    p.EmbeddingLoads += delta;
                }
                else
                {
                    p.BertScoreLoads += delta;
                }
            }
        }

        private sealed class InPrecision
        {
            public ModelUses Ready { get; set; }

            public int EmbeddingLoads { get; set; }

            public int BertScoreLoads { get; set; }

            public double LoadSeconds { get; set; }

            public ModelUses Loading => (EmbeddingLoads > 0 ? ModelUses.Embedding : ModelUses.None) | (BertScoreLoads > 0 ? ModelUses.BertScore : ModelUses.None);
        }
    }
}
