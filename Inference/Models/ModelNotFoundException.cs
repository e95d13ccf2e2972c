namespace OrleansGpu.Inference.Models;

/// <summary>A model name that resolves to no installed model. Names the model and every place searched.</summary>
public sealed class ModelNotFoundException(string model, IReadOnlyList<string> searched)
    : Exception($"Model '{model}' is not installed. Searched: {string.Join(", ", searched)}. "
        + "Put a Hugging Face style folder there (onnx/model.onnx or model.onnx, with tokenizer.json, vocab.txt, "
        + "or vocab.json + merges.txt, and config.json).")
{
    public string Model { get; } = model;

    public IReadOnlyList<string> Searched { get; } = searched;
}

/// <summary>A model folder exists but cannot be used (missing or unreadable files).</summary>
public sealed class InvalidModelException(string model, string reason)
    : Exception($"Model '{model}' cannot be loaded: {reason}")
{
    public string Model { get; } = model;
}
