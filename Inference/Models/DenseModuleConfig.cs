using System.Text.Json;

namespace OrleansGpu.Inference.Models;

/// <summary>The activations a sentence-transformers <c>Dense</c> module may name that this service applies, with PyTorch's defaults.</summary>
public enum DenseActivation
{
    /// <summary><c>torch.nn.Identity</c> (<c>torch.nn.modules.linear.Identity</c>).</summary>
    Identity,

    /// <summary><c>torch.nn.Tanh</c>, sentence-transformers' default when the config names none.</summary>
    Tanh,

    Sigmoid,

    ReLU,

    /// <summary><c>torch.nn.GELU()</c>: the exact erf form (approximate='none').</summary>
    GELU,

    /// <summary><c>torch.nn.SiLU</c>: x·sigmoid(x).</summary>
    SiLU,

    /// <summary><c>torch.nn.LeakyReLU()</c>: negative slope 0.01.</summary>
    LeakyReLU,

    /// <summary><c>torch.nn.ELU()</c>: alpha 1.</summary>
    ELU,
}

/// <summary>
/// One sentence-transformers <c>Dense</c> module, read from its folder's <c>config.json</c>: the sentence embedding
/// becomes <c>activation(x·Wᵀ + b)</c> (plus x, or a bias-free projection of x, when <see cref="UseResidual"/>).
/// Its weights (<c>linear.weight</c> [out, in], <c>linear.bias</c> [out]) lie beside the config in
/// <c>model.safetensors</c> or <c>pytorch_model.bin</c>.
/// </summary>
/// <param name="Path">The module's folder, relative to the model's (such as <c>2_Dense</c>).</param>
public sealed record DenseModuleConfig(string Path, int InFeatures, int OutFeatures, bool Bias, DenseActivation Activation, bool UseResidual = false)
{
    /// <summary>The weight files a Dense module may have, in the order sentence-transformers looks for them.</summary>
    public static IReadOnlyList<string> WeightFileNames { get; } = ["model.safetensors", "pytorch_model.bin"];

    /// <summary>The module's weights file in the model's folder <paramref name="modelDirectory"/> (the first of <see cref="WeightFileNames"/> there), or null.</summary>
    public string? WeightsIn(string modelDirectory) =>
        WeightFileNames.Select(f => System.IO.Path.Combine(modelDirectory, Path, f)).FirstOrDefault(File.Exists);

    /// <summary>The activations applied, as the config names them (their class names under <c>torch.nn</c>).</summary>
    public static IReadOnlyList<string> SupportedActivations { get; } = Enum.GetNames<DenseActivation>();

    /// <summary>
    /// Reads the module in <paramref name="directory"/>/<paramref name="path"/>; throws <see cref="DenseConfigException"/>
    /// saying what this service does not apply (an activation it lacks, a module that reads or writes other features
    /// than the sentence embedding) or what is malformed.
    /// </summary>
    public static DenseModuleConfig Read(string directory, string path)
    {
        var configPath = System.IO.Path.Combine(directory, path, "config.json");
        if (!File.Exists(configPath))
        {
            throw new DenseConfigException(path, "has no config.json");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
        }
        catch (JsonException ex)
        {
            throw new DenseConfigException(path, $"has a config.json that is not JSON ({ex.Message.Split('\n')[0]})");
        }

        using (doc)
        {
            var c = doc.RootElement;
            if (c.ValueKind != JsonValueKind.Object)
            {
                throw new DenseConfigException(path, "has a config.json that is not an object");
            }

            int Features(string name) =>
                c.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n > 0
                    ? n
                    : throw new DenseConfigException(path, $"has no positive integer {name} in its config.json");

            bool Flag(string name, bool fallback) => !c.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null
                ? fallback
                : v.ValueKind is JsonValueKind.True or JsonValueKind.False
                    ? v.GetBoolean()
                    : throw new DenseConfigException(path, $"has a {name} that is not true or false in its config.json");

            var inFeatures = Features("in_features");
            var outFeatures = Features("out_features");

            // Other features than the pooled sentence embedding (PyLate's token-level Dense, for one) are not what an
            // embedding here is made of.
            foreach (var key in new[] { "module_input_name", "module_output_name" })
            {
                if (c.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null
                    && (v.ValueKind != JsonValueKind.String || v.GetString() != "sentence_embedding"))
                {
                    throw new DenseConfigException(path, $"has {key} {v.GetRawText()}; this service applies Dense modules to the sentence embedding only");
                }
            }

            // sentence-transformers' default when the config names no activation is Tanh.
            var activation = DenseActivation.Tanh;
            if (c.TryGetProperty("activation_function", out var named))
            {
                activation = named.ValueKind == JsonValueKind.String
                    ? ParseActivation(path, named.GetString()!)
                    : throw new DenseConfigException(path, $"has an activation_function {named.GetRawText()} that is not a class name");
            }

            return new DenseModuleConfig(path, inFeatures, outFeatures, Flag("bias", true), activation, Flag("use_residual", false));
        }
    }

    /// <summary>
    /// The activation a config names: a class of <c>torch.nn</c> (as <c>torch.nn.modules.activation.Tanh</c> or
    /// <c>torch.nn.Tanh</c>) that this service applies. A class from elsewhere is code of the model's author:
    /// sentence-transformers runs it only with trust_remote_code, this service never.
    /// </summary>
    private static DenseActivation ParseActivation(string path, string name)
    {
        var dot = name.LastIndexOf('.');
        var module = dot < 0 ? "" : name[..dot];
        var type = name[(dot + 1)..];
        if ((module == "torch.nn" || module.StartsWith("torch.nn.modules.", StringComparison.Ordinal))
            && SupportedActivations.Contains(type, StringComparer.Ordinal))
        {
            return Enum.Parse<DenseActivation>(type);
        }

        throw new DenseConfigException(
            path, $"names the activation_function '{name}', which this service does not apply (it applies torch.nn's {string.Join(", ", SupportedActivations)})");
    }
}

/// <summary>A Dense module's config that this service does not apply or cannot read; the message names the module.</summary>
public sealed class DenseConfigException(string path, string problem)
    : Exception($"its sentence-transformers Dense module {path} {problem}.")
{
    public string ModulePath { get; } = path;
}
