using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace OrleansGpu.Grains;

/// <summary>
/// The hosts' memory series, on the <see cref="MeterName"/> meter, each tagged with the host (several silos may share a
/// process): <c>orleansgpu_host_memory_budget_bytes</c>, <c>orleansgpu_host_memory_used_bytes</c>,
/// <c>orleansgpu_host_model_memory_bytes</c> (per model), <c>orleansgpu_host_model_loads_total</c> (per model) and
/// <c>orleansgpu_host_model_evictions_total</c>. Observed from the live <see cref="HostMemory"/> instances at each scrape.
/// </summary>
public static class HostMetrics
{
    public const string MeterName = "OrleansGpu.Host";

    private static readonly Meter Meter = new(MeterName, typeof(HostMetrics).Assembly.GetName().Version?.ToString(3));

    private static readonly ConcurrentDictionary<HostMemory, byte> Hosts = new();

    static HostMetrics()
    {
        Meter.CreateObservableGauge(
            "memory_budget_bytes",
            () => Hosts.Keys.Select(h => new Measurement<long>(h.Budget == long.MaxValue ? 0 : h.Budget, Host(h))),
            "By",
            "The host's memory budget for loaded models (GPU_MEMORY_BUDGET); 0 when the device's memory is unknown");
        Meter.CreateObservableGauge(
            "memory_used_bytes",
            () => Hosts.Keys.Select(h => new Measurement<long>(h.Used, Host(h))),
            "By",
            "Memory the host's loaded models hold");
        Meter.CreateObservableGauge(
            "model_memory_bytes",
            () => Hosts.Keys.SelectMany(h => h.Held().Select(m => new Measurement<long>(m.Bytes, Model(h, m.Model)))),
            "By",
            "Memory one loaded model holds: the larger of its weights and what its load measurably took");
        Meter.CreateObservableCounter(
            "model_loads_total",
            () => Hosts.Keys.SelectMany(h => h.Loads.Select(l => new Measurement<long>(l.Value, Model(h, l.Key)))),
            "{load}",
            "Loads of a model on the host (each use, embedding or BERTScore, counts)");
        Meter.CreateObservableCounter(
            "model_evictions_total",
            () => Hosts.Keys.Select(h => new Measurement<long>(h.Evictions, Host(h))),
            "{eviction}",
            "Idle models the host unloaded to make room for another");
    }

    internal static void Register(HostMemory host) => Hosts[host] = 0;

    internal static void Unregister(HostMemory host) => Hosts.TryRemove(host, out _);

    private static TagList Host(HostMemory h) => new() { { "host", h.Host } };

    private static TagList Model(HostMemory h, string model) => new() { { "host", h.Host }, { "model", model } };
}
