using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// A model that exists but fails to load on this host, for a reason of this host's copy: weights that cannot be read
/// (damaged, cut short), an ONNX file ONNX Runtime or protobuf refuses, an I/O error. Unlike a model that is unknown,
/// unsupported or inconsistent (the same everywhere), another host's copy may be fine, so the front tries it there.
/// </summary>
internal static class ModelLoadFaults
{
    public static bool IsOfThisCopy(Exception error) => error switch
    {
        ModelUnreadableException => true,
        OnnxRuntimeException => true,
        Google.Protobuf.InvalidProtocolBufferException => true,
        IOException and not FileNotFoundException and not DirectoryNotFoundException => true,
        InvalidDataException => true,
        _ => false,
    };

    /// <summary>The failure in words, with no path of this host in it.</summary>
    public static string Reason(Exception error, ModelFolder folder)
    {
        var message = error.Message.Split('\n', 2)[0].Trim()
            .Replace(folder.Directory, "the model's folder", StringComparison.Ordinal);
        return error is ModelUnreadableException ? message : $"its files cannot be opened ({error.GetType().Name}: {message})";
    }

    /// <summary>
    /// Sets the damaged copy aside so that the next load reads a fresh one: built graphs of the model are deleted
    /// (rebuilt on the next load); weights from the Hugging Face cache are moved out of it (the blob renamed
    /// <c>.corrupt</c>, the snapshot's link removed), so that the next load downloads them again. Files of the models
    /// folder are the operator's and stay: the next load reads them again, as the operator may have replaced them.
    /// The weights of the model's sentence-transformers Dense modules go with the main weights (either may be the
    /// damaged one; they are small).
    /// </summary>
    public static void PutAside(ModelFolder folder, ModelSources sources, ModelGraphs graphs, ILogger logger)
    {
        foreach (var graph in graphs.Discard(folder))
        {
            logger.LogWarning("Deleted the built graph {Graph} of {Model}: it is built again on the next load", graph, folder.Name);
        }

        var directory = Path.GetFullPath(folder.Directory);
        if (!directory.StartsWith(sources.Cache.Root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return;
        }

        var dense = folder.SentenceTransformers.Dense.Select(d => d.WeightsIn(directory)).OfType<string>();
        foreach (var file in folder.Weights.Files.Select(f => Path.IsPathRooted(f) ? f : Path.Combine(directory, f)).Concat(dense))
        {
            try
            {
                var info = new FileInfo(file);
                if (info.LinkTarget is { } target)
                {
                    var blob = Path.GetFullPath(Path.Combine(info.DirectoryName!, target));
                    if (File.Exists(blob))
                    {
                        File.Move(blob, blob + ".corrupt", overwrite: true);
                    }
                }
                else if (info.Exists)
                {
                    File.Move(file, file + ".corrupt", overwrite: true);
                }

                File.Delete(file);
                logger.LogWarning("Set aside {File} of {Model} (renamed .corrupt): the next load downloads it again", file, folder.Name);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning("Could not set aside {File} of {Model}: {Reason}", file, folder.Name, ex.Message);
            }
        }
    }
}
