using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Dashboard;
using Orleans.Hosting;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains.Hosting;

/// <summary>What makes a silo a GPU host: its name, the placement that pins host and model grains to it, where
/// models come from (models folder, Hugging Face cache and hub), the device, the job table, and the warm-up of the
/// default models.</summary>
public static class GpuSiloHosting
{
    /// <summary>How long one grain call may run: the longest job a host accepts.</summary>
    public static TimeSpan JobTimeout { get; } = TimeSpan.FromMinutes(5);

    /// <summary>Configures <paramref name="silo"/> as a GPU host from configuration (seed environment variables included).</summary>
    public static ISiloBuilder AddGpuHost(this ISiloBuilder silo, IConfiguration configuration) =>
        silo.AddGpuHost(GpuHostOptions.FromConfiguration(configuration));

    public static ISiloBuilder AddGpuHost(this ISiloBuilder silo, GpuHostOptions options)
    {
        silo.Configure<SiloOptions>(o => o.SiloName = options.HostName);
        silo.Services.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        silo.Services.AddSingleton(options);
        silo.Services.AddSingleton<HostJobs>();
        silo.Services.AddSingleton<HostModels>();
        silo.Services.AddSingleton(sp => new ModelStore(
            options.ModelsDirectory ?? ModelStore.DefaultDirectory,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<ModelStore>(),
            options.HostName));
        silo.Services.AddSingleton(sp => new ModelSources(
            sp.GetRequiredService<ModelStore>(),
            options.Sources with { DefaultModels = [.. options.Sources.DefaultModels, options.DefaultEmbedModel, options.DefaultBertScoreModel] },
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<ModelSources>()));
        silo.Services.AddSingleton(sp => new EncoderOptions
        {
            Device = ExecutionDevice.Parse(options.Device),
            Logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("OrleansGpu.Inference"),
        });
        // A job's call from the host grain to its model grain lasts as long as the job: BERTScore on a large model can
        // take minutes, far past Orleans' 30 s default.
        silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = JobTimeout);
        silo.Configure<GrainCollectionOptions>(o =>
        {
            // Loaded models are expensive to reload: keep an idle model an hour before its sessions are released.
            o.ClassSpecificCollectionAge[typeof(ModelGrain).FullName!] = TimeSpan.FromHours(1);
        });
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, DefaultModelWarmup>();

        // The Orleans dashboard's per-silo data and grain profiling come from every silo.
        silo.AddDashboard();
        return silo;
    }
}
