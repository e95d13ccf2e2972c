using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// What is wrong with this host's models, for the fronts' routing (reported with the host's load, see
/// <see cref="HostLoad.Faults"/>): a model whose copy here failed to load (<c>failed</c>, until
/// <see cref="GpuHostOptions.LoadRetryBackoff"/> has passed: then the next request loads it again, from a fresh copy), and
/// a model whose requests failed in a forward pass <see cref="GpuHostOptions.DegradeAfterFailures"/> times in a row
/// (<c>degraded</c>, for <see cref="GpuHostOptions.DegradedCooldown"/>: then the next request probes it, and one
/// success clears it). Client errors never count. A singleton of the silo, so it outlives model grain activations.
/// </summary>
public sealed class HostModelFaults(GpuHostOptions options, ILogger<HostModelFaults> logger)
{
    public const string Failed = "failed";
    public const string Degraded = "degraded";

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>The faults of this host's models now (a cleared one is gone), each with the other spellings requests used for it.</summary>
    public IReadOnlyList<ModelFault> Describe(Func<string, IReadOnlyList<string>> aliases) =>
        _entries.IsEmpty ? [] : [.. _entries.Select(e => e.Value.Describe(e.Key, aliases)).OfType<ModelFault>().OrderBy(f => f.Model, StringComparer.Ordinal)];

    /// <summary>The model's load failed on this host, for a reason of this host's copy.</summary>
    public void LoadFailed(string model, string reason)
    {
        var until = DateTimeOffset.UtcNow + options.LoadRetryBackoff;
        _entries.AddOrUpdate(model, _ => new Entry(Failed, reason, until, 0), (_, e) => e with { Kind = Failed, Reason = reason, Until = until });
        logger.LogError(
            "{Model} failed to load on this host ({Reason}); the fronts send its requests to other hosts, and the next load after {Backoff} reads a fresh copy",
            model, reason, options.LoadRetryBackoff);
    }

    /// <summary>The model loaded: a failure before is history.</summary>
    public void Loaded(string model)
    {
        if (_entries.TryGetValue(model, out var entry) && entry.Kind == Failed && _entries.TryRemove(new(model, entry)))
        {
            logger.LogInformation("{Model} loaded on this host again after a failed load", model);
        }
    }

    /// <summary>A forward pass of the model failed for a reason of the host; enough in a row degrade it here.</summary>
    public void PassFailed(string model, string reason)
    {
        var entry = _entries.AddOrUpdate(
            model,
            _ => Count(new Entry(null, reason, DateTimeOffset.MinValue, 0), reason),
            (_, e) => Count(e, reason));
        if (entry.Kind == Degraded && entry.Failures == options.DegradeAfterFailures)
        {
            logger.LogError(
                "{Model} is degraded on this host: {Failures} forward passes failed in a row (last: {Reason}); the fronts send its requests to other hosts for {Cooldown}",
                model, entry.Failures, reason, options.DegradedCooldown);
        }
    }

    /// <summary>A forward pass of the model succeeded: its failures in a row start again from none.</summary>
    public void PassSucceeded(string model)
    {
        if (_entries.TryGetValue(model, out var entry) && entry.Kind != Failed && _entries.TryRemove(new(model, entry)) && entry.Kind == Degraded)
        {
            logger.LogInformation("{Model} serves again on this host after being degraded", model);
        }
    }

    private Entry Count(Entry entry, string reason)
    {
        if (entry.Kind == Failed)
        {
            return entry;
        }

        var failures = entry.Failures + 1;
        return failures >= options.DegradeAfterFailures
            ? new Entry(Degraded, reason, DateTimeOffset.UtcNow + options.DegradedCooldown, failures)
            : entry with { Reason = reason, Failures = failures };
    }

    /// <param name="Kind">null: failures counted, not yet degraded (not reported).</param>
    private sealed record Entry(string? Kind, string Reason, DateTimeOffset Until, int Failures)
    {
        public ModelFault? Describe(string model, Func<string, IReadOnlyList<string>> aliases) =>
            Kind is null ? null : new ModelFault(model, Kind, Reason, Until, Failures, aliases(model));
    }
}

/// <summary>
/// TEST ONLY: makes this host's forward passes fail as a GPU's would, through the engine's pass seam
/// (<see cref="InjectedPassFaults"/>), so that tests on machines without a GPU can run what a host does when its device
/// runs out of memory or breaks. Two environment variables, never for production:
/// <c>ORLEANSGPU_TEST_OOM_ABOVE_TOKENS=N</c> (passes above N padded tokens fail with ONNX Runtime's out-of-memory error)
/// and <c>ORLEANSGPU_TEST_FAIL_PASSES=model,...</c> (every pass of those models, by canonical name, or <c>*</c> for all,
/// fails with a runtime error).
/// </summary>
public sealed class PassFaultInjection
{
    public const string OutOfMemoryVariable = "ORLEANSGPU_TEST_OOM_ABOVE_TOKENS";
    public const string FailPassesVariable = "ORLEANSGPU_TEST_FAIL_PASSES";

    private readonly int? _oomAbove;
    private readonly HashSet<string> _failing;

    public PassFaultInjection(ILogger<PassFaultInjection> logger)
    {
        _oomAbove = int.TryParse(Environment.GetEnvironmentVariable(OutOfMemoryVariable), out var n) && n > 0 ? n : null;
        _failing = [.. (Environment.GetEnvironmentVariable(FailPassesVariable) ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
        if (_oomAbove is not null || _failing.Count > 0)
        {
            logger.LogWarning(
                "TEST ONLY: forward passes fail on purpose on this host ({Oom}={OomValue}, {Fail}={FailValue}); never set these outside tests",
                OutOfMemoryVariable, _oomAbove, FailPassesVariable, string.Join(",", _failing));
        }
    }

    /// <summary>The encoder options for <paramref name="model"/>: <paramref name="options"/>, with the injected faults when a test asked for any.</summary>
    public EncoderOptions For(string model, EncoderOptions options)
    {
        var fail = _failing.Contains("*") || _failing.Contains(model);
        return _oomAbove is null && !fail
            ? options
            : options with { PassRunner = new InjectedPassFaults(options.PassRunner) { OutOfMemoryAboveTokens = _oomAbove, FailEveryPass = fail } };
    }
}
