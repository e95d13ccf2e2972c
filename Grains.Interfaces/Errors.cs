namespace OrleansGpu.Grains;

/// <summary>
/// The request itself is wrong (unknown model, input too long, layer out of range, no baseline): the caller gets a
/// 4xx and no other host is tried, since every host would say the same. The front maps <see cref="Code"/> to the
/// HTTP status (one map, <c>Api.Front/Http/ApiErrorCatalog.cs</c>).
/// </summary>
[GenerateSerializer, Alias("OrleansGpu.InvalidWorkException")]
public sealed class InvalidWorkException : Exception
{
    public InvalidWorkException(string code, string message)
        : base(message) => Code = code;

    /// <summary>A stable, machine-readable reason: <c>model_not_found</c>, <c>invalid_input</c>, ...</summary>
    [Id(0)]
    public string Code { get; }

    /// <summary>
    /// <c>model_too_large</c>: the model's size in bytes, as the host estimated it from its files. The front remembers
    /// it, and sends the model to no host whose reported budget is smaller (<see cref="HostLoad.MemoryBudgetBytes"/>).
    /// </summary>
    [Id(1)]
    public long? ModelBytes { get; init; }

    /// <summary><c>model_too_large</c>: the memory budget, in bytes, of the host that refused the model.</summary>
    [Id(2)]
    public long? BudgetBytes { get; init; }
}

/// <summary>The host's queue is full; the front tries another host, and answers 503 with Retry-After when all are.</summary>
[GenerateSerializer, Alias("OrleansGpu.HostBusyException")]
public sealed class HostBusyException : Exception
{
    public HostBusyException(string host, int waiting)
        : this(host, waiting, $"Host {host} is busy: {waiting} jobs are waiting.")
    {
    }

    /// <summary>Busy for another reason than its queue (no memory free for a model while the others are in use), said in <paramref name="message"/>.</summary>
    public HostBusyException(string host, int waiting, string message)
        : base(message)
    {
        Host = host;
        Waiting = waiting;
    }

    [Id(0)]
    public string Host { get; }

    [Id(1)]
    public int Waiting { get; }
}

/// <summary>
/// The host is stopping and takes no new work; the jobs it holds finish. The front sends the request to another host
/// at once and stops choosing this one (its load report says draining too).
/// </summary>
[GenerateSerializer, Alias("OrleansGpu.HostDrainingException")]
public sealed class HostDrainingException : Exception
{
    public HostDrainingException(string host)
        : base($"Host {host} is stopping and takes no new work.") => Host = host;

    [Id(0)]
    public string Host { get; }
}

/// <summary>The codes a host gives for a wrong request; they reach the client as the error's <c>code</c>.</summary>
public static class ErrorCodes
{
    public const string ModelNotFound = "model_not_found";
    public const string ModelInvalid = "model_invalid";
    public const string InvalidInput = "invalid_input";
    public const string InputTooLong = "input_too_long";
    public const string BaselineNotFound = "baseline_not_found";

    /// <summary>
    /// The model exists but this build cannot run it: an architecture or setting the graph builder does not build (and
    /// no ONNX export), a tokenizer it does not read (SentencePiece), or modules it does not apply.
    /// </summary>
    public const string ModelUnsupported = "model_unsupported";

    /// <summary>
    /// This host's copy of the model's weights cannot be read (damaged, cut short, not a checkpoint the readers accept):
    /// a fault of the host's files, which another host's copy may not share, unlike the other codes here.
    /// </summary>
    public const string ModelUnreadable = "model_unreadable";

    /// <summary>Not on the host, and the operator's allow list (MODEL_ALLOW) does not let requests download it.</summary>
    public const string ModelNotAllowed = "model_not_allowed";

    /// <summary>The hub refused the download: gated or private, without a token that may read it.</summary>
    public const string ModelGated = "model_gated";

    /// <summary>
    /// The model's weights alone are larger than the host's memory budget (GPU_MEMORY_BUDGET): it can never be loaded
    /// there. The front tries the other hosts, and answers it (422) only when every host it may use refused so.
    /// </summary>
    public const string ModelTooLarge = "model_too_large";

    /// <summary>The hub cannot be reached to download the model.</summary>
    public const string HubUnreachable = "hub_unreachable";

    /// <summary>The download arrived different from what the hub announced (sha256, size) and was thrown away.</summary>
    public const string ModelDownloadFailed = "model_download_failed";
}

/// <summary>
/// This host cannot run the model now, for a reason of the host and not of the request: its copy failed to load
/// (<see cref="Code"/> <c>model_unreadable</c> or <c>model_load_failed</c>), its forward passes keep failing
/// (<c>model_degraded</c>, <c>pass_failed</c>), or one text does not fit in its device's memory
/// (<c>device_out_of_memory</c>). The front sends the request to another host and, for a while, the model's other
/// requests too (the host's load report says for how long: <see cref="HostLoad.Faults"/>); the model stays loaded.
/// </summary>
[GenerateSerializer, Alias("OrleansGpu.HostModelFailedException")]
public sealed class HostModelFailedException : Exception
{
    public HostModelFailedException(string host, string model, string code, string message)
        : base(message)
    {
        Host = host;
        Model = model;
        Code = code;
    }

    [Id(0)]
    public string Host { get; }

    [Id(1)]
    public string Model { get; }

    [Id(2)]
    public string Code { get; }
}

/// <summary>The codes of <see cref="HostModelFailedException"/>.</summary>
public static class HostFaultCodes
{
    public const string ModelLoadFailed = "model_load_failed";
    public const string ModelDegraded = "model_degraded";
    public const string PassFailed = "pass_failed";
    public const string DeviceOutOfMemory = "device_out_of_memory";
}
