using Microsoft.Extensions.Configuration;

namespace OrleansGpu.Grains.Security;

/// <summary>
/// Secrets that may come from a file instead of the environment, as Docker and Kubernetes secrets are mounted: for a
/// setting <c>NAME</c>, <c>NAME_FILE</c> names a file holding the value. A value in a file stays out of process
/// listings (<c>/proc/PID/environ</c>, <c>ps e</c>) and out of compose files. Fronts and silos read their secrets here.
/// </summary>
public static class SecretFiles
{
    public const string FileSuffix = "_FILE";

    /// <summary>
    /// The value of <paramref name="name"/>, or the contents of the file that <c>{name}_FILE</c> names (without its
    /// trailing line break); null when neither is set. Setting both is an error, since one would silently win.
    /// </summary>
    public static string? Read(IConfiguration configuration, string name)
    {
        var value = configuration[name];
        var file = configuration[name + FileSuffix];
        if (string.IsNullOrWhiteSpace(file))
        {
            return string.IsNullOrEmpty(value) ? null : value;
        }

        if (!string.IsNullOrEmpty(value))
        {
            throw new ArgumentException($"Both {name} and {name}{FileSuffix} are set: keep one (the file keeps the secret out of process listings).");
        }

        return ReadFile(file.Trim(), name + FileSuffix);
    }

    /// <summary>The secret held in <paramref name="path"/> (named by the setting <paramref name="setting"/>), without its trailing line break.</summary>
    public static string ReadFile(string path, string setting)
    {
        try
        {
            return File.ReadAllText(path).TrimEnd('\r', '\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{setting}: cannot read the secret file '{path}': {e.Message}", e);
        }
    }
}
