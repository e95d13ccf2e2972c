using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.TestingHost;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// Three GPU silos in one process (Orleans' InProcessTestCluster), each a GPU host named after its silo, running the
/// real MiniLM on the CPU (no GPU here), and a router over the cluster's client as the front uses it.
/// </summary>
public class GpuClusterFixture : IAsyncLifetime
{
    private readonly TestModelsFolder _models = new();

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public string ModelsDirectory => _models.Directory;

    public IReadOnlyList<string> HostNames => [.. Cluster.GetActiveSilos().Select(Name)];

    public virtual int MaxConcurrent => 2;

    /// <summary>Each host's GPU_MEMORY_BUDGET; null for the default.</summary>
    public virtual string? MemoryBudget => null;

    /// <summary>Each host's GPU_FP16_ON_CPU: true runs fp16 requests with the fp16 graph on the CPU (the stand-in of a CUDA host).</summary>
    public virtual bool Fp16OnCpu => false;

    public async ValueTask InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((options, silo) =>
        {
            silo.AddGpuHost(o =>
            {
                o.HostName = options.SiloName;
                o.ModelsDirectory = _models.Directory;
                o.Device = "cpu";
                o.MaxConcurrent = MaxConcurrent;
                o.MemoryBudget = MemoryBudget;
                o.Fp16OnCpu = Fp16OnCpu;
                o.DefaultEmbedModel = "all-MiniLM-L6-v2";
                o.DefaultBertScoreModel = "all-MiniLM-L6-v2";
                o.Sources = new ModelSourceOptions { Offline = true, CacheDirectory = ServiceProcess.EmptyHuggingFaceCache };
            });
            silo.Configure<ClusterMembershipOptions>(m =>
            {
                // Declare a killed silo dead within a few seconds, as the production settings do.
                m.ProbeTimeout = TimeSpan.FromSeconds(1);
                m.NumMissedProbesLimit = 2;
                m.NumVotesForDeathDeclaration = 1;
                m.TableRefreshTimeout = TimeSpan.FromSeconds(2);
            });
        });
        builder.ConfigureClient(client => client.Services.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(120)));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
        foreach (var host in HostNames)
        {
            await Cluster.Client.GetGrain<IGpuHostGrain>(host).WarmAsync([new WarmRequest("all-MiniLM-L6-v2", ModelUse.Embedding)]);
        }
    }

    public HostRouter NewRouter(RoutingStrategy strategy) => NewRouter(new RoutingOptions { Strategy = strategy });

    public HostRouter NewRouter(RoutingOptions options) => new(Cluster.Client, Options.Create(options), NullLogger<HostRouter>.Instance);

    /// <summary>
    /// Puts MiniLM in the models folder once more under <paramref name="name"/> (links to the same files), so that a
    /// test has distinct models to load without copying weights.
    /// </summary>
    public void AddModel(string name)
    {
        var source = Path.Combine(_models.Directory, TestModelsFolder.CopyName);
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var link = Path.Combine(_models.Directory, name, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, file);
        }
    }

    public string Name(InProcessSiloHandle silo) =>
        silo.ServiceProvider.GetRequiredService<GpuHostOptions>().HostName;

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        _models.Dispose();
        GC.SuppressFinalize(this);
    }
}
