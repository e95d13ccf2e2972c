using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OrleansGpu.Grains.Security;

/// <summary>
/// A cluster's own CA and the certificates it issues to hosts: what <c>Silo.Gpu make-certs</c> writes. ECDSA P-256
/// keys; every host certificate serves both ends of a connection (server and client authentication), as each
/// Orleans process both accepts and opens connections. Made with .NET alone, no openssl needed.
/// </summary>
public static class ClusterCertificateAuthority
{
    public const string CertificateFile = "ca.pem";
    public const string KeyFile = "ca.key";

    public const string Usage = """
        Silo.Gpu make-certs --hosts NAME[,NAME...] --out DIR [--ca DIR] [--days N] [--force]
          Makes a cluster CA (once) and a certificate per host, for ORLEANS_TLS_CERT / ORLEANS_TLS_KEY / ORLEANS_TLS_CA:
            DIR/ca.pem                   the CA certificate every process trusts (ORLEANS_TLS_CA)
            DIR/NAME.pem, DIR/NAME.key   a host's certificate and private key (ORLEANS_TLS_CERT, ORLEANS_TLS_KEY)
            CA-DIR/ca.key                the CA's private key: keep it off the hosts (--ca puts it elsewhere; default DIR)
          Run it again to add hosts: an existing CA is reused and existing host certificates are kept (--force reissues
          them). --days sets how long host certificates last (default 825); the CA lasts 10 years.
        """;

    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    /// <summary>The <c>make-certs</c> command: returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        string? Get(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var hosts = Get("--hosts")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        var outDirectory = Get("--out");
        if (hosts.Length == 0 || outDirectory is null || args.Contains("--help"))
        {
            error.WriteLine(Usage);
            return 2;
        }

        var days = 825;
        if (Get("--days") is { } d && (!int.TryParse(d, NumberStyles.Integer, CultureInfo.InvariantCulture, out days) || days <= 0))
        {
            error.WriteLine($"--days must be a positive number of days; got '{d}'.");
            return 2;
        }

        if (hosts.FirstOrDefault(h => h.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || h.StartsWith('.')) is { } bad)
        {
            error.WriteLine($"'{bad}' cannot be a host name: it names the host's files.");
            return 2;
        }

        try
        {
            Make(hosts, outDirectory, Get("--ca") ?? outDirectory, TimeSpan.FromDays(days), args.Contains("--force"), output);
            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            error.WriteLine($"make-certs: {e.Message}");
            return 1;
        }
    }

    /// <summary>Makes (or reuses) the CA in <paramref name="caDirectory"/> and a certificate per host in <paramref name="outDirectory"/>.</summary>
    public static void Make(IEnumerable<string> hosts, string outDirectory, string caDirectory, TimeSpan validity, bool force, TextWriter output)
    {
        Directory.CreateDirectory(outDirectory);
        Directory.CreateDirectory(caDirectory);
        var caCertificate = Path.Combine(caDirectory, CertificateFile);
        var caKey = Path.Combine(caDirectory, KeyFile);
        X509Certificate2 authority;
        if (File.Exists(caCertificate) || File.Exists(caKey))
        {
            if (!File.Exists(caKey) || !File.Exists(caCertificate))
            {
                throw new ArgumentException($"{caDirectory} holds only half a CA ({CertificateFile} and {KeyFile} belong together): restore the other file, or remove both to start a new CA, whose certificates old hosts would refuse.");
            }

            authority = X509Certificate2.CreateFromPemFile(caCertificate, caKey);
            output.WriteLine($"kept   {caCertificate} ({authority.Subject}, valid until {authority.NotAfter.ToUniversalTime():yyyy-MM-dd})");
        }
        else
        {
            authority = CreateAuthority($"CN=OrleansGpu cluster CA {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}", TimeSpan.FromDays(3650));
            WriteKey(caKey, authority);
            File.WriteAllText(caCertificate, authority.ExportCertificatePem() + "\n");
            output.WriteLine($"wrote  {caCertificate} and {caKey} ({authority.Subject}, valid until {authority.NotAfter.ToUniversalTime():yyyy-MM-dd})");
        }

        var trusted = Path.Combine(outDirectory, CertificateFile);
        if (Path.GetFullPath(trusted) != Path.GetFullPath(caCertificate))
        {
            File.WriteAllText(trusted, authority.ExportCertificatePem() + "\n");
        }

        foreach (var host in hosts)
        {
            var certificateFile = Path.Combine(outDirectory, host + ".pem");
            var keyFile = Path.Combine(outDirectory, host + ".key");
            if (!force && File.Exists(certificateFile) && File.Exists(keyFile))
            {
                output.WriteLine($"kept   {certificateFile} (--force issues a new one)");
                continue;
            }

            using var issued = Issue(authority, host, validity);
            WriteKey(keyFile, issued);
            File.WriteAllText(certificateFile, issued.ExportCertificatePem() + "\n");
            output.WriteLine($"wrote  {certificateFile} and {keyFile} (CN={host}, valid until {issued.NotAfter.ToUniversalTime():yyyy-MM-dd})");
        }
    }

    /// <summary>A self-signed CA certificate with its private key.</summary>
    public static X509Certificate2 CreateAuthority(string subject, TimeSpan validity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddMinutes(-5), now + validity);
    }

    /// <summary>A host certificate (with its private key) issued by <paramref name="authority"/>, for server and client authentication.</summary>
    public static X509Certificate2 Issue(X509Certificate2 authority, string host, TimeSpan validity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={host}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuthentication, ClientAuthentication], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, true, false));
        var names = new SubjectAlternativeNameBuilder();
        if (IPAddress.TryParse(host, out var address))
        {
            names.AddIpAddress(address);
        }
        else
        {
            names.AddDnsName(host);
        }

        request.CertificateExtensions.Add(names.Build());
        var now = DateTimeOffset.UtcNow;
        var notAfter = now + validity < authority.NotAfter ? now + validity : new DateTimeOffset(authority.NotAfter.ToUniversalTime());
        using var issued = request.Create(authority, now.AddMinutes(-5), notAfter, RandomNumberGenerator.GetBytes(16));
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Writes the certificate's private key as PKCS#8 PEM, readable by its owner only.</summary>
    private static void WriteKey(string path, X509Certificate2 certificate)
    {
        using var key = certificate.GetECDsaPrivateKey() ?? throw new ArgumentException($"{certificate.Subject} has no ECDSA private key.");
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(path, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
            writer.Write('\n');
        }

        if (!OperatingSystem.IsWindows())
        {
            // UnixCreateMode applies only to a new file: an existing one gets the same mode.
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
