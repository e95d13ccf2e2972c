using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace OrleansGpu.Grains;

/// <summary>
/// The job table of one host (a singleton of its silo): admits at most <see cref="Admission"/> jobs at once
/// (<c>GPU_MAX_CONCURRENT</c>, else sized from the device and batch limits by <see cref="HostAdmission"/>), keeps at most <see cref="GpuHostOptions.MaxQueued"/> waiting, and tracks each job's progress by
/// batch. The host grain admits jobs; the model grains on the same silo report progress into it. When the silo
/// stops, the table drains (<see cref="BeginDrain"/>): it admits nothing new and lets the jobs it holds finish.
/// </summary>
public sealed class HostJobs(GpuHostOptions options, ILogger<HostJobs> logger)
{
    private static readonly TimeSpan IdlePoll = TimeSpan.FromMilliseconds(50);

    private readonly SemaphoreSlim _slots = new(HostAdmission.Resolve(options, HostAdmission.ExpectedOnGpu(options)).Value, int.MaxValue);
    private readonly ConcurrentDictionary<string, Job> _jobs = new();
    private readonly Lock _admissionGate = new();
    private AdmissionLimit _admission = HostAdmission.Resolve(options, HostAdmission.ExpectedOnGpu(options));
    private bool _onGpu = HostAdmission.ExpectedOnGpu(options);
    private int _waiting;
    private int _draining;

    /// <summary>Jobs run at once now, and where that number came from.</summary>
    public AdmissionLimit Admission => Volatile.Read(ref _admission);

    public int MaxConcurrent => Admission.Value;

    /// <summary>
    /// Tells the table where the host's models run, once a model has loaded (with <c>TORCH_DEVICE=auto</c> only a
    /// session knows whether CUDA works). A host with a model on a GPU is a GPU host: when its admission is the
    /// default, it is sized again for the GPU; <c>GPU_MAX_CONCURRENT</c>, when set, never changes.
    /// </summary>
    public void UseDevice(bool onGpu)
    {
        if (options.MaxConcurrent is not null || !onGpu || Volatile.Read(ref _onGpu))
        {
            return;
        }

        AdmissionLimit before, after;
        lock (_admissionGate)
        {
            if (_onGpu)
            {
                return;
            }

            before = _admission;
            after = HostAdmission.Resolve(options, onGpu: true);
            Volatile.Write(ref _admission, after);
            Volatile.Write(ref _onGpu, true);
        }

        if (after.Value > before.Value)
        {
            _slots.Release(after.Value - before.Value);
        }
        else if (after.Value < before.Value)
        {
            // Slots are taken back as the jobs that hold them end.
            _ = RetireSlotsAsync(before.Value - after.Value);
        }

        logger.LogInformation("Host {Host} admits {Jobs} jobs at once ({Source})", options.HostName, after.Value, after.Source);
    }

    private async Task RetireSlotsAsync(int count)
    {
        for (var i = 0; i < count; i++)
        {
            await _slots.WaitAsync();
        }
    }

    /// <summary>True once the host stops taking new jobs.</summary>
    public bool Draining => Volatile.Read(ref _draining) == 1;

    /// <summary>Jobs held now, queued or running.</summary>
    public int Count => _jobs.Count;

    /// <summary>
    /// Registers a job and waits for a free slot. Throws <see cref="HostBusyException"/> at once when the queue is
    /// full, <see cref="HostDrainingException"/> when the host is stopping. Dispose the returned lease when the job ends.
    /// </summary>
    public async Task<JobLease> AdmitAsync(string type, string model, int items, long tokens, RequestPart? part, CancellationToken cancellationToken)
    {
        if (Draining)
        {
            throw new HostDrainingException(options.HostName);
        }

        if (Interlocked.Increment(ref _waiting) > options.MaxQueued)
        {
            var waiting = Interlocked.Decrement(ref _waiting);
            throw new HostBusyException(options.HostName, waiting);
        }

        var job = new Job(Guid.NewGuid().ToString("N")[..12], type, model, items, tokens, part);
        _jobs[job.Id] = job;

        // A drain that began between the check above and the registration may already have seen an empty table and
        // let the silo go: such a job is refused, not started. (The fence orders the registration before the read,
        // as BeginDrain's exchange orders the flag before the drain's reads of the table.)
        Interlocked.MemoryBarrier();
        if (Draining)
        {
            _jobs.TryRemove(job.Id, out _);
            Interlocked.Decrement(ref _waiting);
            throw new HostDrainingException(options.HostName);
        }

        try
        {
            await _slots.WaitAsync(cancellationToken);
        }
        catch
        {
            _jobs.TryRemove(job.Id, out _);
            throw;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        job.StartedAt = DateTimeOffset.UtcNow;
        return new JobLease(this, job);
    }

    /// <summary>Records that <paramref name="done"/> of <paramref name="total"/> items of a job are finished, and logs it.</summary>
    public void ReportProgress(string jobId, int done, int total, int batch, int batches)
    {
        if (!_jobs.TryGetValue(jobId, out var job))
        {
            return;
        }

        // Passes of one job can finish on two batcher threads at once; progress only moves forward.
        var progress = total == 0 ? 1 : (double)done / total;
        job.Progress = Math.Max(job.Progress, progress);
        if (job.Part is { } part)
        {
            // One part of a request split across hosts: which part, of which request, runs on which host.
            logger.Log(
                options.ProgressLogLevel,
                "[{Type}] job={Job} part {Part}/{Parts} of request={Request} on {Host} batch {Batch}/{Batches} ({Percent:0}%)",
                job.Type, job.Id, part.Index + 1, part.Count, part.RequestId, options.HostName, batch, batches, progress * 100);
        }
        else
        {
            logger.Log(options.ProgressLogLevel, "[{Type}] job={Job} batch {Batch}/{Batches} ({Percent:0}%)", job.Type, job.Id, batch, batches, progress * 100);
        }
    }

    /// <summary>Stops admitting jobs: from now on <see cref="AdmitAsync"/> refuses, and <see cref="Load"/> says draining.</summary>
    public void BeginDrain() => Interlocked.Exchange(ref _draining, 1);

    /// <summary>Waits until no job is held, at most <paramref name="timeout"/>; true when the table emptied.</summary>
    public async Task<bool> WaitIdleAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;

        // Polled: a stopping silo checks a few times a second, and the jobs' own path stays free of drain logic.
        while (!_jobs.IsEmpty)
        {
            if (DateTime.UtcNow >= deadline || cancellationToken.IsCancellationRequested)
            {
                return false;
            }

            try
            {
                await Task.Delay(IdlePoll, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return true;
    }

    public HostLoad Load(string device)
    {
        int queued = 0, running = 0;
        long queuedTokens = 0, runningTokens = 0;
        foreach (var job in _jobs.Values)
        {
            if (job.StartedAt is null)
            {
                queued++;
                queuedTokens += job.Tokens;
            }
            else
            {
                running++;
                runningTokens += job.Tokens;
            }
        }

        return new HostLoad(
            options.HostName, queued, running, queuedTokens, runningTokens, MaxConcurrent, device,
            Draining ? HostAvailability.Draining : HostAvailability.Serving);
    }

    public HostStatus Status()
    {
        var jobs = _jobs.Values
            .OrderBy(j => j.StartedAt ?? DateTimeOffset.MaxValue)
            .Select(j => new JobStatus(j.Id, j.Type, j.StartedAt, j.Items, j.Model, Math.Round(j.Progress, 4), j.StartedAt is null ? "queued" : "running", Part: j.Part))
            .ToList();
        var running = jobs.Count(j => j.State == "running");
        var admission = Admission;
        return new HostStatus(options.HostName, admission.Value, running, jobs.Count - running, jobs, admission.Source);
    }

    private void Finish(Job job)
    {
        _jobs.TryRemove(job.Id, out _);
        _slots.Release();
    }

    internal sealed class Job(string id, string type, string model, int items, long tokens, RequestPart? part)
    {
        public string Id { get; } = id;

        public string Type { get; } = type;

        public string Model { get; } = model;

        public int Items { get; } = items;

        public long Tokens { get; } = tokens;

        /// <summary>Which part of a split client request this job is; null for a whole request.</summary>
        public RequestPart? Part { get; } = part;

        public DateTimeOffset? StartedAt { get; set; }

        public double Progress { get; set; }
    }

    /// <summary>A running job's slot; disposing it frees the slot and removes the job.</summary>
    public sealed class JobLease : IDisposable
    {
        private readonly HostJobs _owner;
        private readonly Job _job;
        private int _disposed;

        internal JobLease(HostJobs owner, Job job)
        {
            _owner = owner;
            _job = job;
        }

        public string JobId => _job.Id;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                _owner.Finish(_job);
            }
        }
    }
}
