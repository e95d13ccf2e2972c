using OrleansGpu.Inference.Models;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// A private models folder for a test cluster: the default MiniLM, plus the same model under a second name
/// (<see cref="CopyName"/>) so that loading a non-default model on demand can be tested with real weights.
/// </summary>
public sealed class TestModelsFolder : IDisposable
{
    public const string CopyName = "acme/minilm-copy";

    public TestModelsFolder()
    {
        var source = new ModelStore(Paths.TestModels).Resolve("all-MiniLM-L6-v2").Directory;
        Directory = System.IO.Directory.CreateTempSubdirectory("cluster-models-").FullName;
        foreach (var target in new[] { Path.Combine(Directory, DefaultModelPackage.ModelName), Path.Combine(Directory, CopyName) })
        {
            foreach (var file in System.IO.Directory.GetFiles(source, "*", SearchOption.AllDirectories))
            {
                var copy = Path.Combine(target, Path.GetRelativePath(source, file));
                System.IO.Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
                File.Copy(file, copy);
            }
        }
    }

    public string Directory { get; }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, true);
        }
        catch (IOException)
        {
            // A process still holding a file; the temp folder is cleaned by the OS.
        }
    }
}
