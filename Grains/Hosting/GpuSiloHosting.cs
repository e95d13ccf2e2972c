using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;
using Orleans.Hosting;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains.Hosting;

/// <summary>What makes a silo a GPU host: its name, the placement that pins host and model grains to it, where
/// models come from (models folder, Hugging Face cache and hub) and where the graphs built from them are kept, the
/// device, the job table, the hardware probe, the warm-up of the default models, and the drain when it stops.</summary>
public static class GpuSiloHosting
{
    /// <summary>How long one grain call may run: the longest job a host accepts.</summary>
    public static TimeSpan JobTimeout { get; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// What a stopping silo needs beyond its drain to leave the cluster gracefully (membership says it is shutting
    /// down, then dead; its grains deactivate and its models are released), measured at a few seconds.
    /// </summary>
    public static TimeSpan LeaveAllowance { get; } = TimeSpan.FromSeconds(30);

    /// <summary>Configures <paramref name="silo"/> as a GPU host from configuration (seed environment variables included).</summary>
    public static ISiloBuilder AddGpuHost(this ISiloBuilder silo, IConfiguration configuration) =>
        silo.AddGpuHost(o => GpuHostOptions.Bind(configuration, o));

    /// <summary>Configures <paramref name="silo"/> as a GPU host with settings given in code (tests).</summary>
    public static ISiloBuilder AddGpuHost(this ISiloBuilder silo, Action<GpuHostOptions> configure)
    {
        silo.Services.AddOptions<GpuHostOptions>().Configure(configure).ValidateOnStart();
        silo.Services.AddSingleton<IValidateOptions<GpuHostOptions>, GpuHostOptionsValidator>();

        // Grains and the job table take the settings themselves: they are fixed for the life of the silo.
        silo.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<GpuHostOptions>>().Value);
        silo.Services.AddOptions<SiloOptions>().Configure<IOptions<GpuHostOptions>>((s, gpu) => s.SiloName = gpu.Value.HostName);
        silo.Services.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        silo.Services.AddSingleton<HostJobs>();
        silo.Services.AddSingleton<HostModels>();
        silo.Services.AddSingleton<HostMemory>();
        silo.Services.AddSingleton<HostHardware>();
        silo.Services.AddHostedService(sp => sp.GetRequiredService<HostHardware>());
        silo.Services.AddSingleton(sp => new ModelStore(
            sp.GetRequiredService<GpuHostOptions>().ModelsDirectory ?? ModelStore.DefaultDirectory,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<ModelStore>(),
            sp.GetRequiredService<GpuHostOptions>().HostName));
        silo.Services.AddSingleton(sp => new ModelSources(
            sp.GetRequiredService<ModelStore>(),
            sp.GetRequiredService<GpuHostOptions>().EffectiveSources,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<ModelSources>()));
        silo.Services.AddSingleton(sp => new ModelGraphs(
            sp.GetRequiredService<GpuHostOptions>().GraphsDirectory ?? CacheFolders.Graphs,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<ModelGraphs>()));
        silo.Services.AddSingleton(sp => new EncoderOptions
        {
            Device = ExecutionDevice.Parse(sp.GetRequiredService<GpuHostOptions>().Device),
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

        // SIGTERM drains the host before the silo leaves: the process's shutdown must allow the drain and the leave,
        // not .NET's default 30 s in all (after every other setting of it, which hosts make themselves).
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, HostDrain>();
        silo.Services.AddOptions<HostOptions>().PostConfigure<IOptions<GpuHostOptions>>((host, gpu) =>
            host.ShutdownTimeout = Max(host.ShutdownTimeout, gpu.Value.DrainTimeout + LeaveAllowance));

        // The Orleans dashboard's per-silo data and grain profiling come from every silo.
        silo.AddDashboard();

        // Grain calls carry the caller's trace (front → host grain → model grain); see Observability.AddTracing.
        silo.AddActivityPropagation();
        return silo;
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
