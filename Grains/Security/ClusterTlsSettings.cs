using Microsoft.Extensions.Configuration;

namespace OrleansGpu.Grains.Security;

/// <summary>Whether the cluster's own connections use TLS (<c>ORLEANS_TLS</c>).</summary>
public enum ClusterTlsMode
{
    /// <summary>TLS when a certificate is configured; a PostgreSQL cluster without one refuses to start.</summary>
    Auto,

    /// <summary>TLS, and a start without a certificate is an error.</summary>
    On,

    /// <summary>No TLS, said explicitly: every start logs a warning when the cluster spans machines.</summary>
    Off,
}

/// <summary>
/// Mutual TLS on every Orleans connection, silo to silo and front to gateway (environment variables, or section
/// <c>Cluster:Tls</c>). Each process presents <see cref="CertificatePath"/> and accepts a peer only when the peer's
/// certificate chains to <see cref="AuthorityPath"/> or is one of <see cref="PinnedThumbprints"/>.
/// </summary>
public sealed record ClusterTlsSettings
{
    public const string ModeVariable = "ORLEANS_TLS";
    public const string CertificateVariable = "ORLEANS_TLS_CERT";
    public const string KeyVariable = "ORLEANS_TLS_KEY";
    public const string AuthorityVariable = "ORLEANS_TLS_CA";
    public const string PinnedVariable = "ORLEANS_TLS_PINNED";
    public const string PasswordVariable = "ORLEANS_TLS_PASSWORD";

    public ClusterTlsMode Mode { get; init; } = ClusterTlsMode.Auto;

    /// <summary>This process's certificate: PEM (with the key in it or in <see cref="KeyPath"/>) or PKCS#12 (<c>.pfx</c>, <c>.p12</c>).</summary>
    public string? CertificatePath { get; init; }

    /// <summary>The PEM private key of a PEM certificate, when it is not in the certificate's file.</summary>
    public string? KeyPath { get; init; }

    /// <summary>PEM file of the CA certificate(s) that issue the cluster's certificates (several during a CA rotation).</summary>
    public string? AuthorityPath { get; init; }

    /// <summary>Certificates accepted whatever their issuer: SHA-256 (or SHA-1) thumbprints in hex.</summary>
    public IReadOnlyList<string> PinnedThumbprints { get; init; } = [];

    /// <summary>The password of a PKCS#12 file or an encrypted PEM key (<c>ORLEANS_TLS_PASSWORD</c> or <c>ORLEANS_TLS_PASSWORD_FILE</c>).</summary>
    public string? Password { get; init; }

    public bool Enabled => Mode == ClusterTlsMode.On || (Mode == ClusterTlsMode.Auto && CertificatePath is not null);

    public static ClusterTlsSettings FromConfiguration(IConfiguration configuration)
    {
        var s = configuration.GetSection("Cluster:Tls");
        string? Setting(string variable, string key) => NonEmpty(configuration[variable]) ?? NonEmpty(s[key]);

        var mode = Setting(ModeVariable, "Mode")?.ToLowerInvariant() switch
        {
            null or "auto" => ClusterTlsMode.Auto,
            "on" or "true" or "1" => ClusterTlsMode.On,
            "off" or "false" or "0" => ClusterTlsMode.Off,
            var other => throw new ArgumentException($"{ModeVariable} '{other}' is unknown: use on, off or auto."),
        };
        var pinned = Setting(PinnedVariable, "PinnedThumbprints") is { } list
            ? list.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(NormalizeThumbprint).ToArray()
            : [];
        var settings = new ClusterTlsSettings
        {
            Mode = mode,
            CertificatePath = Setting(CertificateVariable, "Certificate"),
            KeyPath = Setting(KeyVariable, "Key"),
            AuthorityPath = Setting(AuthorityVariable, "CertificateAuthority"),
            PinnedThumbprints = pinned,
            Password = SecretFiles.Read(configuration, PasswordVariable) ?? NonEmpty(s["Password"]),
        };
        if (settings.Enabled)
        {
            if (settings.CertificatePath is null)
            {
                throw new ArgumentException($"{ModeVariable}=on needs this process's certificate: set {CertificateVariable} (and {KeyVariable}) or Cluster:Tls:Certificate.");
            }

            if (settings.AuthorityPath is null && settings.PinnedThumbprints.Count == 0)
            {
                throw new ArgumentException($"Cluster TLS needs to know which peers to accept: set {AuthorityVariable} (the cluster's CA certificate) or {PinnedVariable} (peer certificate thumbprints).");
            }
        }

        return settings;
    }

    /// <summary>Thumbprints compare as upper-case hex without separators (<c>AB:CD</c> and <c>abcd</c> are one).</summary>
    public static string NormalizeThumbprint(string thumbprint)
    {
        var hex = new string([.. thumbprint.Where(char.IsAsciiHexDigit)]).ToUpperInvariant();
        return hex.Length is 40 or 64
            ? hex
            : throw new ArgumentException($"{PinnedVariable}: '{thumbprint}' is not a SHA-256 or SHA-1 certificate thumbprint (64 or 40 hex digits).");
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
