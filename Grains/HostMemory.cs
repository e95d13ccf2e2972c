using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Files;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// The memory of one host (a singleton of its silo): its budget (<see cref="GpuHostOptions.MemoryBudget"/>), what each
/// loaded model holds, when each was last used and how much work each has in flight. Before a model loads it asks
/// for room (<see cref="BeginLoadAsync"/>): the decision is serialised, so two loads never both think they fit, and
/// when the model does not fit, the least recently used models with nothing in flight are unloaded (their model grain
/// deactivates and disposes its sessions) until it does. A model with work in flight is never unloaded; when only
/// such models stand in the way, the load waits for one to go idle (<see cref="GpuHostOptions.MemoryWait"/>), then
/// the host answers busy. A model larger than the whole budget is the client's error (<c>model_too_large</c>).
/// </summary>
public sealed class HostMemory : IDisposable
{
    /// <summary>How long an unloaded model may take to release its sessions before the load stops waiting for it.</summary>
    private static readonly TimeSpan UnloadTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How long a reading of the GPU's used memory may take before the load goes on without it.</summary>
    private static readonly TimeSpan MeasureTimeout = TimeSpan.FromSeconds(2);

    private readonly GpuHostOptions _options;
    private readonly HostHardware _hardware;
    private readonly EncoderOptions _encoder;
    private readonly IGrainFactory _grains;
    private readonly ILogger<HostMemory> _logger;
    private readonly MemoryBudget? _setting;
    private readonly SemaphoreSlim _loads = new(1, 1);
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _loadCounts = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long? _budget;
    private long _evictions;
    private bool _unknownLogged;

    public HostMemory(GpuHostOptions options, HostHardware hardware, EncoderOptions encoder, IGrainFactory grains, ILogger<HostMemory> logger)
    {
        _options = options;
        _hardware = hardware;
        _encoder = encoder;
        _grains = grains;
        _logger = logger;
        _setting = MemoryBudget.Parse(options.MemoryBudget);
        HostMetrics.Register(this);
    }

    public string Host => _options.HostName;

    /// <summary>
    /// The budget in bytes, once known; <see cref="long.MaxValue"/> (none) while it is not: on an <c>auto</c> or CUDA
    /// device until the first hardware probe has answered (never waited for: a hung nvidia-smi holds up no load), or
    /// when the GPU's memory cannot be read.
    /// </summary>
    public long Budget => _budget ?? (Probed ? ResolveBudget() : null) ?? long.MaxValue;

    /// <summary>
    /// The budget in bytes once known, else null: what the fronts route by (<see cref="HostLoad.MemoryBudgetBytes"/>), and
    /// the most one model's CUDA memory arena may grow to (ONNX Runtime's <c>gpu_mem_limit</c>, see
    /// <see cref="ModelGrain"/>'s session options).
    /// </summary>
    public long? KnownBudget => Budget is var budget && budget == long.MaxValue ? null : budget;

    /// <summary>What the loaded models hold now, in bytes.</summary>
    public long Used
    {
        get
        {
            lock (_lock)
            {
                return _entries.Values.Where(e => e.Resident).Sum(e => e.Held);
            }
        }
    }

    /// <summary>Models unloaded to make room, since the silo started.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Loads per model (each use of a model, embedding or BERTScore, counts), since the silo started.</summary>
    public IReadOnlyDictionary<string, long> Loads => _loadCounts;

    /// <summary>
    /// The size a model will hold, estimated before loading it from its files: the ONNX graph and the external
    /// weights beside it, or the checkpoint's files (a native checkpoint becomes a graph of about its size), and the
    /// weights of its sentence-transformers Dense modules (held as float32 arrays once loaded).
    /// </summary>
    public static long Estimate(ModelFolder folder) =>
        (folder.Weights.OnnxPath is { } onnx ? InferenceMetrics.WeightBytes(onnx) : folder.Weights.Files.Sum(FileSizes.Of))
        + folder.SentenceTransformers.Dense.Sum(d => d.WeightsIn(folder.Directory) is { } file ? FileSizes.Of(file) : 0);

    /// <summary>
    /// Marks work for <paramref name="model"/> as in flight (from before its load to the end of its job) and the model
    /// as used now; dispose the result when the work ends. A model with work in flight is never unloaded.
    /// </summary>
    public IDisposable Use(string model)
    {
        lock (_lock)
        {
            var entry = EntryOf(model);
            entry.InFlight++;
            entry.LastUsed = DateTimeOffset.UtcNow;
        }

        return new InUse(this, model);
    }

    /// <summary>
    /// Makes room for a load of <paramref name="model"/> that needs about <paramref name="bytes"/>, unloading idle
    /// models, least recently used first; the returned ticket holds the host's load turn until it is completed (the
    /// model loaded: what it holds is measured) or disposed (the load failed: nothing is counted).
    /// </summary>
    public async Task<LoadTicket> BeginLoadAsync(string model, long bytes, CancellationToken cancellationToken)
    {
        var budget = Budget;
        if (bytes > budget)
        {
            throw new InvalidWorkException(
                ErrorCodes.ModelTooLarge,
                $"Model '{model}' needs about {MemoryBudget.Describe(bytes)} ({bytes} bytes, the size of its weights), more than the "
                + $"memory budget of host {Host}: {MemoryBudget.Describe(budget)} ({budget} bytes, GPU_MEMORY_BUDGET).")
            {
                ModelBytes = bytes,
                BudgetBytes = budget,
            };
        }

        await _loads.WaitAsync(cancellationToken);
        try
        {
            await MakeRoomAsync(model, bytes, budget, cancellationToken);
            return new LoadTicket(this, model, bytes, await MeasureAsync());
        }
        catch
        {
            _loads.Release();
            throw;
        }
    }

    /// <summary>The model grain of <paramref name="model"/> has released its sessions (unloaded, collected, or the silo stopping).</summary>
    public void Unloaded(string model)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(model, out var entry))
            {
                return;
            }

            entry.Resident = false;
            entry.Held = 0;
            entry.Weights = 0;
            entry.Evicting = false;
            entry.Gone.TrySetResult();
            entry.Gone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Forget(entry);
            Pulse();
        }
    }

    /// <summary>The budget, what is held, and per loaded model its memory, last use and work in flight: what <c>/info</c> shows.</summary>
    public HostMemoryInfo Describe()
    {
        var budget = Budget;
        lock (_lock)
        {
            var models = _entries.Values
                .Where(e => e.Resident)
                .OrderBy(e => e.Name, StringComparer.Ordinal)
                .Select(e => new ModelMemoryInfo(e.Name, e.Held, e.Weights, e.LastUsed, e.InFlight, _loadCounts.GetValueOrDefault(e.Name)))
                .ToList();
            return new HostMemoryInfo(budget, models.Sum(m => m.Bytes), Evictions, models);
        }
    }

    /// <summary>The loaded models' memory, by name (for the metrics).</summary>
    internal IReadOnlyList<(string Model, long Bytes)> Held()
    {
        lock (_lock)
        {
            return [.. _entries.Values.Where(e => e.Resident).Select(e => (e.Name, e.Held))];
        }
    }

    public void Dispose() => HostMetrics.Unregister(this);

    private async Task MakeRoomAsync(string model, long bytes, long budget, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + _options.MemoryWait;
        while (true)
        {
            Entry? victim;
            Task gone;
            Task changed;
            long used;
            lock (_lock)
            {
                used = _entries.Values.Where(e => e.Resident).Sum(e => e.Held);
                if (used + bytes <= budget)
                {
                    return;
                }

                victim = _entries.Values
                    .Where(e => e.Resident && !e.Evicting && e.InFlight == 0 && e.Name != model)
                    .OrderBy(e => e.LastUsed)
                    .FirstOrDefault();
                if (victim is not null)
                {
                    // Marked under the lock that Use takes: work that arrives from now on finds the model unloading and
                    // runs on it while its activation lasts, or loads it again after.
                    victim.Evicting = true;
                }

                gone = victim?.Gone.Task ?? Task.CompletedTask;
                changed = _changed.Task;
            }

            if (victim is not null)
            {
                _logger.LogInformation(
                    "Unloading {Victim} ({Held}, last used {LastUsed:O}) on {Host} to make room for {Model} ({Needed}; {Used} of {Budget} held)",
                    victim.Name, MemoryBudget.Describe(victim.Held), victim.LastUsed, Host, model, MemoryBudget.Describe(bytes),
                    MemoryBudget.Describe(used), MemoryBudget.Describe(budget));
                await _grains.GetGrain<IModelGrain>($"{Host}/{victim.Name}").UnloadAsync();
                try
                {
                    await gone.WaitAsync(UnloadTimeout, cancellationToken);
                    Interlocked.Increment(ref _evictions);
                }
                catch (TimeoutException)
                {
                    // Still counted as held (it is, until its sessions go); not chosen again meanwhile.
                    _logger.LogWarning("{Victim} on {Host} did not release its sessions within {Timeout}", victim.Name, Host, UnloadTimeout);
                }

                continue;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new HostBusyException(
                    Host,
                    0,
                    $"Host {Host} has no memory free for {model} ({MemoryBudget.Describe(bytes)}): {MemoryBudget.Describe(used)} of its "
                    + $"{MemoryBudget.Describe(budget)} budget is held by models with work in flight.");
            }

            try
            {
                await changed.WaitAsync(left, cancellationToken);
            }
            catch (TimeoutException)
            {
                // Checked once more, then busy.
            }
        }
    }

    /// <summary>Whether the device is known: the CPU by setting, or a probe of the GPUs has answered.</summary>
    private bool Probed => _encoder.Device.Kind == ExecutionDeviceKind.Cpu || _hardware.FirstProbe.IsCompleted;

    private long? ResolveBudget()
    {
        var snapshot = _hardware.Snapshot;
        var device = snapshot.Expected(_encoder.Device);
        long? deviceBytes;
        double share;
        if (device == "cpu")
        {
            // The memory this process may use: physical RAM, or the container's limit when it has one.
            deviceBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            share = MemoryBudget.DefaultRamShare;
        }
        else
        {
            var id = _encoder.Device.DeviceId;
            deviceBytes = snapshot.Gpus.FirstOrDefault(g => g.Index == id)?.VramTotalMb * (1L << 20);
            share = MemoryBudget.DefaultGpuShare;
        }

        var budget = (_setting ?? new MemoryBudget(null, share)).Resolve(deviceBytes);
        lock (_lock)
        {
            if (budget is { } known && _budget is null)
            {
                _budget = known;
                _logger.LogInformation("Memory budget of {Host}: {Budget} ({Device})", Host, MemoryBudget.Describe(known), device);
            }
            else if (budget is null && !_unknownLogged)
            {
                // Not kept: a later probe may read the device's memory.
                _unknownLogged = true;
                _logger.LogWarning("The memory of {Device} on {Host} is unknown (nvidia-smi did not answer): models load without a memory budget", device, Host);
            }
        }

        return budget;
    }

    /// <summary>
    /// What the device holds now, for the difference a load makes. On a GPU: the device's used memory as nvidia-smi
    /// reads it (ONNX Runtime's CUDA arena is allocated from it, so the difference is the weights plus the arena the
    /// load and first pass reserved). On the CPU: the process's working set (the weights ONNX Runtime copied in and its
    /// arena). Both also see other work running at the same time, so a load counts at least its weights' size and at
    /// most this difference when larger. Null when it cannot be read.
    /// </summary>
    private async Task<long?> MeasureAsync()
    {
        if (_hardware.Snapshot.Expected(_encoder.Device) == "cpu")
        {
            return Environment.WorkingSet;
        }

        // Bounded tighter than the background probe: a load waits for this twice.
        using var timeout = new CancellationTokenSource(MeasureTimeout);
        return await _hardware.ReadUsedBytesAsync(_encoder.Device.DeviceId, timeout.Token);
    }

    private Entry EntryOf(string model)
    {
        if (!_entries.TryGetValue(model, out var entry))
        {
            entry = new Entry(model);
            _entries[model] = entry;
        }

        return entry;
    }

    /// <summary>An entry with nothing loaded and nothing in flight is dropped (names never accumulate).</summary>
    private void Forget(Entry entry)
    {
        if (!entry.Resident && entry.InFlight == 0)
        {
            _entries.Remove(entry.Name);
        }
    }

    /// <summary>Wakes loads waiting for memory: work ended or a model went.</summary>
    private void Pulse()
    {
        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    private void EndUse(string model)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(model, out var entry))
            {
                entry.InFlight--;
                entry.LastUsed = DateTimeOffset.UtcNow;
                Forget(entry);
            }

            Pulse();
        }
    }

    private void Loaded(string model, long weights, long held)
    {
        lock (_lock)
        {
            var entry = EntryOf(model);
            entry.Resident = true;
            entry.Weights += weights;
            entry.Held += held;
            entry.LastUsed = DateTimeOffset.UtcNow;
        }

        _loadCounts.AddOrUpdate(model, 1, (_, n) => n + 1);
    }

    private sealed class Entry(string name)
    {
        public string Name { get; } = name;

        /// <summary>Whether a model grain holds sessions of it now.</summary>
        public bool Resident { get; set; }

        /// <summary>Being unloaded to make room: not chosen again.</summary>
        public bool Evicting { get; set; }

        /// <summary>Bytes held: per use loaded, the larger of its weights and the measured difference its load made.</summary>
        public long Held { get; set; }

        public long Weights { get; set; }

        public DateTimeOffset LastUsed { get; set; }

        public int InFlight { get; set; }

        public TaskCompletionSource Gone { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class InUse(HostMemory owner, string model) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.EndUse(model);
            }
        }
    }

    /// <summary>A load's turn: <see cref="CompleteAsync"/> when the model is loaded (and has run its first pass); dispose in every case.</summary>
    public sealed class LoadTicket : IDisposable
    {
        private readonly HostMemory _owner;
        private readonly string _model;
        private readonly long _weights;
        private readonly long? _before;
        private int _released;

        internal LoadTicket(HostMemory owner, string model, long weights, long? before)
        {
            _owner = owner;
            _model = model;
            _weights = weights;
            _before = before;
        }

        /// <summary>Records the model as loaded, holding the larger of its weights and what the device's use grew by.</summary>
        public async Task CompleteAsync()
        {
            var after = await _owner.MeasureAsync();
            var measured = _before is { } b && after is { } a ? a - b : 0;
            _owner.Loaded(_model, _weights, Math.Max(_weights, measured));
            Dispose();
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _owner._loads.Release();
            }
        }
    }
}
