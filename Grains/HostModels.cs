using System.Collections.Concurrent;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// The models of this host (a singleton of its silo, so it outlives any one host-grain activation): the canonical
/// name of each requested name, found before any model grain is activated, and the models loaded now.
/// <c>all-MiniLM-L6-v2</c> and <c>sentence-transformers/all-MiniLM-L6-v2</c> are one model, loaded once. A name that
/// resolves to nothing leaves nothing behind: no grain, no entry (issue 10: made-up names must not accumulate state).
/// </summary>
public sealed class HostModels(ModelSources sources)
{
    /// <summary>Requested spellings remembered at most; past it the memory starts again (it only saves a lookup).</summary>
    private const int MaxRemembered = 4096;

    private readonly ConcurrentDictionary<string, string> _canonical = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _loaded = new(StringComparer.Ordinal);

    /// <summary>The models loaded on this host now, by canonical name.</summary>
    public IReadOnlyCollection<string> Loaded => [.. _loaded.Keys];

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

    public void MarkLoaded(string name) => _loaded.TryAdd(name, 0);

    public void MarkUnloaded(string name) => _loaded.TryRemove(name, out _);
}
