using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;
using Orleans.Configuration;
using Orleans.Hosting;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// How silos and the front find each other (section <c>Cluster</c>). With nothing configured: localhost clustering,
/// silo port 11111, gateway port 30000, the first silo on 11111 holding membership.
/// </summary>
public sealed record ClusterSettings
{
    public string ClusterId { get; init; } = "orleansgpu";

    public string ServiceId { get; init; } = "orleansgpu";

    public int SiloPort { get; init; } = 11111;

    public int GatewayPort { get; init; } = 30000;

    /// <summary>The silo port of the silo that holds localhost membership.</summary>
    public int PrimarySiloPort { get; init; } = 11111;

    /// <summary>Gateway ports a front in client mode connects to on this machine.</summary>
    public IReadOnlyList<int> Gateways { get; init; } = [30000];

    public static ClusterSettings FromConfiguration(IConfiguration configuration)
    {
        var s = configuration.GetSection("Cluster");
        var d = new ClusterSettings();
        return new ClusterSettings
        {
            ClusterId = s["ClusterId"] ?? d.ClusterId,
            ServiceId = s["ServiceId"] ?? d.ServiceId,
            SiloPort = Port(s["SiloPort"], d.SiloPort, "Cluster:SiloPort"),
            GatewayPort = Port(s["GatewayPort"], d.GatewayPort, "Cluster:GatewayPort"),
            PrimarySiloPort = Port(s["PrimarySiloPort"], d.PrimarySiloPort, "Cluster:PrimarySiloPort"),
            Gateways = s["Gateways"] is { Length: > 0 } g
                ? [.. g.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => Port(p, 0, "Cluster:Gateways"))]
                : d.Gateways,
        };
    }

    /// <summary>Localhost clustering for a silo, with the ports above.</summary>
    public ISiloBuilder ConfigureSilo(ISiloBuilder silo)
    {
        silo.UseLocalhostClustering(SiloPort, GatewayPort, new IPEndPoint(IPAddress.Loopback, PrimarySiloPort), ServiceId, ClusterId);
        return silo;
    }

    private static int Port(string? value, int fallback, string name)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return fallback;
        }

        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new ArgumentException($"{name} must be a TCP port; got '{value}'.");
    }
}
