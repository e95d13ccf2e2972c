using Microsoft.Extensions.Configuration;
using Npgsql;
using OrleansGpu.Api.Auth;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Grains.Security;

namespace OrleansGpu.Tests.Cluster;

/// <summary>Secrets from files (<c>NAME_FILE</c>): the API key, the PostgreSQL connection string or its password.</summary>
public sealed class SecretFilesTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("secret-files-").FullName;

    public void Dispose() => Directory.Delete(_directory, true);

    [Fact]
    public void A_setting_comes_from_its_value_or_from_the_file_its_FILE_setting_names_without_the_line_break()
    {
        var file = Write("key", "s3cret-key\n");
        Assert.Equal("plain", SecretFiles.Read(Configuration(("API_KEY", "plain")), "API_KEY"));
        Assert.Equal("s3cret-key", SecretFiles.Read(Configuration(("API_KEY_FILE", file)), "API_KEY"));
        Assert.Null(SecretFiles.Read(Configuration(), "API_KEY"));

        var both = Assert.Throws<ArgumentException>(() => SecretFiles.Read(Configuration(("API_KEY", "plain"), ("API_KEY_FILE", file)), "API_KEY"));
        Assert.Contains("Both API_KEY and API_KEY_FILE", both.Message);
        var missing = Assert.Throws<ArgumentException>(() => SecretFiles.Read(Configuration(("API_KEY_FILE", Path.Combine(_directory, "nope"))), "API_KEY"));
        Assert.Contains("API_KEY_FILE", missing.Message);
    }

    [Fact]
    public void The_front_accepts_the_api_key_from_API_KEY_FILE()
    {
        var configuration = Configuration(("API_KEY_FILE", Write("key", "from-a-file\r\n")));
        var options = new ApiKeyOptions();
        var setup = new ApiKeyOptionsSetup(configuration);
        setup.Configure(options);
        Assert.True(setup.Validate(null, options).Succeeded);
        Assert.True(ApiKeyOptionsSetup.KeyConfigured(configuration));
        var keys = new ApiKeys(Microsoft.Extensions.Options.Options.Create(options));
        Assert.True(keys.Required);
        Assert.True(keys.Matches("from-a-file"));
        Assert.False(keys.Matches("from-a-file\r\n"));
    }

    [Fact]
    public void The_postgres_password_or_the_whole_connection_string_comes_from_a_file_and_tls_settings_pass_through()
    {
        const string withoutPassword = "Host=db.example;Username=orleansgpu;Database=orleansgpu;SSL Mode=VerifyFull;Root Certificate=/etc/orleansgpu/db-ca.pem";
        var cluster = ClusterSettings.FromConfiguration(Configuration(
            ("ORLEANS_POSTGRES", withoutPassword),
            ("ORLEANS_POSTGRES_PASSWORD_FILE", Write("pg", "pa;ss'word\n"))));
        var connection = new NpgsqlConnectionStringBuilder(cluster.ConnectionString);
        Assert.Equal("pa;ss'word", connection.Password);
        Assert.Equal(SslMode.VerifyFull, connection.SslMode);
        Assert.Equal("/etc/orleansgpu/db-ca.pem", connection.RootCertificate);
        Assert.Equal("db.example", connection.Host);

        var fromFile = ClusterSettings.FromConfiguration(Configuration(("ORLEANS_POSTGRES_FILE", Write("cs", withoutPassword + ";Password=x\n"))));
        Assert.Equal(ClusterProvider.Postgres, fromFile.Provider);
        Assert.Equal("x", new NpgsqlConnectionStringBuilder(fromFile.ConnectionString).Password);

        Assert.Contains("ORLEANS_POSTGRES", Assert.Throws<ArgumentException>(() =>
            ClusterSettings.FromConfiguration(Configuration(("ORLEANS_POSTGRES_PASSWORD_FILE", Write("pg2", "p"))))).Message);
        Assert.Contains("has a password too", Assert.Throws<ArgumentException>(() => ClusterSettings.FromConfiguration(Configuration(
            ("ORLEANS_POSTGRES", withoutPassword + ";Password=x"), ("ORLEANS_POSTGRES_PASSWORD_FILE", Write("pg3", "p"))))).Message);
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static IConfiguration Configuration(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();
}
