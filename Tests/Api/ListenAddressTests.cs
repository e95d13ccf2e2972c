using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using OrleansGpu.Api.Hosting;

namespace OrleansGpu.Tests.Api;

/// <summary>Where the front listens: port 8765, loopback only without a key.</summary>
public sealed class ListenAddressTests
{
    private static WebApplicationBuilder Builder(params string[] args) => WebApplication.CreateBuilder(args);

    [Fact]
    public void Without_a_key_the_default_is_loopback_port_8765()
    {
        var builder = Builder();
        ListenAddresses.Configure(builder, keyRequired: false);
        Assert.Equal("http://127.0.0.1:8765", builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey));
    }

    [Fact]
    public void With_a_key_the_default_is_every_interface_port_8765()
    {
        var builder = Builder();
        ListenAddresses.Configure(builder, keyRequired: true);
        Assert.Equal("http://0.0.0.0:8765", builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey));
    }

    [Theory]
    [InlineData("http://127.0.0.1:9000")]
    [InlineData("http://localhost:9000")]
    [InlineData("http://[::1]:9000")]
    public void Urls_override_the_port_and_loopback_needs_no_key(string url)
    {
        var builder = Builder($"--urls={url}");
        ListenAddresses.Configure(builder, keyRequired: false);
        Assert.Equal(url, builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey));
    }

    [Theory]
    [InlineData("http://0.0.0.0:9000")]
    [InlineData("http://*:9000")]
    [InlineData("http://127.0.0.1:9000;http://192.168.1.5:9000")]
    public void Other_addresses_without_a_key_are_refused(string url)
    {
        var error = Assert.Throws<InvalidOperationException>(() => ListenAddresses.Configure(Builder($"--urls={url}"), keyRequired: false));
        Assert.Contains("without an API key", error.Message);
    }

    [Fact]
    public void The_operator_can_opt_out_explicitly()
    {
        var builder = Builder("--urls=http://0.0.0.0:9000", "--Api:AllowAnonymousRemote=true");
        ListenAddresses.Configure(builder, keyRequired: false);
        Assert.Equal("http://0.0.0.0:9000", builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey));
    }
}
