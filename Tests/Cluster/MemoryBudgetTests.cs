using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>GPU_MEMORY_BUDGET: sizes with units or a share of the device's memory; anything else stops the start, naming it.</summary>
public sealed class MemoryBudgetTests
{
    [Theory]
    [InlineData("12GiB", 12L << 30)]
    [InlineData("800MiB", 800L << 20)]
    [InlineData("800 mib", 800L << 20)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("2GB", 2_000_000_000L)]
    [InlineData("512KiB", 512L << 10)]
    [InlineData("1073741824", 1L << 30)]
    public void Sizes_are_bytes_with_binary_or_decimal_units(string setting, long bytes)
    {
        Assert.Equal(bytes, MemoryBudget.Parse(setting)!.Resolve(deviceBytes: null));
        Assert.Equal(bytes, MemoryBudget.Parse(setting)!.Resolve(deviceBytes: 1L << 40));
    }

    [Fact]
    public void A_percentage_is_a_share_of_the_devices_memory_and_none_while_that_is_unknown()
    {
        var budget = MemoryBudget.Parse("80%")!;
        Assert.Equal(8L << 30, budget.Resolve(10L << 30));
        Assert.Null(budget.Resolve(null));
        Assert.Equal(1L << 30, MemoryBudget.Parse("100%")!.Resolve(1L << 30));
    }

    [Theory]
    [InlineData("lots")]
    [InlineData("0")]
    [InlineData("-1GiB")]
    [InlineData("0%")]
    [InlineData("150%")]
    [InlineData("12XB")]
    public void Anything_else_stops_the_start_naming_the_setting(string setting)
    {
        Assert.Null(MemoryBudget.Parse(setting));
        var error = Assert.Throws<OptionsValidationException>(() => GpuHostOptions.FromConfiguration(new ConfigurationBuilder()
            .AddInMemoryCollection([new KeyValuePair<string, string?>("GPU_MEMORY_BUDGET", setting)])
            .Build()));
        Assert.Contains("GPU_MEMORY_BUDGET (Gpu:MemoryBudget)", error.Message);
        Assert.Contains(setting, error.Message);
    }
}
