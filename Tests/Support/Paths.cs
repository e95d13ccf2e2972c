namespace OrleansGpu.Tests.Support;

/// <summary>Where the repository, the shared oracles and the test models live.</summary>
public static class Paths
{
    /// <summary>The repository root (the folder holding OrleansGpu.sln).</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>The shared folder beside the repository (oracles, baselines); <c>ORLEANSGPU_SHARED</c> overrides it.</summary>
    public static string Shared =>
        Environment.GetEnvironmentVariable("ORLEANSGPU_SHARED") is { Length: > 0 } s
            ? s
            : Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));

    public static string Oracle(string file) => Path.Combine(Shared, "oracles", file);

    /// <summary>
    /// A models folder shared by all tests on this machine, so the default model is extracted once, not per test.
    /// </summary>
    public static string TestModels { get; } = Path.Combine(Path.GetTempPath(), "orleansgpu-test-models");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "OrleansGpu.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException($"No OrleansGpu.sln above {AppContext.BaseDirectory}.");
    }
}
