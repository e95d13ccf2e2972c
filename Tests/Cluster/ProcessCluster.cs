using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Grains.Security;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// A production-shaped cluster of real processes on loopback: a fresh PostgreSQL database with our membership schema
/// (applied by <c>Silo.Gpu apply-schema</c>), <c>Silo.Gpu</c> processes, and an <c>Api.Front</c> in client mode. As in
/// production, every process has a certificate from the cluster's CA (made by <c>Silo.Gpu make-certs</c>) and speaks
/// mutual TLS; they log in to PostgreSQL as the database's own role, whose password they read from a file (over TLS
/// when the server offers it); the front reads its API key from a file.
/// Needs <c>ORLEANSGPU_TEST_POSTGRES</c> (a connection string; .ci/run sets it).
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    public const string ConnectionVariable = "ORLEANSGPU_TEST_POSTGRES";

    /// <summary>The hosts that get a certificate from the cluster's CA (the silo names the tests use, and the front).</summary>
    private static readonly string[] KnownHosts = ["gpu-a", "gpu-b", "gpu-c", "gpu-new", "gpu-late", "front"];

    private readonly TestModelsFolder _models = new();
    private readonly List<ServiceProcess> _processes = [];
    private readonly Dictionary<string, ServiceProcess> _silos = [];
    private readonly string _database;
    private readonly string _processConnection;

    private ProcessCluster(string connectionString, string database, string processConnection, string secrets)
    {
        ConnectionString = connectionString;
        _database = database;
        _processConnection = processConnection;
        SecretsDirectory = secrets;
        CertificatesDirectory = Path.Combine(secrets, "certs");
        PasswordFile = Path.Combine(secrets, "postgres_password");
        ApiKeyFile = Path.Combine(secrets, "api_key");
        Password = SecretFiles.ReadFile(PasswordFile, "test");
        ApiKey = SecretFiles.ReadFile(ApiKeyFile, "test");
    }

    /// <summary>The database role's password, which the processes read from <see cref="PasswordFile"/>.</summary>
    public string Password { get; }

    public string PasswordFile { get; }

    /// <summary>The front's API key, which it reads from <see cref="ApiKeyFile"/>.</summary>
    public string ApiKey { get; }

    public string ApiKeyFile { get; }

    /// <summary>The cluster CA (<c>ca.pem</c>) and a certificate and key per host (<c>NAME.pem</c>, <c>NAME.key</c>).</summary>
    public string CertificatesDirectory { get; }

    /// <summary>A private folder for the cluster's secrets and certificates, deleted with the cluster.</summary>
    public string SecretsDirectory { get; }

    /// <summary>The models folder every process of the cluster reads (MiniLM, and <see cref="TestModelsFolder.CopyName"/>).</summary>
    public string ModelsDirectory => _models.Directory;

    /// <summary>Every process started for the cluster, in order.</summary>
    public IReadOnlyList<ServiceProcess> Processes => _processes;

    private string Role => _database + "_owner";

    public static string? BaseConnectionString => System.Environment.GetEnvironmentVariable(ConnectionVariable) is { Length: > 0 } s ? s : null;

    public static string SkipReason => $"{ConnectionVariable} is not set: no PostgreSQL to test against (.ci/run starts one; locally: eval \"$(tools/postgres/start-local.sh)\").";

    /// <summary>The test's own connection to the cluster's database (as the administrator).</summary>
    public string ConnectionString { get; }

    public ServiceProcess Front { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    /// <summary>
    /// Creates an empty database owned by a role of its own with a random password, makes the cluster's certificates
    /// and applies the schema with the project's own commands (the schema twice: it is idempotent).
    /// </summary>
    public static async Task<ProcessCluster> CreateAsync()
    {
        var database = $"orleansgpu_test_{Guid.NewGuid():N}"[..30];
        var secrets = Directory.CreateTempSubdirectory("cluster-secrets-").FullName;
        File.WriteAllText(Path.Combine(secrets, "postgres_password"), RandomSecret() + "\n");
        File.WriteAllText(Path.Combine(secrets, "api_key"), RandomSecret() + "\n");
        var password = SecretFiles.ReadFile(Path.Combine(secrets, "postgres_password"), "test");
        bool serverTls;
        await using (var admin = new NpgsqlConnection(BaseConnectionString))
        {
            await admin.OpenAsync();
            foreach (var statement in new[] { $"CREATE ROLE \"{database}_owner\" LOGIN PASSWORD '{password}'", $"CREATE DATABASE \"{database}\" OWNER \"{database}_owner\"" })
            {
                await using var create = new NpgsqlCommand(statement, admin);
                await create.ExecuteNonQueryAsync();
            }
            await using var ssl = new NpgsqlCommand("SHOW ssl", admin);
            serverTls = (string?)await ssl.ExecuteScalarAsync() == "on";
        }

        var connection = new NpgsqlConnectionStringBuilder(BaseConnectionString) { Database = database, Pooling = false }.ConnectionString;

        // What the processes get: no password (it comes from the file), and TLS required when the server offers it.
        var processConnection = new NpgsqlConnectionStringBuilder(BaseConnectionString)
        {
            Database = database,
            Pooling = false,
            Username = $"{database}_owner",
            Password = null,
            SslMode = serverTls ? SslMode.Require : SslMode.Prefer,
        }.ConnectionString;
        var cluster = new ProcessCluster(connection, database, processConnection, secrets);
        await cluster.MakeCertificatesAsync(cluster.CertificatesDirectory, KnownHosts);
        for (var i = 0; i < 2; i++)
        {
            await using var schema = ServiceProcess.Start(cluster._models.Directory, cluster.Environment(), project: "Silo.Gpu", arguments: "apply-schema");
            var code = await schema.WaitForExitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"apply-schema exited with {code}:\n{schema.Output}");
        }

        return cluster;
    }

    /// <summary>Runs <c>Silo.Gpu make-certs</c>: a CA in <paramref name="directory"/> (made once) and a certificate per host.</summary>
    public async Task MakeCertificatesAsync(string directory, params string[] hosts)
    {
        await using var certs = ServiceProcess.Start(_models.Directory, project: "Silo.Gpu", arguments: ["make-certs", "--hosts", string.Join(',', hosts), "--out", directory]);
        var code = await certs.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.True(code == 0, $"make-certs exited with {code}:\n{certs.Output}");
    }

    /// <summary>The settings of every process of the cluster; <paramref name="host"/> also picks the certificate.</summary>
    public Dictionary<string, string> Environment(string? host = null) => new()
    {
        ["ORLEANS_POSTGRES"] = _processConnection,
        ["ORLEANS_POSTGRES_PASSWORD_FILE"] = PasswordFile,
        ["ORLEANS_ADVERTISED_IP"] = "127.0.0.1",
        ["ORLEANS_CLUSTER_ID"] = _database,
        ["GPU_HOST_NAME"] = host ?? "front",
        ["GPU_MAX_CONCURRENT"] = "2",
        ["ORLEANS_TLS_CERT"] = Path.Combine(CertificatesDirectory, $"{host ?? "front"}.pem"),
        ["ORLEANS_TLS_KEY"] = Path.Combine(CertificatesDirectory, $"{host ?? "front"}.key"),
        ["ORLEANS_TLS_CA"] = Path.Combine(CertificatesDirectory, ClusterCertificateAuthority.CertificateFile),
    };

    /// <summary>Starts a GPU silo named <paramref name="host"/> on free ports, with <paramref name="environment"/> when given.</summary>
    public ServiceProcess StartSilo(string host, Dictionary<string, string>? environment = null)
    {
        var env = environment ?? Environment(host);
        env["Cluster__SiloPort"] = ServiceProcess.FreePort().ToString();
        env["Cluster__GatewayPort"] = ServiceProcess.FreePort().ToString();
        var silo = ServiceProcess.Start(_models.Directory, env, project: "Silo.Gpu");
        _processes.Add(silo);
        _silos[host] = silo;
        return silo;
    }

    /// <summary>Starts the front as a pure client of the cluster and waits until it answers; <see cref="Http"/> sends the API key.</summary>
    public async Task StartFrontAsync()
    {
        var env = Environment();
        env["GPU_MAX_BATCH_SIZE"] = "100";
        env["API_KEY_FILE"] = ApiKeyFile;
        Front = StartProcess("Api.Front", env);
        await Front.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120));
        Http = new HttpClient { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        Http.DefaultRequestHeaders.Add("X-API-Key", ApiKey);
    }

    /// <summary>Starts a process of ours with the cluster's models folder; it is killed with the cluster.</summary>
    public ServiceProcess StartProcess(string project, Dictionary<string, string> environment, params string[] arguments)
    {
        var process = ServiceProcess.Start(_models.Directory, environment, project: project, arguments: arguments);
        _processes.Add(process);
        return process;
    }

    /// <summary>Every process started so far said at start that it speaks TLS with the cluster's certificate.</summary>
    public void AssertTlsOn()
    {
        foreach (var process in _processes)
        {
            Assert.Contains("Cluster TLS on", process.Output);
        }
    }

    private static string RandomSecret() => Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();

    /// <summary>Kills a silo the hard way (SIGKILL): no goodbye to the cluster.</summary>
    public void Kill(string host) => _silos[host].Kill();

    /// <summary>The process of the silo last started as <paramref name="host"/>.</summary>
    public ServiceProcess Silo(string host) => _silos[host];

    public async Task<int> HostCountAsync()
    {
        try
        {
            using var health = JsonDocument.Parse(await Http.GetStringAsync("/health"));
            return health.RootElement.GetProperty("hosts").GetInt32();
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    public async Task WaitForHostsAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (await HostCountAsync() != count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the front did not see {count} hosts in {timeout.TotalSeconds} s:\n{Front.Output}");
            await Task.Delay(250);
        }
    }

    /// <summary>The silo's row in the membership table: 3 = active, 6 = dead.</summary>
    public async Task<int?> MembershipStatusAsync(string host)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand(
            "SELECT Status FROM OrleansMembershipTable WHERE SiloName = @host ORDER BY Generation DESC LIMIT 1", connection);
        query.Parameters.AddWithValue("host", host);
        return await query.ExecuteScalarAsync() is int status ? status : null;
    }

    /// <summary>
    /// Sends <paramref name="count"/> requests at <paramref name="concurrency"/>, embeddings and BERTScore mixed,
    /// calling <paramref name="afterEach"/> with how many have finished.
    /// </summary>
    public async Task<LoadResult> LoadAsync(int count, int concurrency, Func<int, Task>? afterEach = null, CancellationToken stop = default, Action<RequestResult>? onResult = null)
    {
        var results = new RequestResult[count];
        var next = -1;
        var finished = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while (!stop.IsCancellationRequested && (i = Interlocked.Increment(ref next)) < count)
            {
                var watch = Stopwatch.StartNew();
                using var response = i % 5 < 3
                    ? await Http.PostAsJsonAsync("/embed", new { texts = new[] { $"request {i} about clusters", $"second sentence {i}" } })
                    : await Http.PostAsJsonAsync("/bertscore", new { candidates = new[] { $"candidate {i} text" }, references = new[] { $"reference {i} text" }, model_type = "all-MiniLM-L6-v2" });
                var body = await response.Content.ReadAsStringAsync();
                results[i] = new RequestResult((int)response.StatusCode, watch.Elapsed, response.Headers.TryGetValues("X-Gpu-Host", out var h) ? h.First() : null, body);
                onResult?.Invoke(results[i]);
                var done = Interlocked.Increment(ref finished);
                if (afterEach is not null)
                {
                    await afterEach(done);
                }
            }
        }));
        return new LoadResult([.. results.Where(r => r is not null)]);
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        try
        {
            NpgsqlConnection.ClearAllPools();
            await using var admin = new NpgsqlConnection(BaseConnectionString);
            await admin.OpenAsync();
            foreach (var statement in new[] { $"DROP DATABASE IF EXISTS \"{_database}\" WITH (FORCE)", $"DROP ROLE IF EXISTS \"{Role}\"" })
            {
                await using var drop = new NpgsqlCommand(statement, admin);
                await drop.ExecuteNonQueryAsync();
            }
        }
        catch (NpgsqlException)
        {
            // PostgreSQL may be down (the outage test); the database is dropped by the next clean-up.
        }

        _models.Dispose();
        try
        {
            Directory.Delete(SecretsDirectory, true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed record RequestResult(int Status, TimeSpan Latency, string? Host, string Body);

public sealed record LoadResult(RequestResult[] Requests)
{
    public IReadOnlyList<RequestResult> Failed => [.. Requests.Where(r => r.Status != 200)];

    public TimeSpan Worst => Requests.Max(r => r.Latency);

    public int ServedBy(string host) => Requests.Count(r => r.Host == host);
}
