using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Connections.Security;
using Orleans.Hosting;

namespace OrleansGpu.Grains.Security;

/// <summary>
/// Turns <see cref="ClusterTlsSettings"/> into Orleans' TLS (<c>Microsoft.Orleans.Connections.Security</c>) on a silo
/// (its silo-to-silo connections both ways and its gateway) or on a client (its connections to gateways). A cluster
/// that spans machines without TLS is refused unless <c>ORLEANS_TLS=off</c> says so, and then warned about at every start.
/// </summary>
public static class ClusterTls
{
    public static ISiloBuilder UseClusterTls(this ISiloBuilder silo, ClusterTlsSettings settings, bool spansMachines)
    {
        if (Prepare(silo.Services, settings, spansMachines) is { } certificates)
        {
            silo.UseTls(o => Configure(o, certificates));
        }

        return silo;
    }

    public static IClientBuilder UseClusterTls(this IClientBuilder client, ClusterTlsSettings settings, bool spansMachines)
    {
        if (Prepare(client.Services, settings, spansMachines) is { } certificates)
        {
            client.UseTls(o => Configure(o, certificates));
        }

        return client;
    }

    /// <summary>Why a process of a cluster that spans machines will not start without TLS.</summary>
    public static string RefusalMessage =>
        "PostgreSQL clustering joins silos and fronts across machines, and without TLS anyone on the network can call "
        + $"the cluster's grains and read its traffic. Give every process a certificate: {ClusterTlsSettings.CertificateVariable}, "
        + $"{ClusterTlsSettings.KeyVariable} and {ClusterTlsSettings.AuthorityVariable} (`Silo.Gpu make-certs` makes them). "
        + $"Or set {ClusterTlsSettings.ModeVariable}=off to run unencrypted on a network you trust.";

    /// <summary>Logged at every start of a process of a cluster that spans machines with TLS turned off.</summary>
    public const string OptOutWarning =
        "ORLEANS_TLS=off: this cluster's connections between machines are neither encrypted nor authenticated; anyone who "
        + "reaches the silo and gateway ports can call its grains. Use it only on a network you trust.";

    private static ClusterCertificates? Prepare(IServiceCollection services, ClusterTlsSettings settings, bool spansMachines)
    {
        if (!settings.Enabled)
        {
            if (spansMachines && settings.Mode != ClusterTlsMode.Off)
            {
                throw new InvalidOperationException(RefusalMessage);
            }

            if (spansMachines)
            {
                services.AddHostedService(sp => new StartupLog(sp.GetRequiredService<ILoggerFactory>(), null));
            }

            return null;
        }

        var certificates = ClusterCertificates.Load(settings);
        services.AddSingleton(certificates);
        services.AddHostedService(sp => new StartupLog(sp.GetRequiredService<ILoggerFactory>(), certificates));
        return certificates;
    }

    private static void Configure(TlsOptions o, ClusterCertificates certificates)
    {
        // The certificate at start is checked by Orleans (key, key usages); the selectors give each new connection the
        // certificate as its files are now.
        o.LocalCertificate = certificates.Certificate;
        o.LocalServerCertificateSelector = (_, _) => certificates.Certificate;
        o.LocalClientCertificateSelector = (_, _, _, _, _) => certificates.Certificate;
        o.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        o.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        o.RemoteCertificateValidation = certificates.Validate;
    }

    /// <summary>
    /// Says at start what the cluster's connections are protected by (or that they are not), and hands the logger to
    /// the certificate checks before Orleans opens its first connection.
    /// </summary>
    private sealed class StartupLog(ILoggerFactory loggers, ClusterCertificates? certificates) : IHostedLifecycleService
    {
        private readonly ILogger _logger = loggers.CreateLogger("OrleansGpu.ClusterTls");

        public Task StartingAsync(CancellationToken cancellationToken)
        {
            if (certificates is null)
            {
                _logger.LogWarning(OptOutWarning);
                return Task.CompletedTask;
            }

            certificates.Logger = _logger;
            var certificate = certificates.Certificate;
            _logger.LogInformation(
                "Cluster TLS on: presenting {Subject} (SHA-256 {Thumbprint}, valid until {NotAfter:u}); accepting peers issued by {Authorities}",
                certificate.Subject, certificate.GetCertHashString(HashAlgorithmName.SHA256), certificate.NotAfter.ToUniversalTime(),
                certificates.Authorities.Count == 0 ? "no CA (pinned certificates only)" : string.Join("; ", certificates.Authorities.Select(a => a.Subject)));
            if (certificate.NotAfter.ToUniversalTime() - DateTime.UtcNow < TimeSpan.FromDays(30))
            {
                _logger.LogWarning("The cluster certificate {Subject} expires on {NotAfter:u}: renew it (its files are read again when they change).",
                    certificate.Subject, certificate.NotAfter.ToUniversalTime());
            }

            return Task.CompletedTask;
        }

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
