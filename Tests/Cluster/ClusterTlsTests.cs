using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using OrleansGpu.Grains.Security;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// The cluster's TLS pieces without processes: the settings, the certificates <c>make-certs</c> writes, which peers
/// are accepted, and the reload when the files change. The process tests (<see cref="ClusterSecurityTests"/>) show the
/// same on real connections.
/// </summary>
public sealed class ClusterTlsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("cluster-tls-").FullName;

    public void Dispose() => Directory.Delete(_directory, true);

    [Fact]
    public void Make_certs_writes_a_ca_and_host_certificates_for_both_ends_of_a_connection_and_keeps_the_ca_key_apart()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var certs = Path.Combine(_directory, "certs");
        var ca = Path.Combine(_directory, "ca");

        Assert.Equal(0, ClusterCertificateAuthority.Run(["--hosts", "gpu-a,gpu-b", "--out", certs, "--ca", ca], output, error));

        Assert.True(File.Exists(Path.Combine(ca, "ca.key")));
        Assert.False(File.Exists(Path.Combine(certs, "ca.key")), "the CA's key stays out of the hosts' folder");
        using var authority = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(certs, "ca.pem")));
        Assert.True(authority.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        using var host = X509Certificate2.CreateFromPemFile(Path.Combine(certs, "gpu-a.pem"), Path.Combine(certs, "gpu-a.key"));
        Assert.True(host.HasPrivateKey);
        Assert.Equal("CN=gpu-a", host.Subject);
        Assert.Equal("gpu-a", host.GetNameInfo(X509NameType.DnsName, false));
        var usages = host.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value).ToList();
        Assert.Contains("1.3.6.1.5.5.7.3.1", usages);
        Assert.Contains("1.3.6.1.5.5.7.3.2", usages);
        Assert.Null(ClusterCertificates.ChainProblem(host, [authority]));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(certs, "gpu-a.key")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(ca, "ca.key")));
        }

        // Again, with a new host: same CA, the existing host certificate kept; --force reissues it.
        var before = File.ReadAllText(Path.Combine(certs, "gpu-a.pem"));
        Assert.Equal(0, ClusterCertificateAuthority.Run(["--hosts", "gpu-a,gpu-c", "--out", certs, "--ca", ca], output, error));
        Assert.Equal(before, File.ReadAllText(Path.Combine(certs, "gpu-a.pem")));
        using var added = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(certs, "gpu-c.pem")));
        Assert.Null(ClusterCertificates.ChainProblem(added, [authority]));
        Assert.Equal(0, ClusterCertificateAuthority.Run(["--hosts", "gpu-a", "--out", certs, "--ca", ca, "--force"], output, error));
        Assert.NotEqual(before, File.ReadAllText(Path.Combine(certs, "gpu-a.pem")));
        Assert.Equal("", error.ToString());
    }

    [Fact]
    public void Make_certs_explains_its_arguments_and_refuses_half_a_ca()
    {
        var error = new StringWriter();
        Assert.Equal(2, ClusterCertificateAuthority.Run(["--out", _directory], TextWriter.Null, error));
        Assert.Contains("--hosts", error.ToString());

        File.WriteAllText(Path.Combine(_directory, "ca.pem"), "");
        error = new StringWriter();
        Assert.Equal(1, ClusterCertificateAuthority.Run(["--hosts", "a", "--out", _directory], TextWriter.Null, error));
        Assert.Contains("half a CA", error.ToString());
    }

    [Fact]
    public void Peers_are_accepted_when_issued_by_the_cluster_ca_or_pinned_and_refused_otherwise()
    {
        var cluster = MakeCerts("cluster", "gpu-a", "gpu-b");
        var other = MakeCerts("other", "intruder");
        var certificates = ClusterCertificates.Load(Settings(cluster, "gpu-a"));
        using var peer = Public(cluster, "gpu-b");
        using var intruder = Public(other, "intruder");

        Assert.Equal("CN=gpu-a", certificates.Certificate.Subject);
        Assert.True(certificates.Validate(peer, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.False(certificates.Validate(intruder, null, SslPolicyErrors.None), "the platform's verdict does not let a foreign certificate in");

        // Pinned: accepted whatever its issuer, by SHA-256 or SHA-1 thumbprint, however it is written.
        var pinned = ClusterCertificates.Load(Settings(cluster, "gpu-a") with
        {
            PinnedThumbprints = [ClusterTlsSettings.NormalizeThumbprint(string.Join(':', Convert.ToHexString(intruder.GetCertHash(HashAlgorithmName.SHA256)).Chunk(2).Select(c => new string(c))).ToLowerInvariant())],
        });
        Assert.True(pinned.Validate(intruder, null, SslPolicyErrors.RemoteCertificateChainErrors));
        var pinnedOnly = ClusterCertificates.Load(Settings(cluster, "gpu-a") with { AuthorityPath = null, PinnedThumbprints = [intruder.Thumbprint] });
        Assert.True(pinnedOnly.Validate(intruder, null, SslPolicyErrors.None));
        Assert.False(pinnedOnly.Validate(peer, null, SslPolicyErrors.None), "with pins alone, only pinned peers get in");
    }

    [Fact]
    public void A_certificate_that_the_cluster_ca_did_not_issue_or_without_its_key_is_refused_at_start()
    {
        var cluster = MakeCerts("cluster", "gpu-a");
        var other = MakeCerts("other", "intruder");

        var foreign = Assert.Throws<ArgumentException>(() => ClusterCertificates.Load(Settings(cluster, "gpu-a") with
        {
            CertificatePath = Path.Combine(other, "intruder.pem"),
            KeyPath = Path.Combine(other, "intruder.key"),
        }));
        Assert.Contains("every peer would refuse it", foreign.Message);

        var keyless = Assert.Throws<ArgumentException>(() => ClusterCertificates.Load(Settings(cluster, "gpu-a") with { KeyPath = null }));
        Assert.Contains("ORLEANS_TLS_KEY", keyless.Message);

        var missing = Assert.Throws<ArgumentException>(() => ClusterCertificates.Load(Settings(cluster, "gpu-a") with { AuthorityPath = Path.Combine(cluster, "nope.pem") }));
        Assert.Contains("ORLEANS_TLS_CA", missing.Message);
    }

    [Fact]
    public void A_pkcs12_file_with_its_password_is_a_certificate_too()
    {
        var cluster = MakeCerts("cluster", "gpu-a");
        using var pem = X509Certificate2.CreateFromPemFile(Path.Combine(cluster, "gpu-a.pem"), Path.Combine(cluster, "gpu-a.key"));
        var pfx = Path.Combine(cluster, "gpu-a.pfx");
        File.WriteAllBytes(pfx, pem.Export(X509ContentType.Pkcs12, "s3cret"));

        var certificates = ClusterCertificates.Load(Settings(cluster, "gpu-a") with { CertificatePath = pfx, KeyPath = null, Password = "s3cret" });
        Assert.Equal(pem.Thumbprint, certificates.Certificate.Thumbprint);
        Assert.True(certificates.Certificate.HasPrivateKey);
        Assert.Throws<ArgumentException>(() => ClusterCertificates.Load(Settings(cluster, "gpu-a") with { CertificatePath = pfx, KeyPath = null, Password = "wrong" }));
    }

    [Fact]
    public void Renewed_files_are_presented_and_trusted_from_the_next_check_on_and_a_half_written_file_keeps_the_old_set()
    {
        var cluster = MakeCerts("cluster", "gpu-a", "renewed");
        var next = MakeCerts("next", "next-host");
        var time = new ManualTime();
        var certificates = ClusterCertificates.Load(Settings(cluster, "gpu-a"), time);
        var first = certificates.Certificate.Thumbprint;
        using var nextPeer = Public(next, "next-host");
        Assert.False(certificates.Validate(nextPeer, null, SslPolicyErrors.None));

        // A renewed certificate and a CA file that adds the next CA (a CA rotation), written in place.
        File.Copy(Path.Combine(cluster, "renewed.pem"), Path.Combine(cluster, "gpu-a.pem"), true);
        File.Copy(Path.Combine(cluster, "renewed.key"), Path.Combine(cluster, "gpu-a.key"), true);
        File.AppendAllText(Path.Combine(cluster, "ca.pem"), File.ReadAllText(Path.Combine(next, "ca.pem")));
        Assert.Equal(first, certificates.Certificate.Thumbprint);

        time.Advance(ClusterCertificates.CheckInterval);
        Assert.Equal("CN=renewed", certificates.Certificate.Subject);
        Assert.True(certificates.Validate(nextPeer, null, SslPolicyErrors.RemoteCertificateChainErrors));

        // Caught half-written: the previous set stays in use until the files make sense again.
        File.WriteAllText(Path.Combine(cluster, "gpu-a.pem"), "-----BEGIN CERTIFICATE-----\nMII");
        time.Advance(ClusterCertificates.CheckInterval);
        Assert.Equal("CN=renewed", certificates.Certificate.Subject);
    }

    [Fact]
    public void Settings_come_from_the_environment_or_the_cluster_section_and_say_what_is_missing()
    {
        Assert.False(Parse([]).Enabled);
        Assert.Equal(ClusterTlsMode.Off, Parse([("ORLEANS_TLS", "off")]).Mode);

        var full = Parse([("ORLEANS_TLS_CERT", "/c.pem"), ("ORLEANS_TLS_KEY", "/c.key"), ("ORLEANS_TLS_CA", "/ca.pem")]);
        Assert.True(full.Enabled);
        Assert.Equal(("/c.pem", "/c.key", "/ca.pem"), (full.CertificatePath, full.KeyPath, full.AuthorityPath));

        var section = Parse([("Cluster:Tls:Certificate", "/c.pfx"), ("Cluster:Tls:PinnedThumbprints", new string('a', 64) + "; " + new string('B', 40))]);
        Assert.True(section.Enabled);
        Assert.Equal([new string('A', 64), new string('B', 40)], section.PinnedThumbprints);

        Assert.Contains("ORLEANS_TLS_CA", Assert.Throws<ArgumentException>(() => Parse([("ORLEANS_TLS_CERT", "/c.pem")])).Message);
        Assert.Contains("ORLEANS_TLS_CERT", Assert.Throws<ArgumentException>(() => Parse([("ORLEANS_TLS", "on"), ("ORLEANS_TLS_CA", "/ca.pem")])).Message);
        Assert.Contains("on, off or auto", Assert.Throws<ArgumentException>(() => Parse([("ORLEANS_TLS", "maybe")])).Message);
        Assert.Contains("thumbprint", Assert.Throws<ArgumentException>(() => Parse([("ORLEANS_TLS_PINNED", "abc")])).Message);

        // Off wins over certificates that happen to be configured.
        Assert.False(Parse([("ORLEANS_TLS", "off"), ("ORLEANS_TLS_CERT", "/c.pem"), ("ORLEANS_TLS_CA", "/ca.pem")]).Enabled);
    }

    private static ClusterTlsSettings Parse((string Key, string Value)[] values) =>
        ClusterTlsSettings.FromConfiguration(new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value)))
            .Build());

    private string MakeCerts(string name, params string[] hosts)
    {
        var directory = Path.Combine(_directory, name);
        ClusterCertificateAuthority.Make(hosts, directory, directory, TimeSpan.FromDays(30), force: false, TextWriter.Null);
        return directory;
    }

    private static ClusterTlsSettings Settings(string directory, string host) => new()
    {
        CertificatePath = Path.Combine(directory, host + ".pem"),
        KeyPath = Path.Combine(directory, host + ".key"),
        AuthorityPath = Path.Combine(directory, "ca.pem"),
    };

    private static X509Certificate2 Public(string directory, string host) => X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(directory, host + ".pem")));

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
