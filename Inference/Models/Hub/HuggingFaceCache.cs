namespace OrleansGpu.Inference.Models.Hub;

/// <summary>
/// The Hugging Face cache layout, shared with huggingface_hub, the Rust hf-hub and huggingface.js, so that what one
/// tool downloads the others use:
/// <code>
/// {root}/models--{org}--{name}/refs/{revision}            the commit the revision pointed to (text)
/// {root}/models--{org}--{name}/blobs/{etag}               file contents, named by sha256 (LFS) or git sha1
/// {root}/models--{org}--{name}/snapshots/{commit}/{path}  relative symlinks into ../../blobs/{etag}
/// {root}/.locks/models--{org}--{name}/{etag}.lock         held while a blob is written
/// </code>
/// </summary>
public sealed class HuggingFaceCache(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The cache's folder name for a model repo: <c>models--org--name</c>.</summary>
    public static string FolderName(string repo) => "models--" + repo.Replace("/", "--", StringComparison.Ordinal);

    public string RepoFolder(string repo) => Path.Combine(Root, FolderName(repo));

    public string LockFolder(string repo) => Path.Combine(Root, ".locks", FolderName(repo));

    public string BlobPath(string repo, string etag) => Path.Combine(RepoFolder(repo), "blobs", etag);

    public string SnapshotFolder(string repo, string commit) => Path.Combine(RepoFolder(repo), "snapshots", commit);

    /// <summary>
    /// The commit <paramref name="reference"/> stands for in the cache: the commit itself when it is one, else what
    /// <c>refs/{revision}</c> says; null when the cache has never seen it.
    /// </summary>
    public string? CommitOf(ModelReference reference)
    {
        var revision = reference.RevisionOrDefault;
        if (ModelReference.IsCommitHash(revision))
        {
            return revision;
        }

        var refFile = Path.Combine(RepoFolder(reference.Repo), "refs", revision);
        if (!File.Exists(refFile))
        {
            return null;
        }

        var commit = File.ReadAllText(refFile).Trim();
        return ModelReference.IsCommitHash(commit) ? commit : null;
    }

    /// <summary>The snapshot folder of <paramref name="reference"/>, when the cache has one.</summary>
    public string? SnapshotOf(ModelReference reference) =>
        CommitOf(reference) is { } commit && Directory.Exists(SnapshotFolder(reference.Repo, commit))
            ? SnapshotFolder(reference.Repo, commit)
            : null;

    /// <summary>Records that <paramref name="revision"/> points at <paramref name="commit"/> (written aside and renamed, so never half written).</summary>
    public void WriteRef(string repo, string revision, string commit)
    {
        if (revision == commit)
        {
            return; // huggingface_hub keeps no ref for a commit asked by its hash
        }

        var path = Path.Combine(RepoFolder(repo), "refs", revision);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (File.Exists(path) && File.ReadAllText(path).Trim() == commit)
        {
            return;
        }

        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, commit);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// Puts <paramref name="relativePath"/> into the snapshot of <paramref name="commit"/> as a relative symlink to the
    /// blob, as huggingface_hub does (<c>../../blobs/{etag}</c>, one more <c>..</c> per folder of the path).
    /// </summary>
    public string Link(string repo, string commit, string relativePath, string etag)
    {
        var target = Path.Combine(SnapshotFolder(repo, commit), relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var relative = Path.GetRelativePath(Path.GetDirectoryName(target)!, BlobPath(repo, etag));
        var existing = new FileInfo(target);
        if (existing.LinkTarget == relative)
        {
            return target;
        }

        if (existing.LinkTarget is not null || existing.Exists)
        {
            existing.Delete();
        }

        // Made aside and renamed over the final name, so a reader sees no link or the whole link.
        var temp = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        File.CreateSymbolicLink(temp, relative);
        File.Move(temp, target, overwrite: true);
        return target;
    }
}
