using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Connections.Security;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Grains.Security;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// The cluster's own network, in real processes on loopback with PostgreSQL membership: mutual TLS keeps out Orleans
/// clients and silos without a certificate from the cluster's CA, a cluster across machines does not start without
/// TLS unless told to, PostgreSQL's TLS settings reach the driver, and secrets come from files. Skipped, with the
/// reason, when no PostgreSQL is configured.
/// </summary>
public sealed class ClusterSecurityTests
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    private static void RequirePostgres() => Assert.SkipUnless(ProcessCluster.BaseConnectionString is not null, ProcessCluster.SkipReason);

    [Fact]
    public async Task A_tls_cluster_serves_its_front_and_refuses_clients_and_silos_without_a_certificate_from_its_ca()
    {
        RequirePostgres();
        await using var cluster = await ProcessCluster.CreateAsync();
        var foreign = Path.Combine(cluster.SecretsDirectory, "foreign");
        await cluster.MakeCertificatesAsync(foreign, "gpu-x", "intruder");
        cluster.StartSilo("gpu-a");
        cluster.StartSilo("gpu-b");
        await cluster.StartFrontAsync();
        await cluster.WaitForHostsAsync(2, TimeSpan.FromSeconds(120));
        cluster.AssertTlsOn();

        // The front serves over TLS, with the API key it read from its file.
        var served = await cluster.LoadAsync(20, 4);
        Assert.Empty(served.Failed);
        using (var anonymous = new HttpClient { BaseAddress = cluster.Front.BaseAddress })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/info")).StatusCode);
        }

        // The database password and the API key came from files: neither is in any process's command line or environment.
        foreach (var process in cluster.Processes)
        {
            var listing = ProcessListing(process.ProcessId);
            Assert.DoesNotContain(cluster.Password, listing);
            Assert.DoesNotContain(cluster.ApiKey, listing);
        }

        // A silo with a certificate from another CA. It trusts the cluster's silos (pinned), so only their checks can keep it out.
        var pinned = string.Join(',', new[] { "gpu-a", "gpu-b", "front" }.Select(h => Sha256(Path.Combine(cluster.CertificatesDirectory, h + ".pem"))));
        var intruderSilo = cluster.Environment("gpu-x");
        intruderSilo["ORLEANS_TLS_CERT"] = Path.Combine(foreign, "gpu-x.pem");
        intruderSilo["ORLEANS_TLS_KEY"] = Path.Combine(foreign, "gpu-x.key");
        intruderSilo.Remove("ORLEANS_TLS_CA");
        intruderSilo["ORLEANS_TLS_PINNED"] = pinned;
        var foreignSilo = cluster.StartSilo("gpu-x", intruderSilo);

        // Orleans clients calling a host grain directly, at the same time: only the one with the cluster's certificate gets through.
        var withoutTls = Settings(cluster.Environment(), tls: false);
        var withCertificate = Settings(cluster.Environment(), tls: true);
        var fromOtherCa = Settings(cluster.Environment(), tls: true);
        fromOtherCa["ORLEANS_TLS_CERT"] = Path.Combine(foreign, "intruder.pem");
        fromOtherCa["ORLEANS_TLS_KEY"] = Path.Combine(foreign, "intruder.key");
        fromOtherCa.Remove("ORLEANS_TLS_CA");
        fromOtherCa["ORLEANS_TLS_PINNED"] = pinned;
        var outcomes = await Task.WhenAll(
            CallHostGrainAsync(withoutTls),
            CallHostGrainAsync(withoutTls, c => c.UseTls(o =>
            {
                // TLS that trusts any gateway but has no certificate of its own to show.
                o.ClientCertificateMode = RemoteCertificateMode.AllowCertificate;
                o.AllowAnyRemoteCertificate();
            })),
            CallHostGrainAsync(fromOtherCa),
            CallHostGrainAsync(withCertificate));
        TestContext.Current.SendDiagnosticMessage($"clients: without TLS: {outcomes[0]} | TLS without a certificate: {outcomes[1]} | other CA: {outcomes[2]}");
        Assert.True(outcomes[0] is not null, "an Orleans client without TLS called a host grain");
        Assert.True(outcomes[1] is not null, "an Orleans client with TLS but no certificate called a host grain");
        Assert.True(outcomes[2] is not null, "an Orleans client with a certificate from another CA called a host grain");
        Assert.True(outcomes[3] is null, $"an Orleans client with the cluster's certificate could not call a host grain: {outcomes[3]}");

        // The foreign silo never becomes active: the cluster's silos refuse its connections, and it gives up joining.
        var exit = await foreignSilo.WaitForExitAsync(TimeSpan.FromSeconds(120));
        TestContext.Current.SendDiagnosticMessage($"the foreign silo exited with {exit}: {Tail(foreignSilo.Output)}");
        Assert.NotEqual(0, exit);
        Assert.NotEqual(3, await cluster.MembershipStatusAsync("gpu-x"));
        var refusals = string.Concat(cluster.Processes.Take(2).Select(p => p.Output));
        Assert.Contains("Refused a cluster connection: the peer's certificate CN=gpu-x", refusals);
        Assert.Contains("Refused a cluster connection: the peer's certificate CN=intruder", refusals);

        // The cluster went on serving throughout.
        Assert.Equal(2, await cluster.HostCountAsync());
        Assert.Empty((await cluster.LoadAsync(10, 2)).Failed);
    }

    [Fact]
    public async Task A_postgres_cluster_without_tls_refuses_to_start_unless_tls_is_turned_off_and_then_warns()
    {
        RequirePostgres();
        await using var cluster = await ProcessCluster.CreateAsync();
        var plainSilo = Settings(cluster.Environment("gpu-a"), tls: false);
        plainSilo.Remove("ORLEANS_TLS");
        var plainFront = Settings(cluster.Environment(), tls: false);
        plainFront.Remove("ORLEANS_TLS");
        var optedOut = Settings(cluster.Environment("gpu-b"), tls: false);

        var refusedSilo = cluster.StartSilo("gpu-a", plainSilo);
        var refusedFront = cluster.StartProcess("Api.Front", plainFront);
        var silo = cluster.StartSilo("gpu-b", optedOut);

        foreach (var refused in new[] { refusedSilo, refusedFront })
        {
            Assert.NotEqual(0, await refused.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains(ClusterTls.RefusalMessage, refused.Output);
        }

        Assert.Null(await cluster.MembershipStatusAsync("gpu-a"));

        // Told off explicitly: the silo joins, and says at start that the cluster's network is open.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (await cluster.MembershipStatusAsync("gpu-b") != 3)
        {
            Assert.True(DateTime.UtcNow < deadline && !silo.HasExited, $"the silo with ORLEANS_TLS=off did not become active:\n{silo.Output}");
            await Task.Delay(250);
        }

        Assert.Contains(ClusterTls.OptOutWarning, silo.Output);
        Assert.DoesNotContain("Cluster TLS on", silo.Output);
    }

    [Fact]
    public async Task Postgres_tls_settings_in_the_connection_string_reach_the_driver()
    {
        RequirePostgres();
        var serverCertificate = await ServerCertificateAsync();
        Assert.SkipWhen(serverCertificate is null,
            "This PostgreSQL server does not offer TLS with a self-signed certificate that the test can read (Debian's default is its snakeoil certificate), so there is no root to verify against.");

        await using var cluster = await ProcessCluster.CreateAsync();
        async Task<(int Code, string Output)> ApplySchemaAsync(string root)
        {
            var env = cluster.Environment();
            env["ORLEANS_POSTGRES"] = new NpgsqlConnectionStringBuilder(env["ORLEANS_POSTGRES"]) { SslMode = SslMode.VerifyCA, RootCertificate = root }.ConnectionString;
            await using var schema = ServiceProcess.Start(Path.GetTempPath(), env, project: "Silo.Gpu", arguments: "apply-schema");
            return (await schema.WaitForExitAsync(TimeSpan.FromSeconds(60)), schema.Output);
        }

        var verified = await ApplySchemaAsync(serverCertificate!);
        Assert.True(verified.Code == 0, $"apply-schema with SSL Mode=VerifyCA and the server's root failed:\n{verified.Output}");

        // The cluster's CA did not issue the server's certificate: with it as the root, the driver refuses the server.
        var refused = await ApplySchemaAsync(Path.Combine(cluster.CertificatesDirectory, ClusterCertificateAuthority.CertificateFile));
        Assert.NotEqual(0, refused.Code);
        Assert.Contains("certificate", refused.Output, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The settings of a process with (<paramref name="tls"/>) or without the cluster's TLS (then <c>ORLEANS_TLS=off</c>).</summary>
    private static Dictionary<string, string> Settings(Dictionary<string, string> environment, bool tls)
    {
        if (!tls)
        {
            environment.Remove("ORLEANS_TLS_CERT");
            environment.Remove("ORLEANS_TLS_KEY");
            environment.Remove("ORLEANS_TLS_CA");
            environment["ORLEANS_TLS"] = "off";
        }

        return environment;
    }

    /// <summary>
    /// Starts an Orleans client in this process with <paramref name="settings"/> (through the front's own cluster
    /// configuration) and calls host gpu-a's grain; returns null when the call succeeded, else what went wrong.
    /// </summary>
    private static async Task<string?> CallHostGrainAsync(Dictionary<string, string> settings, Action<IClientBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings!);
        var cluster = ClusterSettings.FromConfiguration(builder.Configuration);
        builder.UseOrleansClient(c =>
        {
            cluster.ConfigureClient(c);
            configure?.Invoke(c);
        });
        using var host = builder.Build();
        using var timeout = new CancellationTokenSource(CallTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
            await host.Services.GetRequiredService<IClusterClient>().GetGrain<IGpuHostGrain>("gpu-a").GetLoadAsync().WaitAsync(timeout.Token);
            return null;
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await host.StopAsync(stop.Token);
            }
            catch (Exception)
            {
                // A client that never connected may fail to stop cleanly as well; the outcome above is what counts.
            }
        }
    }

    private static string Tail(string text) => text.Length > 3000 ? text[^3000..] : text;

    /// <summary>What <c>ps</c> and <c>/proc</c> show of a process: its command line and its environment.</summary>
    private static string ProcessListing(int pid) =>
        File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ') + "\n" + File.ReadAllText($"/proc/{pid}/environ").Replace('\0', '\n');

    private static string Sha256(string pemFile) =>
        X509Certificate2.CreateFromPem(File.ReadAllText(pemFile)).GetCertHashString(HashAlgorithmName.SHA256);

    /// <summary>The PostgreSQL server's certificate file when the server offers TLS with a readable self-signed certificate.</summary>
    private static async Task<string?> ServerCertificateAsync()
    {
        await using var admin = new NpgsqlConnection(ProcessCluster.BaseConnectionString);
        await admin.OpenAsync();
        await using var query = new NpgsqlCommand("SELECT current_setting('ssl'), current_setting('ssl_cert_file')", admin);
        await using var reader = await query.ExecuteReaderAsync();
        await reader.ReadAsync();
        if (reader.GetString(0) != "on")
        {
            return null;
        }

        var file = reader.GetString(1);
        try
        {
            using var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(file));
            return certificate.SubjectName.RawData.AsSpan().SequenceEqual(certificate.IssuerName.RawData) ? file : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            return null;
        }
    }
}
