using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>Routing settings are bound, checked at start, and a bad one stops the front naming it (they used to be ignored).</summary>
public sealed class RoutingOptionsTests
{
    private static RoutingOptions Read(params (string Key, string Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build();
        var services = new ServiceCollection();
        services.AddSettings<RoutingOptions, RoutingOptionsValidator>(configuration, RoutingOptions.Section, RoutingOptions.Aliases);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<RoutingOptions>>().Value;
    }

    [Fact]
    public void Defaults_and_the_readme_spellings_of_the_strategy()
    {
        Assert.Equal(RoutingStrategy.LeastBusy, Read().Strategy);
        Assert.Equal(4, Read().MaxAttempts);
        Assert.Equal(RoutingStrategy.RoundRobin, Read(("ROUTING", "round-robin")).Strategy);
        Assert.Equal(RoutingStrategy.RoundRobin, Read(("Routing:Strategy", "RoundRobin")).Strategy);
        Assert.Equal(RoutingStrategy.LeastBusy, Read(("Routing:Strategy", "round-robin"), ("ROUTING", "least-busy")).Strategy);
        var tuned = Read(("Routing:MaxAttempts", "2"), ("Routing:RefreshInterval", "00:00:00.500"), ("Routing:FailureCooldown", "00:00:10"));
        Assert.Equal(2, tuned.MaxAttempts);
        Assert.Equal(TimeSpan.FromMilliseconds(500), tuned.RefreshInterval);
        Assert.Equal(TimeSpan.FromSeconds(10), tuned.FailureCooldown);
    }

    [Theory]
    [InlineData("ROUTING", "sideways", "ROUTING (Routing:Strategy)")]
    [InlineData("Routing:Strategy", "sideways", "Routing:Strategy")]
    [InlineData("Routing:MaxAttempts", "0", "Routing:MaxAttempts")]
    [InlineData("Routing:MaxAttempts", "many", "Routing:MaxAttempts")]
    [InlineData("Routing:RefreshInterval", "00:00:00", "Routing:RefreshInterval")]
    public void A_bad_value_is_refused_naming_its_setting(string key, string value, string named)
    {
        var error = Assert.Throws<OptionsValidationException>(() => Read((key, value)));
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public async Task A_host_checks_the_settings_when_it_starts()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection([new("Routing:MaxAttempts", "-2")]);
        builder.Services.AddSettings<RoutingOptions, RoutingOptionsValidator>(builder.Configuration, RoutingOptions.Section, RoutingOptions.Aliases);
        using var host = builder.Build();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Routing:MaxAttempts must be a positive integer; got -2", error.Message);
    }

    [Fact]
    public async Task The_front_with_a_bad_routing_setting_exits_at_start_naming_it()
    {
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string> { ["Routing__MaxAttempts"] = "0" });
        var code = await front.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, code);
        Assert.Contains("Routing:MaxAttempts must be a positive integer; got 0", front.Output);
    }
}
