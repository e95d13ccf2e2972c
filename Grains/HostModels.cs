using System.Collections.Concurrent;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// The models of this host (a singleton of its silo, so it outlives any one host-grain activation): the canonical
/// name of each requested name, found before any model grain is activated, the models loaded now, and, for the
/// fronts' routing (<see cref="Describe"/>), what each is ready for or being loaded for and how long its load took.
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
    /// Runs <paramref name="load"/>, the model grain's load of <paramref name="name"/> for <paramref name="use"/>, and
    /// records it: while a first load runs the model shows as loading, after it as ready with the load's duration.
    /// A model already ready for the use is only passed through (its grain answers at once).
    /// </summary>
    public async Task<T> TrackLoadAsync<T>(string name, ModelUse use, Func<Task<T>> load)
    {
        var readiness = _readiness.GetOrAdd(name, _ => new Readiness());
        if (readiness.IsReady(use))
        {
            return await load();
        }

        readiness.Begin(use);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            var result = await load();
            readiness.Complete(use, watch.Elapsed);
            return result;
        }
        finally
        {
            readiness.End(use);
            if (readiness.IsEmpty)
            {
                // A load that failed leaves no entry behind (a made-up name must not accumulate state).
                _readiness.TryRemove(new KeyValuePair<string, Readiness>(name, readiness));
            }
        }
    }

    /// <summary>The models ready or loading on this host, with the spellings requests used for them: what the fronts route by.</summary>
    public IReadOnlyList<HostModel> Describe()
    {
        if (_readiness.IsEmpty)
        {
            return [];
        }

        var aliases = _canonical.Where(c => c.Key != c.Value).ToLookup(c => c.Value, c => c.Key, StringComparer.Ordinal);
        return [.. _readiness
            .Select(r => r.Value.Describe(r.Key, [.. aliases[r.Key].Order(StringComparer.Ordinal)]))
            .OfType<HostModel>()
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

    /// <summary>What one model is ready for and being loaded for; its loads counted per use, since several callers may wait on the same first load.</summary>
    private sealed class Readiness
    {
        private readonly Lock _lock = new();
        private ModelUses _ready;
        private int _embeddingLoads;
        private int _bertScoreLoads;
        private double _loadSeconds;

        public bool IsEmpty
        {
            get
            {
                lock (_lock)
                {
                    return _ready == ModelUses.None && _embeddingLoads == 0 && _bertScoreLoads == 0;
                }
            }
        }

        public bool IsReady(ModelUse use)
        {
            lock (_lock)
            {
                return (_ready & use.AsFlag()) != 0;
            }
        }

        public void Begin(ModelUse use) => Count(use, +1);

        public void End(ModelUse use) => Count(use, -1);

        public void Complete(ModelUse use, TimeSpan took)
        {
            lock (_lock)
            {
                // The first caller's wait is the load's duration; later callers of the same load waited less.
                if ((_ready & use.AsFlag()) == 0)
                {
                    _loadSeconds = Math.Max(_loadSeconds, took.TotalSeconds);
                }

                _ready |= use.AsFlag();
            }
        }

        public HostModel? Describe(string name, IReadOnlyList<string> aliases)
        {
            lock (_lock)
            {
                var loading = (_embeddingLoads > 0 ? ModelUses.Embedding : ModelUses.None) | (_bertScoreLoads > 0 ? ModelUses.BertScore : ModelUses.None);
                loading &= ~_ready;
                return _ready == ModelUses.None && loading == ModelUses.None
                    ? null
                    : new HostModel(name, aliases, _ready, loading, Math.Round(_loadSeconds, 3));
            }
        }

        private void Count(ModelUse use, int delta)
        {
            lock (_lock)
            {
                if (use == ModelUse.Embedding)
                {
                    _embeddingLoads += delta;
                }
                else
                {
                    _bertScoreLoads += delta;
                }
            }
        }
    }
}
