using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Files;

namespace OrleansGpu.Tests.Inference.Files;

/// <summary>
/// Sizes through symbolic links: the Hugging Face cache keeps a snapshot's files as links into its blobs, so a model
/// read in place must be estimated by what its links point to, or a host's memory budget sees a few bytes.
/// </summary>
public sealed class FileSizesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("file-sizes-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void A_link_and_a_link_to_a_link_hold_what_their_target_holds()
    {
        var blob = Write("blobs/0123abcd", 5000);
        var link = Link("snapshots/main/model.safetensors", blob);
        var chained = Link("elsewhere/model.safetensors", link);

        Assert.Equal(5000, FileSizes.Of(blob));
        Assert.Equal(5000, FileSizes.Of(link));
        Assert.Equal(5000, FileSizes.Of(chained));
        Assert.True(new FileInfo(link).Length < 5000, "the link's own length is what the estimate must not use");
    }

    [Fact]
    public void An_onnx_graph_and_its_external_weights_laid_out_as_links_count_their_targets()
    {
        var graph = Write("blobs/graph", 1200);
        var weights = Write("blobs/weights", 70_000);
        var onnx = Link("snapshots/main/onnx/model.onnx", graph);
        Link("snapshots/main/onnx/model.onnx_data", weights);

        Assert.Equal(71_200, InferenceMetrics.WeightBytes(onnx));
    }

    [Fact]
    public void A_dangling_link_counts_for_itself_rather_than_failing()
    {
        var link = Link("snapshots/main/gone.bin", Path.Combine(_folder, "blobs/missing"));
        Assert.Equal(new FileInfo(link).Length, FileSizes.Of(link));
    }

    private string Write(string relative, int bytes)
    {
        var path = Path.Combine(_folder, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, new byte[bytes]);
        return path;
    }

    private string Link(string relative, string target)
    {
        var path = Path.Combine(_folder, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.CreateSymbolicLink(path, target);
        return path;
    }
}
