using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using OrleansGpu.Inference.Files;

namespace OrleansGpu.Inference.Models.Hub;

/// <summary>
/// Downloads the files a model needs (<see cref="DownloadPlan"/>) into the Hugging Face cache, as huggingface_hub
/// does and where it looks: each file is written to <c>blobs/{etag}.incomplete</c>, resumed with <c>Range</c> when
/// the connection breaks (or in a later run, from what the last one left), checked (size, and sha256 against
/// <c>X-Linked-Etag</c> for LFS files), flushed to disk and only then renamed to <c>blobs/{etag}</c> and linked
/// from the snapshot; the weights are linked last and <c>refs/{revision}</c> written at the end. A crash at any
/// point leaves no file that looks complete: an unfinished snapshot has no weights, and the cache readers want them.
/// </summary>
public sealed class HubDownloader(HubClient hub, HuggingFaceCache cache, DownloadTracker tracker, ILogger logger)
{
    /// <summary>Tries per file before a download counts as failed; each resumes where the last stopped.</summary>
    public const int MaxAttempts = 5;

    private const int BufferSize = 1 << 20;

    /// <summary>Downloads <paramref name="reference"/> at the listed commit; returns its snapshot folder. The caller holds the model's lock.</summary>
    /// <param name="checkSettings">
    /// Runs once the settings (config, tokenizer, modules) are in the snapshot folder and before any weights are
    /// fetched, with that folder and the weights' format; what it throws ends the download there.
    /// </param>
    public async Task<string> DownloadAsync(
        ModelReference reference, RepoListing listing, Action<string, WeightsFormat>? checkSettings, CancellationToken cancellationToken)
    {
        var name = reference.ToString();
        var plan = DownloadPlan.For(listing.Files) ?? throw new InvalidModelException(
            name, "its repo on the Hugging Face hub holds no weights this service loads (onnx/model.onnx, model.onnx, model.safetensors or pytorch_model.bin).");
        var commit = listing.Commit;

        var settings = new List<HubFile>();
        foreach (var path in plan.Settings)
        {
            settings.Add(await hub.HeadAsync(reference, commit, path, cancellationToken));
        }

        var external = new List<HubFile>();
        foreach (var path in plan.ExternalData.Concat(plan.ModuleWeights))
        {
            external.Add(await hub.HeadAsync(reference, commit, path, cancellationToken));
        }

        var main = await hub.HeadAsync(reference, commit, plan.Weights, cancellationToken);
        var shards = new List<HubFile>();
        if (plan.IsIndex)
        {
            // The index is small and names the shards; it is linked last, like any main weights file.
            await FetchBlobAsync(reference, commit, main, null, cancellationToken);
            foreach (var shard in WeightFiles.ShardNames(cache.BlobPath(reference.Repo, main.Etag)))
            {
                shards.Add(await hub.HeadAsync(reference, commit, shard, cancellationToken));
            }
        }

        List<HubFile> files = [.. settings, .. external, .. shards, main];
        using var download = tracker.Start(name, hub.Endpoint, files);
        foreach (var file in settings)
        {
            await FetchAndLinkAsync(reference, commit, file, download, cancellationToken);
        }

        checkSettings?.Invoke(cache.SnapshotFolder(reference.Repo, commit), plan.Format);
        foreach (var file in external.Concat(shards))
        {
            await FetchAndLinkAsync(reference, commit, file, download, cancellationToken);
        }

        // The main weights file is linked last: a snapshot with it is complete.
        await FetchAndLinkAsync(reference, commit, main, download, cancellationToken, link: false);
        cache.Link(reference.Repo, commit, main.Path, main.Etag);
        cache.WriteRef(reference.Repo, reference.RevisionOrDefault, commit);
        download.Finished();
        return cache.SnapshotFolder(reference.Repo, commit);
    }

    /// <summary>Puts one file in the cache unless its blob is there already, and (unless told not to) links it into the snapshot.</summary>
    private async Task FetchAndLinkAsync(
        ModelReference reference, string commit, HubFile file, DownloadTracker.Download download, CancellationToken cancellationToken, bool link = true)
    {
        download.BeginFile(file.Path);
        var cached = File.Exists(cache.BlobPath(reference.Repo, file.Etag));
        if (cached)
        {
            download.Add(file.Size);
        }
        else
        {
            await FetchBlobAsync(reference, commit, file, download, cancellationToken);
        }

        if (link)
        {
            cache.Link(reference.Repo, commit, file.Path, file.Etag);
        }

        download.FileDone(file, cached);
    }

    /// <summary>Puts one file's bytes at <c>blobs/{etag}</c>, or leaves only <c>blobs/{etag}.incomplete</c> behind.</summary>
    private async Task FetchBlobAsync(ModelReference reference, string commit, HubFile file, DownloadTracker.Download? download, CancellationToken cancellationToken)
    {
        var blob = cache.BlobPath(reference.Repo, file.Etag);
        if (File.Exists(blob))
        {
            return;
        }

        // The same lock file huggingface_hub takes for this blob, so a Python process and we never write it at once.
        using var blobLock = await FileLock.AcquireAsync(
            Path.Combine(cache.LockFolder(reference.Repo), file.Etag + ".lock"), logger, $"another download of {reference} {file.Path}", cancellationToken);
        if (File.Exists(blob))
        {
            return;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        var incomplete = blob + ".incomplete";
        using var sha = file.Sha256 is null ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using (var output = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, BufferSize, FileOptions.Asynchronous))
        {
            var offset = await ResumePointAsync(output, file, sha, cancellationToken);
            download?.Add(offset);
            if (offset > 0)
            {
                logger.LogInformation("Resuming {Model} {File} at byte {Offset} of {Size}", reference, file.Path, offset, file.Size);
            }

            for (var attempt = 1; offset < file.Size; attempt++)
            {
                try
                {
                    offset = await ReceiveAsync(reference, commit, file, output, offset, sha, download, cancellationToken);
                }
                catch (Exception ex) when (attempt < MaxAttempts && !cancellationToken.IsCancellationRequested
                    && ex is IOException or HttpRequestException or HubUnavailableException or OperationCanceledException)
                {
                    logger.LogWarning(
                        "Download of {Model} {File} interrupted at byte {Offset} of {Size} ({Reason}); resuming, try {Attempt} of {Attempts}",
                        reference, file.Path, output.Length, file.Size, ex.Message, attempt + 1, MaxAttempts);
                    offset = output.Length;
                    await Task.Delay(TimeSpan.FromMilliseconds(250 * attempt), cancellationToken);
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    throw hub.Unreachable(reference, ex);
                }
                catch (ModelDownloadException)
                {
                    File.Delete(incomplete); // more than announced, or a disk that takes no more: keep none of it
                    throw;
                }
            }

            if (offset != file.Size)
            {
                throw Refuse(reference, file, incomplete, $"it has {offset} bytes where the hub announced {file.Size}");
            }

            if (sha is not null)
            {
                var actual = Convert.ToHexStringLower(sha.GetHashAndReset());
                if (actual != file.Sha256)
                {
                    await output.DisposeAsync();
                    throw Refuse(reference, file, incomplete, $"its sha256 is {actual} where the hub announced {file.Sha256}");
                }
            }

            output.Flush(flushToDisk: true);
        }

        try
        {
            File.Move(incomplete, blob, overwrite: false);
        }
        catch (IOException) when (File.Exists(blob))
        {
            File.Delete(incomplete); // placed meanwhile by a process that does not take the lock
        }
    }

    /// <summary>Where an earlier, interrupted run left the file; feeds the bytes already there to the hash.</summary>
    private static async Task<long> ResumePointAsync(FileStream output, HubFile file, IncrementalHash? sha, CancellationToken cancellationToken)
    {
        if (output.Length > file.Size)
        {
            output.SetLength(0);
        }

        if (sha is not null && output.Length > 0)
        {
            output.Position = 0;
            var buffer = new byte[BufferSize];
            int read;
            while ((read = await output.ReadAsync(buffer, cancellationToken)) > 0)
            {
                sha.AppendData(buffer, 0, read);
            }
        }

        output.Position = output.Length;
        return output.Length;
    }

    /// <summary>One GET from <paramref name="offset"/> on; returns how far the file got. Throws when the connection breaks.</summary>
    private async Task<long> ReceiveAsync(
        ModelReference reference, string commit, HubFile file, FileStream output, long offset, IncrementalHash? sha,
        DownloadTracker.Download? download, CancellationToken cancellationToken)
    {
        using var response = await hub.GetAsync(reference, commit, file.Path, offset, cancellationToken);
        if (offset > 0 && response.StatusCode != HttpStatusCode.PartialContent)
        {
            // The server ignored (200) or refused (416) the range: start the file again.
            logger.LogInformation("The server did not resume {Model} {File} at byte {Offset} ({Status}); starting it again", reference, file.Path, offset, (int)response.StatusCode);
            output.SetLength(0);
            output.Position = 0;
            if (sha is not null)
            {
                sha.GetHashAndReset();
            }

            download?.Add(-offset);
            offset = 0;
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return offset;
            }
        }

        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[BufferSize];
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        while (true)
        {
            stall.CancelAfter(hub.Timeout); // a connection that stops sending counts as broken
            var read = await body.ReadAsync(buffer, stall.Token);
            if (read == 0)
            {
                return offset;
            }

            if (offset + read > file.Size)
            {
                throw new ModelDownloadException(reference.ToString(), $"The hub sent more than the {file.Size} bytes it announced for {file.Path} of '{reference}'; nothing was kept. Retry later.");
            }

            try
            {
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
            catch (IOException ex)
            {
                // A full or read-only disk is not the network: no retry, and the path stays in the log.
                logger.LogError("Cannot write the download of {Model} {File} into the cache: {Reason}", reference, file.Path, ex.Message);
                throw new ModelDownloadException(
                    reference.ToString(), $"The host cannot write the download of '{reference}' into its Hugging Face cache (is the disk full?); its log says more.", ex);
            }

            sha?.AppendData(buffer, 0, read);
            offset += read;
            download?.Add(read);
        }
    }

    private ModelDownloadException Refuse(ModelReference reference, HubFile file, string incomplete, string reason)
    {
        logger.LogWarning("Refused the download of {Model} {File}: {Reason}; removed {Path}", reference, file.Path, reason, incomplete);
        File.Delete(incomplete);
        return new ModelDownloadException(
            reference.ToString(),
            $"The download of {file.Path} of '{reference}' was refused: {reason}. Nothing was kept; the next request downloads it again.");
    }
}
