namespace OrleansGpu.Api.Routing;

/// <summary>No GPU host could take the request: none is up, all are busy, or every one tried failed.</summary>
public sealed class NoHostAvailableException(string message, bool busy, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>True when hosts are up but their queues are full (the caller should come back later).</summary>
    public bool Busy { get; } = busy;
}
