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

    /// <summary>
    /// A model named <paramref name="name"/> in <paramref name="modelsDirectory"/>: MiniLM's files from
    /// <see cref="CopyName"/> there, linked, with a sparse file of <paramref name="extraBytes"/> (no disk used) beside
    /// its graph as external weights, so that a host estimates it at the graph's size plus those bytes. Returns the graph's path.
    /// </summary>
    public static async Task<string> AddLinkedCopyAsync(string modelsDirectory, string name, long extraBytes)
    {
        var copy = Path.Combine(modelsDirectory, CopyName);
        var target = Path.Combine(modelsDirectory, name);
        foreach (var file in System.IO.Directory.GetFiles(copy, "*", SearchOption.AllDirectories))
        {
            var link = Path.Combine(target, Path.GetRelativePath(copy, file));
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, file);
        }

        var onnx = WeightFiles.Find(target)!.OnnxPath!;
        await using (var data = File.Create(onnx + ".data"))
        {
            data.SetLength(extraBytes);
        }

        return onnx;
    }

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
