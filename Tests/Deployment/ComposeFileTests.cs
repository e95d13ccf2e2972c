using System.Diagnostics;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Deployment;

/// <summary>
/// docker/compose.yml stays valid: Compose parses it and it holds PostgreSQL, the certificates and schema steps, two
/// GPU silos with their device reservations and the front, with mutual TLS between them and secrets from files. No
/// Docker engine runs here, so nothing is built or started.
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

        var result = Run(file, [.. prefix, "config"], Path.Combine(Paths.RepositoryRoot, "docker"), ("API_KEY_FILE", "./secrets/api_key"));
        Assert.True(result.Code == 0, result.Output);
        foreach (var service in new[] { "postgres:", "certs:", "schema:", "silo-0:", "silo-1:", "front:" })
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
        var result = Run(file, [.. prefix, "config"], Path.Combine(Paths.RepositoryRoot, "docker"), ("API_KEY", null), ("API_KEY_FILE", null));
        Assert.NotEqual(0, result.Code);
        Assert.Contains("API_KEY", result.Output);
    }

    [Fact]
    public void Compose_gives_every_cluster_process_a_certificate_from_one_ca_and_keeps_the_secrets_in_files()
    {
        var compose = Compose();
        Assert.SkipWhen(compose is null, "Neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose).");
        var (file, prefix) = compose!.Value;
        var result = Run(file, [.. prefix, "config"], Path.Combine(Paths.RepositoryRoot, "docker"), ("API_KEY_FILE", "./secrets/api_key"));
        Assert.True(result.Code == 0, result.Output);

        // The certs service makes the CA and a certificate for each host; only it mounts the CA's key.
        var certs = Service(result.Output, "certs");
        Assert.Contains("make-certs", certs);
        Assert.Contains("gpu-0,gpu-1,front", certs);
        Assert.Contains("ca:/ca", certs);
        foreach (var (service, host) in new[] { ("silo-0", "gpu-0"), ("silo-1", "gpu-1"), ("front", "front") })
        {
            var block = Service(result.Output, service);
            Assert.Contains($"ORLEANS_TLS_CERT: /certs/{host}.pem", block);
            Assert.Contains($"ORLEANS_TLS_KEY: /certs/{host}.key", block);
            Assert.Contains("ORLEANS_TLS_CA: /certs/ca.pem", block);
            Assert.Contains("certs:/certs:ro", block);
            Assert.DoesNotContain("ca:/ca", block);
            Assert.Contains("ORLEANS_POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password", block);
            Assert.Contains("condition: service_completed_successfully", block);
        }

        Assert.Contains("API_KEY_FILE: /run/secrets/api_key", Service(result.Output, "front"));
        Assert.Contains("POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password", Service(result.Output, "postgres"));
        Assert.DoesNotContain("Password=", result.Output);
        Assert.DoesNotContain("POSTGRES_PASSWORD:", result.Output);
        Assert.DoesNotContain("API_KEY:", result.Output);
        Assert.DoesNotContain("ORLEANS_TLS: ", result.Output);
    }

    [Fact]
    public void Compose_waits_for_silos_and_front_to_drain_before_killing_them()
    {
        var compose = Compose();
        Assert.SkipWhen(compose is null, "Neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose).");
        var (file, prefix) = compose!.Value;
        var result = Run(file, [.. prefix, "config"], Path.Combine(Paths.RepositoryRoot, "docker"), ("API_KEY_FILE", "./secrets/api_key"));
        Assert.True(result.Code == 0, result.Output);

        // Docker's default is 10 s between SIGTERM and SIGKILL; a drain may take the default GPU_DRAIN_TIMEOUT and
        // API_DRAIN_TIMEOUT (a minute each) and the leave after it.
        foreach (var service in new[] { "silo-0", "silo-1", "front" })
        {
            var line = Service(result.Output, service).Split('\n').SingleOrDefault(l => l.Trim().StartsWith("stop_grace_period:", StringComparison.Ordinal));
            Assert.True(line is not null, $"{service} has no stop_grace_period");
            Assert.True(GracePeriod(line.Split(':', 2)[1].Trim()) >= TimeSpan.FromSeconds(75), $"{service}: {line.Trim()}");
        }
    }

    /// <summary>A Compose duration (<c>90s</c>, <c>1m30s</c>).</summary>
    private static TimeSpan GracePeriod(string value)
    {
        var total = TimeSpan.Zero;
        foreach (System.Text.RegularExpressions.Match part in System.Text.RegularExpressions.Regex.Matches(value, @"(\d+)(h|m|s)"))
        {
            var n = int.Parse(part.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            total += part.Groups[2].Value switch { "h" => TimeSpan.FromHours(n), "m" => TimeSpan.FromMinutes(n), _ => TimeSpan.FromSeconds(n) };
        }

        return total;
    }

    /// <summary>The lines of one service in <c>compose config</c>'s output (services sit two spaces in).</summary>
    private static string Service(string config, string name)
    {
        var lines = config.Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimEnd() == $"  {name}:");
        Assert.True(start >= 0, $"no service {name} in:\n{config}");
        var block = lines.Skip(start + 1).TakeWhile(l => l.StartsWith("    ", StringComparison.Ordinal) || l.Length == 0);
        return string.Join('\n', block);
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
