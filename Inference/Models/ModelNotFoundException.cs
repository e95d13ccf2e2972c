namespace OrleansGpu.Inference.Models;

// The messages of these exceptions reach clients: they say what is wrong and what to do, and never show a path on
// the server (the places searched are kept in properties, for the log).

/// <summary>A model name that resolves to no model this host has or may get.</summary>
public sealed class ModelNotFoundException(string model, string message, IReadOnlyList<string>? searched = null) : Exception(message)
{
    public string Model { get; } = model;

    /// <summary>The folders searched, for the log; never shown to clients.</summary>
    public IReadOnlyList<string> Searched { get; } = searched ?? [];
}

/// <summary>A model folder exists but cannot be used (missing or unreadable files).</summary>
public class InvalidModelException(string model, string reason, Exception? inner = null)
    : Exception($"Model '{model}' cannot be loaded: {reason}", inner)
{
    public string Model { get; } = model;
}

/// <summary>
/// The model exists but this build cannot run it: an architecture or setting the graph builder does not build (and no
/// ONNX export), a tokenizer we do not read (SentencePiece), or sentence-transformers modules we do not apply.
/// </summary>
public sealed class ModelNotSupportedException(string model, string reason) : InvalidModelException(model, reason);

/// <summary>
/// This host's copy of the model's weights cannot be read: a file that is damaged, cut short, or not a checkpoint the
/// readers accept. Unlike the other <see cref="InvalidModelException"/>s it is a fault of the host's files rather than
/// of the request: another host's copy may be fine.
/// </summary>
public sealed class ModelUnreadableException(string model, string reason, Exception? inner = null) : InvalidModelException(model, reason, inner);

/// <summary>The model is not on this host and the operator's allow list does not let requests download it.</summary>
public sealed class ModelNotAllowedException(string model, string message) : Exception(message)
{
    public string Model { get; } = model;
}

/// <summary>The hub refused the download: a gated or private repo, without a token or with one that may not read it.</summary>
public sealed class ModelGatedException(string model, string message) : Exception(message)
{
    public string Model { get; } = model;
}

/// <summary>The hub could not be reached (connection refused, DNS, timeout) or failed (5xx).</summary>
public sealed class HubUnavailableException(string model, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Model { get; } = model;
}

/// <summary>A download arrived but is not what the hub announced (sha256 or size differs); nothing was kept.</summary>
public sealed class ModelDownloadException(string model, string message, Exception? inner = null) : Exception(message, inner)
{
    public string Model { get; } = model;
}
