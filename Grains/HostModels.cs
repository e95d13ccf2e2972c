using System.Collections.Concurrent;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// The models asked of this host (a singleton of its silo, so it outlives any one host-grain activation), under
/// their canonical names: <c>all-MiniLM-L6-v2</c> and <c>sentence-transformers/all-MiniLM-L6-v2</c> are one model,
/// loaded once.
/// </summary>
public sealed class HostModels(ModelStore store)
{
    private readonly ConcurrentDictionary<string, string> _canonical = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _asked = new(StringComparer.Ordinal);

    /// <summary>Every model asked of this host so far; the model grains say which are loaded.</summary>
    public IReadOnlyCollection<string> Asked => [.. _asked.Keys];

    /// <summary>
    /// The installed model's canonical name, remembered once found. A name that resolves to nothing is returned as
    /// given (not remembered, since the model may be installed later); its model grain reports the error.
    /// </summary>
    public string Canonical(string requested)
    {
        if (_canonical.TryGetValue(requested, out var known))
        {
            return known;
        }

        string name;
        try
        {
            name = store.Resolve(requested).Name;
            _canonical[requested] = name;
        }
        catch (Exception ex) when (ex is ModelNotFoundException or InvalidModelException or ArgumentException)
        {
            name = requested.Trim();
        }

        _asked.TryAdd(name, 0);
        return name;
    }
}
