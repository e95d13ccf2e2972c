using Microsoft.Extensions.Hosting;
using OrleansGpu.Grains.Hosting;

// A GPU host: one silo whose grains hold the loaded models of this machine's GPU (or CPU).
var builder = Host.CreateApplicationBuilder(args);
builder.UseOrleans(silo =>
{
    ClusterSettings.FromConfiguration(builder.Configuration).ConfigureSilo(silo);
    silo.AddGpuHost(builder.Configuration);
});

await builder.Build().RunAsync();
