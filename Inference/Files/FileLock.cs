using Microsoft.Extensions.Logging;

namespace OrleansGpu.Inference.Files;

/// <summary>
/// A lock held across processes through a lock file: opened with <see cref="FileShare.None"/>, which .NET takes on
/// Unix as an exclusive <c>flock</c>, the same lock Python's <c>filelock</c> (used by huggingface_hub) takes on its
/// <c>.locks/</c> files. The lock ends with the handle, so a process that dies releases it. Used where the silos of a
/// machine share a folder: one download of a model, one build of a graph.
/// </summary>
public sealed class FileLock : IDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    /// <summary>Takes the lock, waiting while another holder has it; logs once when it has to wait (<paramref name="waitingFor"/>: "another download of X").</summary>
    public static async Task<FileLock> AcquireAsync(string path, ILogger logger, string waitingFor, CancellationToken cancellationToken)
    {
        var logged = false;
        while (true)
        {
            if (TryTake(path) is { } taken)
            {
                return taken;
            }

            LogOnce(logger, waitingFor, path, ref logged);
            await Task.Delay(Poll, cancellationToken);
        }
    }

    /// <summary>As <see cref="AcquireAsync"/>, blocking the calling thread: for work that runs on a thread of its own anyway.</summary>
    public static FileLock Acquire(string path, ILogger logger, string waitingFor, CancellationToken cancellationToken = default)
    {
        var logged = false;
        while (true)
        {
            if (TryTake(path) is { } taken)
            {
                return taken;
            }

            LogOnce(logger, waitingFor, path, ref logged);
            cancellationToken.WaitHandle.WaitOne(Poll);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private static FileLock? TryTake(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            return new FileLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None));
        }
        catch (IOException) when (File.Exists(path))
        {
            return null;
        }
    }

    private static void LogOnce(ILogger logger, string waitingFor, string path, ref bool logged)
    {
        if (!logged)
        {
            logger.LogInformation("Waiting for {WaitingFor} to finish (lock {Lock})", waitingFor, path);
            logged = true;
        }
    }

    public void Dispose() => _stream.Dispose();
}
