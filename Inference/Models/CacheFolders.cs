namespace OrleansGpu.Inference.Models;

/// <summary>
/// What this service keeps in the user's cache, side by side under <c>$XDG_CACHE_HOME/orleansgpu</c> (default
/// <c>~/.cache/orleansgpu</c>): the models folder and the graphs built from native checkpoints. Each has its own
/// setting (<c>MODELS_DIR</c>, <c>GRAPHS_DIR</c>); these are the defaults.
/// </summary>
public static class CacheFolders
{
    public static string Root
    {
        get
        {
            var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (string.IsNullOrEmpty(cache))
            {
                cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            }

            return Path.Combine(cache, "orleansgpu");
        }
    }

    /// <summary>The default models folder: <c>~/.cache/orleansgpu/models</c>.</summary>
    public static string Models => Path.Combine(Root, "models");

    /// <summary>The default folder of graphs built from native checkpoints: <c>~/.cache/orleansgpu/graphs</c>.</summary>
    public static string Graphs => Path.Combine(Root, "graphs");
}
