using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// A production-shaped cluster of real processes on loopback: a fresh PostgreSQL database with our membership schema
/// (applied by <c>Silo.Gpu apply-schema</c>), <c>Silo.Gpu</c> processes, and an <c>Api.Front</c> in client mode.
/// Needs <c>ORLEANSGPU_TEST_POSTGRES</c> (a connection string; .ci/run sets it).
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    public const string ConnectionVariable = "ORLEANSGPU_TEST_POSTGRES";

    private readonly TestModelsFolder _models = new();
    private readonly List<ServiceProcess> _processes = [];
    private readonly Dictionary<string, ServiceProcess> _silos = [];
    private readonly string _database;

    private ProcessCluster(string connectionString, string database)
    {
        ConnectionString = connectionString;
        _database = database;
    }

    public static string? BaseConnectionString => System.Environment.GetEnvironmentVariable(ConnectionVariable) is { Length: > 0 } s ? s : null;

    public static string SkipReason => $"{ConnectionVariable} is not set: no PostgreSQL to test against (.ci/run starts one; locally: eval \"$(tools/postgres/start-local.sh)\").";

    public string ConnectionString { get; }

    public ServiceProcess Front { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    /// <summary>Creates an empty database and applies the schema with the project's own command (twice: it is idempotent).</summary>
    public static async Task<ProcessCluster> CreateAsync()
    {
        var database = $"orleansgpu_test_{Guid.NewGuid():N}"[..30];
        await using (var admin = new NpgsqlConnection(BaseConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", admin);
            await create.ExecuteNonQueryAsync();
        }

        var connection = new NpgsqlConnectionStringBuilder(BaseConnectionString) { Database = database, Pooling = false }.ConnectionString;
        var cluster = new ProcessCluster(connection, database);
        for (var i = 0; i < 2; i++)
        {
            await using var schema = ServiceProcess.Start(cluster._models.Directory, cluster.Environment(), project: "Silo.Gpu", arguments: "apply-schema");
            var code = await schema.WaitForExitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"apply-schema exited with {code}:\n{schema.Output}");
        }

        return cluster;
    }

    public Dictionary<string, string> Environment(string? host = null) => new()
    {
        ["ORLEANS_POSTGRES"] = ConnectionString,
        ["ORLEANS_ADVERTISED_IP"] = "127.0.0.1",
        ["ORLEANS_CLUSTER_ID"] = _database,
        ["GPU_HOST_NAME"] = host ?? "front",
        ["GPU_MAX_CONCURRENT"] = "2",
    };

    /// <summary>Starts a GPU silo named <paramref name="host"/> on free ports.</summary>
    public ServiceProcess StartSilo(string host)
    {
        var env = Environment(host);
        env["Cluster__SiloPort"] = ServiceProcess.FreePort().ToString();
        env["Cluster__GatewayPort"] = ServiceProcess.FreePort().ToString();
        var silo = ServiceProcess.Start(_models.Directory, env, project: "Silo.Gpu");
        _processes.Add(silo);
        _silos[host] = silo;
        return silo;
    }

    /// <summary>Starts the front as a pure client of the cluster and waits until it answers.</summary>
    public async Task StartFrontAsync()
    {
        var env = Environment();
        env["GPU_MAX_BATCH_SIZE"] = "100";
        Front = ServiceProcess.Start(_models.Directory, env, project: "Api.Front");
        _processes.Add(Front);
        await Front.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120));
        Http = new HttpClient { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
    }

    /// <summary>Kills a silo the hard way (SIGKILL): no goodbye to the cluster.</summary>
    public void Kill(string host) => _silos[host].Kill();

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
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_database}\" WITH (FORCE)", admin);
            await drop.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
            // PostgreSQL may be down (the outage test); the database is dropped by the next clean-up.
        }

        _models.Dispose();
    }
}

public sealed record RequestResult(int Status, TimeSpan Latency, string? Host, string Body);

public sealed record LoadResult(RequestResult[] Requests)
{
    public IReadOnlyList<RequestResult> Failed => [.. Requests.Where(r => r.Status != 200)];

    public TimeSpan Worst => Requests.Max(r => r.Latency);

    public int ServedBy(string host) => Requests.Count(r => r.Host == host);
}
