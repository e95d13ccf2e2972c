using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace OrleansGpu.Grains.Security;

/// <summary>
/// This process's cluster certificate and the peers it trusts, read from the files that <see cref="ClusterTlsSettings"/>
/// names and read again when they change. Orleans asks for the local certificate on every new connection and calls
/// <see cref="Validate"/> on every handshake, so a renewed certificate or CA file is used from the next connection on,
/// without a restart; connections already open keep the certificate they were opened with.
/// </summary>
public sealed class ClusterCertificates
{
    private readonly ClusterTlsSettings _settings;
    private readonly TimeProvider _time;
    private readonly Lock _reload = new();
    private volatile Snapshot _current;
    private long _nextCheck;

    private ClusterCertificates(ClusterTlsSettings settings, TimeProvider time, Snapshot first)
    {
        _settings = settings;
        _time = time;
        _current = first;
        _nextCheck = time.GetTimestamp() + CheckTicks(time);
    }

    /// <summary>How often the files are looked at again (their time stamps and sizes; they are read only when those change).</summary>
    public static TimeSpan CheckInterval { get; } = TimeSpan.FromSeconds(2);

    /// <summary>Where rejected peers and reloads are logged; set once the host's logging exists.</summary>
    public ILogger Logger { get; set; } = NullLogger.Instance;

    /// <summary>Loads the files now, refusing a certificate without its key or one that the configured CA would not accept.</summary>
    public static ClusterCertificates Load(ClusterTlsSettings settings, TimeProvider? time = null) =>
        new(settings, time ?? TimeProvider.System, Snapshot.Read(settings));

    /// <summary>The certificate this process presents, as its files are now.</summary>
    public X509Certificate2 Certificate => Current.Certificate;

    /// <summary>The CA certificates peers must chain to.</summary>
    public X509Certificate2Collection Authorities => Current.Authorities;

    /// <summary>
    /// Accepts a peer whose certificate is pinned or chains to one of the cluster's CA certificates. The platform's own
    /// verdict (<paramref name="errors"/>) is not used: it trusts public CAs and checks host names, while a cluster
    /// peer is identified by its CA, whatever address membership gives it.
    /// </summary>
    public bool Validate(X509Certificate2 peer, X509Chain? presented, SslPolicyErrors errors)
    {
        var current = Current;
        if (current.Pinned.Contains(peer.GetCertHashString(HashAlgorithmName.SHA256)) || current.Pinned.Contains(peer.Thumbprint))
        {
            return true;
        }

        var problem = ChainProblem(peer, current.Authorities, presented);
        if (problem is null)
        {
            return true;
        }

        Logger.LogWarning("Refused a cluster connection: the peer's certificate {Subject} (SHA-256 {Thumbprint}) {Problem}",
            peer.Subject, peer.GetCertHashString(HashAlgorithmName.SHA256), problem);
        return false;
    }

    private Snapshot Current
    {
        get
        {
            var now = _time.GetTimestamp();
            if (now >= Interlocked.Read(ref _nextCheck))
            {
                Refresh(now);
            }

            return _current;
        }
    }

    private void Refresh(long now)
    {
        lock (_reload)
        {
            if (now < _nextCheck)
            {
                return;
            }

            _nextCheck = now + CheckTicks(_time);
            var current = _current;
            var stamps = Snapshot.Stamp(_settings);
            if (stamps.SequenceEqual(current.Stamps))
            {
                return;
            }

            try
            {
                _current = Snapshot.Read(_settings);
                Logger.LogInformation("Cluster TLS files changed: new connections now present {Subject} (SHA-256 {Thumbprint}, valid until {NotAfter:u})",
                    _current.Certificate.Subject, _current.Certificate.GetCertHashString(HashAlgorithmName.SHA256), _current.Certificate.NotAfter.ToUniversalTime());
            }
            catch (Exception e) when (e is ArgumentException or CryptographicException or IOException or UnauthorizedAccessException)
            {
                // A file caught half-written, or a certificate and key that do not match yet: keep serving with the
                // previous set and look again at the next check.
                Logger.LogWarning("Cluster TLS files changed but cannot be used yet, keeping the previous certificate: {Problem}", e.Message);
            }
        }
    }

    private static long CheckTicks(TimeProvider time) => (long)(CheckInterval.TotalSeconds * time.TimestampFrequency);

    /// <summary>Why <paramref name="certificate"/> does not chain to <paramref name="authorities"/>, or null when it does.</summary>
    public static string? ChainProblem(X509Certificate2 certificate, X509Certificate2Collection authorities, X509Chain? presented = null)
    {
        if (authorities.Count == 0)
        {
            return "is not pinned, and no CA is configured";
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            // Intermediate certificates the peer sent along.
            foreach (var element in presented.ChainElements.Skip(1))
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        if (chain.Build(certificate))
        {
            return null;
        }

        var statuses = chain.ChainStatus.Select(s => s.Status.ToString()).Distinct();
        return $"does not chain to the cluster's CA ({string.Join(", ", statuses)})";
    }

    /// <summary>One consistent set of files: the certificate with its key, the CA certificates, the pins.</summary>
    private sealed record Snapshot(X509Certificate2 Certificate, X509Certificate2Collection Authorities, HashSet<string> Pinned, (DateTime, long)[] Stamps)
    {
        public static Snapshot Read(ClusterTlsSettings settings)
        {
            var stamps = Stamp(settings);
            var certificate = LoadCertificate(settings);
            var authorities = settings.AuthorityPath is { } ca ? LoadAuthorities(ca) : [];
            var pinned = settings.PinnedThumbprints.ToHashSet(StringComparer.Ordinal);
            if (authorities.Count > 0
                && !pinned.Contains(certificate.GetCertHashString(HashAlgorithmName.SHA256)) && !pinned.Contains(certificate.Thumbprint)
                && ChainProblem(certificate, authorities) is { } problem)
            {
                throw new ArgumentException(
                    $"{ClusterTlsSettings.CertificateVariable} '{settings.CertificatePath}' ({certificate.Subject}) {problem} in {ClusterTlsSettings.AuthorityVariable} '{settings.AuthorityPath}': every peer would refuse it.");
            }

            return new Snapshot(certificate, authorities, pinned, stamps);
        }

        public static (DateTime, long)[] Stamp(ClusterTlsSettings settings) =>
            [.. new[] { settings.CertificatePath, settings.KeyPath, settings.AuthorityPath }.Select(path =>
            {
                // Follows symbolic links, so a Kubernetes secret swapped by relinking counts as a change.
                var file = path is null ? null : new FileInfo(path);
                return file is { Exists: true } ? (file.LastWriteTimeUtc, file.Length) : (DateTime.MinValue, -1L);
            })];

        private static X509Certificate2 LoadCertificate(ClusterTlsSettings settings)
        {
            var path = settings.CertificatePath!;
            Require(path, ClusterTlsSettings.CertificateVariable);
            X509Certificate2 certificate;
            try
            {
                if (IsPkcs12(path))
                {
                    certificate = X509CertificateLoader.LoadPkcs12FromFile(path, settings.Password);
                }
                else
                {
                    if (settings.KeyPath is { } key)
                    {
                        Require(key, ClusterTlsSettings.KeyVariable);
                    }

                    certificate = settings.Password is { } password
                        ? X509Certificate2.CreateFromEncryptedPemFile(path, password, settings.KeyPath)
                        : X509Certificate2.CreateFromPemFile(path, settings.KeyPath);
                }
            }
            catch (CryptographicException e)
            {
                var key = settings.KeyPath is null
                    ? $" (with no {ClusterTlsSettings.KeyVariable}, the key must be in the same file)"
                    : $" with {ClusterTlsSettings.KeyVariable} '{settings.KeyPath}'";
                throw new ArgumentException(
                    $"{ClusterTlsSettings.CertificateVariable} '{path}'{key} is not a usable certificate and private key: {e.Message}", e);
            }

            if (!certificate.HasPrivateKey)
            {
                throw new ArgumentException($"{ClusterTlsSettings.CertificateVariable} '{path}' holds no private key: set {ClusterTlsSettings.KeyVariable} to the key's file.");
            }

            return certificate;
        }

        private static X509Certificate2Collection LoadAuthorities(string path)
        {
            Require(path, ClusterTlsSettings.AuthorityVariable);
            var authorities = new X509Certificate2Collection();
            try
            {
                if (File.ReadAllText(path).Contains("-----BEGIN", StringComparison.Ordinal))
                {
                    authorities.ImportFromPemFile(path);
                }
                else
                {
                    authorities.Add(X509CertificateLoader.LoadCertificateFromFile(path));
                }
            }
            catch (CryptographicException e)
            {
                throw new ArgumentException($"{ClusterTlsSettings.AuthorityVariable} '{path}' holds no readable certificate: {e.Message}", e);
            }

            return authorities.Count > 0
                ? authorities
                : throw new ArgumentException($"{ClusterTlsSettings.AuthorityVariable} '{path}' holds no certificate.");
        }

        private static bool IsPkcs12(string path) =>
            path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase);

        private static void Require(string path, string setting)
        {
            if (!File.Exists(path))
            {
                throw new ArgumentException($"{setting}: the file '{path}' does not exist.");
            }
        }
    }
}
