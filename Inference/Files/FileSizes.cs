namespace OrleansGpu.Inference.Files;

/// <summary>
/// File sizes as a model's memory estimate needs them: the size of what a path holds, through symbolic links. The
/// Hugging Face cache keeps a snapshot's files as links into its blobs, and operators link model folders to shared
/// storage; <see cref="FileInfo.Length"/> of such a link is the link's own few bytes.
/// </summary>
public static class FileSizes
{
    /// <summary>The bytes <paramref name="file"/> holds: its own, or its final link target's.</summary>
    public static long Of(FileInfo file) =>
        file.LinkTarget is not null && file.ResolveLinkTarget(returnFinalTarget: true) is FileInfo { Exists: true } target
            ? target.Length
            : file.Length;

    /// <inheritdoc cref="Of(FileInfo)"/>
    public static long Of(string path) => Of(new FileInfo(path));
}
