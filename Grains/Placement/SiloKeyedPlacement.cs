using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace OrleansGpu.Grains.Placement;

/// <summary>
/// Places a grain on the silo its key names: the part of a string key before the first '/' is a silo name.
/// <c>GpuHostGrain("A")</c> and <c>ModelGrain("A/model")</c> therefore live on host A and nowhere else; when A
/// has left the cluster the activation fails, and the front retries the request on another host.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking, Alias("OrleansGpu.SiloKeyedPlacement")]
public sealed class SiloKeyedPlacement : PlacementStrategy
{
    public static SiloKeyedPlacement Instance { get; } = new();

    /// <summary>The host (silo name) a grain key names.</summary>
    public static string HostOf(string key)
    {
        var slash = key.IndexOf('/');
        return slash < 0 ? key : key[..slash];
    }
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloKeyedPlacementAttribute() : PlacementAttribute(SiloKeyedPlacement.Instance);

public sealed class SiloKeyedPlacementDirector(IClusterMembershipService membership) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var host = SiloKeyedPlacement.HostOf(target.GrainIdentity.Key.ToString()!);
        var compatible = context.GetCompatibleSilos(target);
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active
                && string.Equals(member.Name, host, StringComparison.Ordinal)
                && compatible.Contains(member.SiloAddress))
            {
                return Task.FromResult(member.SiloAddress);
            }
        }

        throw new HostNotActiveException($"GPU host '{host}' is not an active silo of this cluster.");
    }
}

/// <summary>A grain was asked of a host that is not (or no longer) an active silo: another host may serve the request.</summary>
[GenerateSerializer, Alias("OrleansGpu.HostNotActiveException")]
public sealed class HostNotActiveException(string message) : OrleansException(message);
