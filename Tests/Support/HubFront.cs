namespace OrleansGpu.Tests.Support;

/// <summary>
/// A real front process (co-hosting its GPU silo) with a private models folder, downloading from a hub stand-in on
/// loopback into its own Hugging Face cache; all of it is disposed together.
/// </summary>
public sealed class HubFront : IAsyncDisposable
{
    private HubFront(string cachePrefix) => Cache = Directory.CreateTempSubdirectory(cachePrefix).FullName;

    public TestModelsFolder Models { get; } = new();

    public string Cache { get; }

    public HubStandIn Hub { get; private set; } = null!;

    public ServiceProcess Front { get; private set; } = null!;

    /// <summary>
    /// Starts the hub stand-in, lets <paramref name="prepare"/> add its repos and the models folder's extra models (the
    /// folder's path is its second argument), then starts the front and waits until it is healthy.
    /// </summary>
    public static async Task<HubFront> StartAsync(string cachePrefix, Action<HubStandIn, string> prepare)
    {
        var setup = new HubFront(cachePrefix);
        setup.Hub = await HubStandIn.StartAsync();
        prepare(setup.Hub, setup.Models.Directory);
        setup.Front = ServiceProcess.Start(setup.Models.Directory, setup.Hub.ServiceEnvironment(setup.Cache));
        await setup.Front.WaitUntilHealthyAsync();
        return setup;
    }

    public async ValueTask DisposeAsync()
    {
        if (Front is not null)
        {
            await Front.DisposeAsync();
        }

        if (Hub is not null)
        {
            await Hub.DisposeAsync();
        }

        Models.Dispose();
        Directory.Delete(Cache, recursive: true);
    }
}
