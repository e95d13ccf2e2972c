using System.Diagnostics;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Deployment;

/// <summary>
/// docker/compose.yml stays valid: Compose parses it and it holds PostgreSQL, the schema step, two GPU silos with
/// their device reservations and the front. No Docker engine runs here, so nothing is built or started.
/// </summary>
public sealed class ComposeFileTests
{
    private static (string File, string[] Prefix)? Compose()
    {
        foreach (var (file, prefix) in new[] { ("/usr/bin/docker", new[] { "compose" }), ("/usr/bin/docker-compose", Array.Empty<string>()), ("/usr/local/bin/docker-compose", Array.Empty<string>()) })
        {
            if (!File.Exists(file))
            {
                continue;
            }

            var probe = Run(file, [.. prefix, "version"], Paths.RepositoryRoot);
            if (probe.Code == 0)
            {
                return (file, prefix);
            }
        }

        return null;
    }

    [Fact]
    public void Compose_parses_the_file_with_postgres_schema_two_gpu_silos_and_the_front()
    {
        var compose = Compose();
        Assert.SkipWhen(compose is null, "Neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose).");
        var (file, prefix) = compose!.Value;

        var result = Run(file, [.. prefix, "config"], Path.Combine(Paths.RepositoryRoot, "docker"), ("API_KEY", "test"));
        Assert.True(result.Code == 0, result.Output);
        foreach (var service in new[] { "postgres:", "schema:", "silo-0:", "silo-1:", "front:" })
        {
            Assert.Contains(service, result.Output);
        }

        Assert.Contains("driver: nvidia", result.Output);
        Assert.Contains("apply-schema", result.Output);
        Assert.Contains("8765", result.Output);
    }

    [Fact]
    public void Compose_refuses_to_start_the_front_without_an_api_key()
    {
        var compose = Compose();
        Assert.SkipWhen(compose is null, "Neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose).");
        var (file, prefix) = compose!.Value;
        var result = Run(file, [.. prefix, "config"], Path.Combine(Paths.RepositoryRoot, "docker"), ("API_KEY", null));
        Assert.NotEqual(0, result.Code);
        Assert.Contains("API_KEY", result.Output);
    }

    private static (int Code, string Output) Run(string file, string[] arguments, string directory, params (string Name, string? Value)[] environment)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                info.Environment.Remove(name);
            }
            else
            {
                info.Environment[name] = value;
            }
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit(60_000);
        return (process.ExitCode, output.Result + error.Result);
    }
}
