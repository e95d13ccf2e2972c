using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

public sealed class ModelWeightsTests
{
    [Fact]
    public void Safetensors_is_preferred_to_pytorch_when_a_folder_has_both()
    {
        using var folder = new TempFolder();
        File.Copy(ArchitectureFixtures.File("roberta", "pytorch_model.bin"), folder.File("pytorch_model.bin"));
        File.Copy(ArchitectureFixtures.File("roberta", "model.safetensors"), folder.File("model.safetensors"));

        using var view = ModelWeights.Open(folder.Path);
        Assert.IsType<SafetensorsCheckpoint>(view.Stored);
    }

    [Fact]
    public void Pytorch_model_bin_is_read_when_it_is_the_only_weights()
    {
        using var folder = new TempFolder();
        File.Copy(ArchitectureFixtures.File("deberta", "pytorch_model.bin"), folder.File("pytorch_model.bin"));
        File.Copy(ArchitectureFixtures.File("deberta", "config.json"), folder.File("config.json"));

        using var view = ModelWeights.Open(folder.Path);
        using var expected = SafetensorsCheckpoint.Open(ArchitectureFixtures.File("deberta", "model.safetensors"));
        Assert.Equal("deberta.", view.Prefix);
        FixtureCheckpointTests.AssertSameTensors(expected, view, []);
    }

    [Fact]
    public void A_legacy_file_named_pytorch_model_bin_is_told_apart_by_its_content()
    {
        using var folder = new TempFolder();
        File.Copy(ArchitectureFixtures.File("distilbert", "pytorch_model.legacy.bin"), folder.File("pytorch_model.bin"));

        using var view = ModelWeights.Open(folder.Path);
        Assert.False(((PyTorchCheckpoint)view.Stored).IsZip);
        Assert.Equal("distilbert.", view.Prefix);
    }

    [Fact]
    public void Weights_are_read_through_the_hugging_face_cache_symlinks()
    {
        // snapshots/<commit>/<file> -> ../../blobs/<etag>, as huggingface_hub lays out its cache.
        using var cache = new TempFolder();
        var repo = Path.Combine(cache.Path, "models--microsoft--deberta-xlarge-mnli");
        var snapshot = Path.Combine(repo, "snapshots", "0123456789abcdef0123456789abcdef01234567");
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(snapshot);
        File.Copy(ArchitectureFixtures.File("deberta", "pytorch_model.bin"), Path.Combine(repo, "blobs", "3f1c"));
        File.CreateSymbolicLink(Path.Combine(snapshot, "pytorch_model.bin"), "../../blobs/3f1c");

        using var view = ModelWeights.Open(snapshot);
        using var expected = SafetensorsCheckpoint.Open(ArchitectureFixtures.File("deberta", "model.safetensors"));
        FixtureCheckpointTests.AssertSameTensors(expected, view, []);
    }

    [Fact]
    public void A_folder_without_weights_is_a_clear_error_naming_the_files_looked_for()
    {
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("tf_model.h5"), "not read");

        var error = Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
        Assert.Contains("model.safetensors", error.Message);
        Assert.Contains("pytorch_model.bin", error.Message);
        Assert.Contains("tf_model.h5", error.Message);
    }

    [Fact]
    public void A_file_in_no_known_format_is_a_checkpoint_error()
    {
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("pytorch_model.bin"), "<html>404: this is an error page, not weights</html>");

        var error = Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
        Assert.Contains("pytorch_model.bin", error.Message);
    }

    [Fact]
    public void An_empty_weight_file_is_a_checkpoint_error()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("model.safetensors"), []);

        Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
    }
}
