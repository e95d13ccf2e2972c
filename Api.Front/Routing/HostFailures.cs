using Orleans.Runtime;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Api.Routing;

/// <summary>What a failed attempt on one host means for the request.</summary>
public enum HostFailure
{
    /// <summary>The request itself failed (invalid input, unknown model, a bad model file, a bug): every host would say the same, so it is not retried.</summary>
    Deterministic,

    /// <summary>The host's queue is full: another host may take the request; this one is not held against.</summary>
    Busy,

    /// <summary>The host is stopping and refused new work: another host takes the request, and this one gets no more (see <see cref="HostDirectory.IsRoutable"/>).</summary>
    Draining,

    /// <summary>Another host left while this one worked: the host is fine, the request is sent again (see <see cref="HostDirectory.MembershipChanged"/>).</summary>
    MembershipChanged,

    /// <summary>The host could not answer (gone, unreachable, message rejected, timed out) or cannot run work at all: another host is tried, and this one avoided a while.</summary>
    HostFailed,

    /// <summary>
    /// The host cannot run the request's model now (its copy failed to load, its passes fail, a text does not fit in its
    /// device's memory): another host is tried, and this one gets none of the model's requests a while; its other models are unaffected.
    /// </summary>
    ModelFailed,

    /// <summary>
    /// The request's model is larger than the host's whole memory budget (<c>model_too_large</c>): a host with a larger
    /// budget may hold it, so the others are tried, and this one gets none of the model's requests (see
    /// <see cref="HostDirectory.CannotHold"/>); when every host refused so, that is the answer (422).
    /// </summary>
    ModelTooLarge,
}

/// <summary>
/// The one rule of what is retried: only failures that mean another host may succeed. Every compute request is
/// idempotent, so sending it again is safe; sending a deterministic failure again only multiplies it and, once every
/// host has said the same, hides it behind a 503.
/// </summary>
public static class HostFailures
{
    /// <param name="error">What the attempt threw.</param>
    /// <param name="requestAborted">The caller's token: its cancellation is never retried.</param>
    /// <param name="hostGone">Cancelled when the attempt's host left the cluster.</param>
    /// <param name="membershipChanged">Cancelled when any host left the cluster while the attempt ran.</param>
    public static HostFailure Classify(Exception error, CancellationToken requestAborted, CancellationToken hostGone, CancellationToken membershipChanged) => error switch
    {
        OperationCanceledException when requestAborted.IsCancellationRequested => HostFailure.Deterministic,
        OperationCanceledException when hostGone.IsCancellationRequested => HostFailure.HostFailed,
        OperationCanceledException when membershipChanged.IsCancellationRequested => HostFailure.MembershipChanged,
        HostBusyException => HostFailure.Busy,
        HostDrainingException => HostFailure.Draining,
        HostModelFailedException => HostFailure.ModelFailed,
        InvalidWorkException { Code: ErrorCodes.ModelTooLarge } => HostFailure.ModelTooLarge,

        // SiloUnavailableException is one of these: the silo holding the host died or is unreachable.
        OrleansMessageRejectionException => HostFailure.HostFailed,
        TimeoutException => HostFailure.HostFailed,
        HostNotActiveException => HostFailure.HostFailed,
        GatewayTooBusyException => HostFailure.HostFailed,
        ClientNotAvailableException => HostFailure.HostFailed,
        Orleans.Runtime.Messaging.ConnectionFailedException => HostFailure.HostFailed,

        // The host cannot run any work (no ICU for the tokenizers, a device it was told to use is not usable): a
        // fault of that machine, not of the request.
        PlatformNotSupportedException => HostFailure.HostFailed,
        DeviceUnavailableException => HostFailure.HostFailed,
        _ => HostFailure.Deterministic,
    };
}
