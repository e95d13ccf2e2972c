using System.Text.RegularExpressions;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// A model as a request names it: a hub repo id (<c>org/name</c> or a bare <c>name</c>), optionally pinned to a
/// revision with <c>@</c>: a branch or tag (<c>org/name@v1.0</c>) or a commit (<c>org/name@&lt;40 hex&gt;</c>).
/// Neither part can name a path: no separators beyond the one '/', no '.' or '..' segments.
/// </summary>
public readonly partial record struct ModelReference(string Repo, string? Revision)
{
    /// <summary>The hub's own limit on a repo id.</summary>
    public const int MaxRepoLength = 96;

    private const int MaxRevisionLength = 128;

    /// <summary>The revision used when none is pinned.</summary>
    public const string DefaultRevision = "main";

    /// <summary>Whether a revision was given with <c>@</c>.</summary>
    public bool IsPinned => Revision is not null;

    /// <summary>The revision to ask the hub or the cache for.</summary>
    public string RevisionOrDefault => Revision ?? DefaultRevision;

    /// <summary>Whether the revision is a full commit hash rather than a branch or tag.</summary>
    public bool IsCommit => Revision is { } r && IsCommitHash(r);

    public static bool IsCommitHash(string revision) => CommitHash().IsMatch(revision);

    /// <summary>The name as written: <c>org/name</c> or <c>org/name@revision</c>.</summary>
    public override string ToString() => Revision is null ? Repo : $"{Repo}@{Revision}";

    /// <summary>The same reference for another repo id (a bare name's candidates, a renamed repo).</summary>
    public ModelReference WithRepo(string repo) => this with { Repo = repo };

    public static bool TryParse(string? text, out ModelReference reference)
    {
        reference = default;
        if (text is null)
        {
            return false;
        }

        text = text.Trim();
        var at = text.IndexOf('@');
        var repo = at < 0 ? text : text[..at];
        var revision = at < 0 ? null : text[(at + 1)..];
        if (repo.Length is 0 or > MaxRepoLength || !RepoId().IsMatch(repo) || repo.Split('/').Any(p => p is "." or ".."))
        {
            return false;
        }

        if (revision is not null && (revision.Length is 0 or > MaxRevisionLength || !RevisionName().IsMatch(revision) || revision is "." or ".."))
        {
            return false;
        }

        reference = new ModelReference(repo, revision);
        return true;
    }

    /// <summary>Parses <paramref name="text"/> or throws an <see cref="ArgumentException"/> that says what a model name may hold.</summary>
    public static ModelReference Parse(string? text) =>
        TryParse(text, out var reference)
            ? reference
            : throw new ArgumentException(
                $"'{text}' is not a model name: use letters, digits, '.', '_', '-', at most one '/', and optionally '@revision' "
                + "(a branch, tag or commit).", "model");

    [GeneratedRegex(@"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$")]
    private static partial Regex RepoId();

    [GeneratedRegex(@"^[A-Za-z0-9._-]+$")]
    private static partial Regex RevisionName();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();
}
